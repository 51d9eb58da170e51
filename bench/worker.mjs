// The worker's CPU per request under `wrangler dev` (scripts/bench worker).
//
// Starts a stack (release wxsim + the worker build under wrangler dev, fresh local KV/D1),
// then for each route sends N requests, C at a time, and divides the CPU time the
// worker's workerd process used (utime + stime from /proc, the one running the user
// worker, not wrangler's proxy) by N. Two baselines say what is not the worker's own code:
// a route that touches no storage (an unknown path: routing + the 404 envelope), and
// /healthz (one KV read and one D1 query). Prints a JSON summary for the shell script.
import { readFileSync, statSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { Stack, ROOT, freePort } from '../tests/e2e/harness.mjs';
import { sign, toXml } from '../pkg/index.mjs';
import { TICK_MS, ticks, workerdPids } from './proc.mjs';

const N = Number(process.env.BENCH_REQUESTS ?? 400);
const C = Number(process.env.BENCH_CONCURRENCY ?? 8);
/** A CDP session on the worker's isolate, through wrangler's inspector proxy. */
async function inspector(port) {
  const [target] = await (await fetch(`http://127.0.0.1:${port}/json`)).json();
  const ws = new WebSocket(target.webSocketDebuggerUrl, { headers: { Origin: 'http://127.0.0.1' } });
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = reject;
  });
  let id = 1000;
  const waiting = new Map();
  ws.onmessage = (m) => {
    const d = JSON.parse(m.data);
    // wrangler's proxy may echo a request instead of answering it; only Profiler.stop's
    // answer matters (it carries the profile), so wait for a result there.
    const w = d.id && waiting.get(d.id);
    if (w && (!w.needResult || 'result' in d || 'error' in d)) {
      w.resolve(d);
      waiting.delete(d.id);
    }
  };
  const call = (method, params = {}) =>
    new Promise((resolve) => {
      const i = ++id;
      waiting.set(i, { resolve, needResult: method === 'Profiler.stop' });
      ws.send(JSON.stringify({ id: i, method, params }));
    });
  await call('Profiler.enable');
  await call('Profiler.setSamplingInterval', { interval: 200 });
  return { call, close: () => ws.close() };
}

/** Where the isolate's busy time went: the worker's code (its wasm and the JS bundle
 * around it) versus the runtime (D1/KV client code, workerd internals, '(program)'). */
function shares(profile) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const t = { wasm: 0, bundle: 0, runtime: 0 };
  profile.samples.forEach((s, k) => {
    const { functionName: fn, url } = byId.get(s).callFrame;
    const dt = profile.timeDeltas[k] ?? 0;
    if (fn === '(idle)') return;
    if (url.startsWith('wasm:') || fn === 'js-to-wasm::' || fn === 'wasm-to-js') t.wasm += dt;
    else if (url.endsWith('shim.js') || url.endsWith('index.js')) t.bundle += dt;
    else t.runtime += dt;
  });
  const busy = t.wasm + t.bundle + t.runtime || 1;
  return { wasm: t.wasm / busy, bundle: t.bundle / busy, runtime: t.runtime / busy };
}

/**
 * Sends requests 0..N-1 of a route, C at a time. The first half is timed and its process
 * CPU measured; the second half runs under the CPU profiler (which costs CPU itself), to
 * see what share of the isolate's busy time was the worker's own code.
 */
async function run(pids, insp, name, makeRequest, check) {
  let failures = 0;
  const lat = [];
  const drive = async (from, to) => {
    let next = from;
    await Promise.all(
      Array.from({ length: C }, async () => {
        while (next < to) {
          const i = next++;
          const s = performance.now();
          const r = await makeRequest(i);
          lat.push(performance.now() - s);
          if (!check(r, i)) failures++;
        }
      }),
    );
  };
  const half = Math.floor(N / 2);
  const before = { user: ticks(pids.user), proxy: ticks(pids.proxy) };
  const t0 = performance.now();
  await drive(0, half);
  const wall = performance.now() - t0;
  const after = { user: ticks(pids.user), proxy: ticks(pids.proxy) };
  await insp.call('Profiler.start');
  await drive(half, N);
  const { result } = await insp.call('Profiler.stop');
  const share = shares(result.profile);
  lat.sort((a, b) => a - b);
  const user = ((after.user - before.user) * TICK_MS) / half;
  return {
    name,
    requests: N,
    failures,
    user_cpu_ms: user,
    proxy_cpu_ms: ((after.proxy - before.proxy) * TICK_MS) / half,
    share,
    own_cpu_ms: user * (share.wasm + share.bundle),
    rps: (half * 1000) / wall,
    p50_ms: lat[Math.floor(lat.length * 0.5)],
    p99_ms: lat[Math.floor(lat.length * 0.99)],
  };
}

const post = (url, body, headers = {}) =>
  fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });

async function main() {
  const inspectorPort = await freePort();
  const wranglerArgs = process.env.BENCH_NO_BUNDLE ? ['--no-bundle'] : [];
  // --no-bundle serves worker-build's index.js as it is, without wrangler dev's own bundle
  // (its middleware and esbuild's keep-names wrappers): closer to what is deployed.
  const main = process.env.BENCH_NO_BUNDLE ? 'worker/build/index.js' : undefined;
  const stack = await new Stack({ logLevel: 'warn', inspectorPort, wranglerArgs, main }).start();
  const results = [];
  try {
    const pids = workerdPids(stack);
    const insp = await inspector(inspectorPort);
    const appid = stack.vars.WECHAT_APPID;
    const json = async (r) => ({ status: r.status, body: await r.json() });

    // Warm up: the first requests compile the wasm.
    for (let i = 0; i < 20; i++) await fetch(`${stack.api}/healthz`).then((r) => r.text());

    results.push(await run(pids, insp, 'no storage (unknown route, 404)', () => fetch(`${stack.api}/nope`).then(json), (r) => r.status === 404));
    results.push(await run(pids, insp, 'healthz (1 KV read + 1 D1 query)', () => fetch(`${stack.api}/healthz`).then(json), (r) => r.status === 200));
    results.push(await run(pids, insp, 'healthz?wechat=1 (the same + 1 fetch to wxsim)', () => fetch(`${stack.api}/healthz?wechat=1`).then(json), (r) => r.status === 200 && r.body.data.wechat === true));

    // login: N fresh codes from wxsim first, so only the login itself is measured.
    const codes = [];
    for (let i = 0; i < N; i++) {
      codes.push((await (await post(`${stack.sim}/sim/login`, { appid, openid: `oBench${i % 50}` })).json()).code);
    }
    const tokens = [];
    results.push(await run(pids, insp, 'POST /login/ (jscode2session, KV put, D1 upsert)',
      (i) => post(`${stack.api}/login/`, { code: codes[i] }).then(json),
      (r) => r.status === 200 && tokens.push(r.body.data.token)));

    const orders = [];
    results.push(await run(pids, insp, 'POST /pay/ (KV get, D1 insert, unifiedorder, D1 update)',
      (i) => post(`${stack.api}/pay/`, { money: 1 + (i % 100) }, { authorization: `Bearer ${tokens[i % tokens.length]}` }).then(json),
      (r, i) => r.status === 200 && orders.push({ no: r.body.data.out_trade_no, fee: 1 + (i % 100) })));

    // notify: a signed notify per order, as WeChat sends them.
    const key = stack.secrets.WECHAT_PAY_KEY;
    const bodies = orders.map(({ no, fee }, i) => {
      const p = {
        appid, mch_id: stack.vars.WECHAT_MCH_ID, nonce_str: `n${i}`, result_code: 'SUCCESS', return_code: 'SUCCESS',
        openid: 'oBench0', trade_type: 'JSAPI', bank_type: 'OTHERS', total_fee: String(fee), cash_fee: String(fee),
        transaction_id: `42000000000000000${String(i).padStart(11, '0')}`, out_trade_no: no, time_end: '20261125120000',
      };
      return toXml({ ...p, sign: sign(p, key) });
    });
    results.push(await run(pids, insp, 'POST /notify/ (store, verify, credit batch)',
      (i) => fetch(`${stack.api}/notify/`, { method: 'POST', body: bodies[i % bodies.length] }).then(async (r) => ({ status: r.status, text: await r.text() })),
      (r) => r.status === 200 && r.text.includes('SUCCESS')));
    const paid = stack.sql("SELECT COUNT(*) AS n FROM orders WHERE status = 'PAID'")[0].n;
    const wasm = readFileSync(`${ROOT}/worker/build/index_bg.wasm`);
    console.log(JSON.stringify({
      n: N, c: C, paid, orders: orders.length,
      wasm_raw: statSync(`${ROOT}/worker/build/index_bg.wasm`).size,
      wasm_gzip: gzipSync(wasm, { level: 9 }).length,
      results,
    }));
    insp.close();
  } finally {
    await stack.stop();
  }
}

await main();

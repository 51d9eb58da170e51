// The worker's CPU per request under `wrangler dev` (scripts/bench worker).
//
// `wrangler dev` runs the worker in one workerd process together with the local KV/D1
// emulation (SQLite behind Durable Objects), the rate-limiter emulation, the subrequest
// plumbing and wrangler's dev middleware, so that process's CPU is not the worker's own.
// To say how much of it is, the same requests go to two workers under identical stacks
// (release wxsim + wrangler dev, fresh local KV/D1, same bindings):
//
//   wxedge     worker/build (the Rust worker: its wasm and worker-build's JS glue)
//   reference  bench/reference-worker.mjs: plain JS making the same KV, D1, rate-limiter
//              and fetch calls per route, and nothing else
//
// Both stacks run side by side and each route's requests go to them in alternating
// batches (B to wxedge, B to the reference, and again, N each in all), so a machine that
// gets busier or quieter meanwhile weighs on both alike. For each worker and route: the
// CPU time every thread of its workerd process used during its batches (proc.mjs cpuMs,
// from /proc/PID/task/*/schedstat, in ns), divided by its N requests. wxedge minus reference is the worker's own CPU per request; the
// reference is what the runtime and the emulation cost.
//
// The emulation is most of the process's CPU and varies from batch to batch, so the
// difference carries a few tenths of a millisecond of noise. A second pair of stacks
// therefore serves both workers through bench/mock-entry.mjs, with every binding and
// WeChat stood in by in-memory answers: no emulation, and the difference is measured
// closely.
//
// Then the same again for APIv3 (PAY_API=v3, fresh APIv3 keys per stack as the e2e harness
// makes them): POST /pay/ (JSAPI prepay signed with the merchant key, the answer verified
// with the 微信支付公钥, the RSA paySign) and POST /notify/ (a signed envelope with an
// AES-256-GCM resource, built here as WeChat builds it, verified, decrypted and credited).
// The reference makes the same binding and fetch calls but no RSA, GCM or JSON work: that
// is the worker's own CPU (bench/reference-worker.mjs says what it does instead).
// Prints a JSON summary for scripts/bench.d/worker.
import { createCipheriv, createSign, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { Stack, ROOT } from '../tests/e2e/harness.mjs';
import { sign, toXml } from '../pkg/index.mjs';
import { cpuMs, workerdPids } from './proc.mjs';

const N = Number(process.env.BENCH_REQUESTS ?? 2000);
const C = Number(process.env.BENCH_CONCURRENCY ?? 8);
const B = Number(process.env.BENCH_BATCH ?? 50);
const WORKERS = {
  wxedge: undefined, // wrangler.toml's main
  reference: 'bench/reference-worker.mjs',
};
const ROUTES = ['nostore', 'healthz', 'login', 'pay', 'notify'];

/** A worker under test: its stack, its workerd pid, and per route what it cost so far. */
class Target {
  constructor(name, stack) {
    this.name = name;
    this.stack = stack;
    this.pid = workerdPids(stack).user;
    this.stats = {};
  }

  /** Requests from..to-1 of a route, C at a time; adds their CPU time and latencies. */
  async batch(route, from, to, makeRequest, check) {
    const st = (this.stats[route] ??= { ms: 0, wall: 0, n: 0, failures: 0, lat: [], batches: [] });
    let next = from;
    const before = cpuMs(this.pid);
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: C }, async () => {
        while (next < to) {
          const i = next++;
          const s = performance.now();
          const r = await makeRequest(i);
          st.lat.push(performance.now() - s);
          if (!check(r, i)) st.failures++;
        }
      }),
    );
    st.wall += performance.now() - t0;
    const used = cpuMs(this.pid) - before;
    st.ms += used;
    st.n += to - from;
    st.batches.push({ ms: used, n: to - from });
  }

  /** CPU per request over the first and the second half of the batches: their spread. */
  halves(route) {
    const b = this.stats[route].batches;
    const per = (xs) => xs.reduce((a, x) => a + x.ms, 0) / xs.reduce((a, x) => a + x.n, 0);
    return [per(b.slice(0, b.length >> 1)), per(b.slice(b.length >> 1))];
  }

  summary(route) {
    const st = this.stats[route];
    const lat = [...st.lat].sort((a, b) => a - b);
    return {
      cpu_ms: st.ms / st.n,
      failures: st.failures,
      rps: (st.n * 1000) / st.wall,
      p50_ms: lat[Math.floor(lat.length * 0.5)],
      p99_ms: lat[Math.floor(lat.length * 0.99)],
    };
  }
}

/** Runs one route on every target in alternating batches of B. */
async function alternate(targets, route, makeRequest, check) {
  for (let from = 0; from < N; from += B) {
    for (const t of targets) {
      await t.batch(route, from, Math.min(N, from + B), (i) => makeRequest(t, i), (r, i) => check(t, r, i));
    }
  }
}

const quantile = (xs, q) => {
  const s = [...xs].sort((a, b) => a - b);
  const at = (s.length - 1) * q;
  return s[Math.floor(at)] + (s[Math.ceil(at)] - s[Math.floor(at)]) * (at - Math.floor(at));
};
const median = (xs) => quantile(xs, 0.5);

const post = (url, body, headers = {}) =>
  fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
const json = async (r) => ({ status: r.status, body: await r.json() });
const text = async (r) => ({ status: r.status, text: await r.text() });

/** wxedge beside the reference, route by route: their CPU and the difference. */
function compare([ours, ref], routes) {
  const out = {};
  for (const route of routes) {
    const o = ours.summary(route);
    const f = ref.summary(route);
    const [o1, o2] = ours.halves(route);
    const [f1, f2] = ref.halves(route);
    // Per batch pair: a pair hit by a spike of the machine's (another tenant, a
    // checkpoint of the local SQLite) shows as an outlier, which the median ignores.
    const pairs = ours.stats[route].batches.map((b, i) => {
      const r = ref.stats[route].batches[i];
      return b.ms / b.n - r.ms / r.n;
    });
    out[route] = {
      wxedge: o, reference: f, own_ms: o.cpu_ms - f.cpu_ms, own_ms_halves: [o1 - f1, o2 - f2],
      own_ms_median: median(pairs), own_ms_quartiles: [quantile(pairs, 0.25), quantile(pairs, 0.75)],
    };
  }
  return out;
}

/** Starts one stack per worker, one after the other (two wrangler dev starting at once
 * can collide on workerd's sockets). */
async function start(targets, opts, api = 'v2') {
  for (const [name, main] of Object.entries(WORKERS)) {
    const stack = await new Stack({ logLevel: 'warn', api, ...opts(name, main) }).start();
    targets.push(new Target(name, stack));
  }
}

/** The real local stack: KV, D1, rate limiters emulated, WeChat played by wxsim. */
async function emulated() {
  const targets = [];
  try {
    await start(targets, (name, main) => ({ main }));
    const api = (t) => t.stack.api;
    // Warm up: the first requests compile the wasm and open the local databases.
    for (const t of targets) for (let i = 0; i < 30; i++) await fetch(`${api(t)}/healthz`).then((r) => r.text());

    await alternate(targets, 'nostore', (t) => fetch(`${api(t)}/nope`).then(json), (t, r) => r.status === 404);
    await alternate(targets, 'healthz', (t) => fetch(`${api(t)}/healthz`).then(json), (t, r) => r.status === 200);

    // login: N fresh codes per stack from its wxsim first, so only the login is measured.
    for (const t of targets) {
      t.codes = [];
      t.tokens = [];
      t.orders = [];
      const appid = t.stack.vars.WECHAT_APPID;
      for (let i = 0; i < N; i++) {
        t.codes.push((await (await post(`${t.stack.sim}/sim/login`, { appid, openid: `oBench${i % 50}` })).json()).code);
      }
    }
    await alternate(targets, 'login', (t, i) => post(`${api(t)}/login/`, { code: t.codes[i] }).then(json),
      (t, r) => r.status === 200 && t.tokens.push(r.body.data.token));

    await alternate(targets, 'pay',
      (t, i) => post(`${api(t)}/pay/`, { money: 1 + (i % 100) }, { authorization: `Bearer ${t.tokens[i % t.tokens.length]}` }).then(json),
      (t, r, i) => r.status === 200 && t.orders.push({ no: r.body.data.out_trade_no, fee: 1 + (i % 100) }));

    // notify: one signed notify per order, as WeChat sends them, each crediting its order.
    for (const t of targets) {
      t.notifies = t.orders.map(({ no, fee }, i) => signedNotify(t.stack, no, fee, i));
    }
    await alternate(targets, 'notify',
      (t, i) => fetch(`${api(t)}/notify/`, { method: 'POST', body: t.notifies[i % t.notifies.length] }).then(text),
      (t, r) => r.status === 200 && r.text.includes('SUCCESS'));

    return {
      routes: compare(targets, ROUTES),
      paid: targets[0].stack.sql("SELECT COUNT(*) AS n FROM orders WHERE status = 'PAID'")[0].n,
      orders: targets[0].orders.length,
    };
  } finally {
    for (const t of targets) await t.stack.stop();
  }
}

/**
 * The same workers with every binding and WeChat stood in by bench/mock-entry.mjs: no
 * emulation and nothing stored, so what is left is the runtime's request handling and the
 * worker's own code, and the difference is measured closely.
 */
async function standIns() {
  const targets = [];
  try {
    await start(targets, (name) => ({ main: 'bench/mock-entry.mjs', vars: { MOCK_TARGET: name } }));
    const token = 'A'.repeat(43); // token-shaped; the stand-in KV knows every token
    for (const t of targets) {
      const { vars, secrets } = t.stack;
      const u = {
        return_code: 'SUCCESS', return_msg: 'OK', appid: vars.WECHAT_APPID, mch_id: vars.WECHAT_MCH_ID, nonce_str: 'n0',
        result_code: 'SUCCESS', prepay_id: 'wx201410272009395522657a690389285100', trade_type: 'JSAPI',
      };
      await post(`${t.stack.api}/__mock/setup`, {
        jscode2session: JSON.stringify({ openid: 'oBenchMock', session_key: 'tiihtNczf5v6AKRyjwEUhQ==' }),
        unifiedorder: toXml({ ...u, sign: sign(u, secrets.WECHAT_PAY_KEY) }),
        total_fee: 100,
      });
      t.notify = signedNotify(t.stack, 'BenchOrder0000000000000000000001', 100, 0);
    }
    const calls = {
      nostore: [(t) => fetch(`${t.stack.api}/nope`).then(json), 404],
      login: [(t) => post(`${t.stack.api}/login/`, { code: '0a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p' }).then(json), 200],
      pay: [(t) => post(`${t.stack.api}/pay/`, { money: 100 }, { authorization: `Bearer ${token}` }).then(json), 200],
      notify: [(t) => fetch(`${t.stack.api}/notify/`, { method: 'POST', body: t.notify }).then(text), 200],
    };
    for (const [route, [call, status]] of Object.entries(calls)) {
      for (const t of targets) for (let i = 0; i < 100; i++) await call(t); // warm up
      await alternate(targets, route, (t) => call(t), (t, r) => r.status === status);
    }
    return { routes: compare(targets, Object.keys(calls)) };
  } finally {
    for (const t of targets) await t.stack.stop();
  }
}

/** The real local stack under PAY_API=v3: pay and notify. */
async function emulatedV3() {
  const targets = [];
  try {
    await start(targets, (name, main) => ({ main }), 'v3');
    const api = (t) => t.stack.api;
    // Warm up (/healthz also imports every APIv3 key into WebCrypto), then 50 users each.
    for (const t of targets) for (let i = 0; i < 30; i++) await fetch(`${api(t)}/healthz`).then((r) => r.text());
    for (const t of targets) {
      t.tokens = [];
      t.orders = [];
      for (let i = 0; i < 50; i++) t.tokens.push((await t.stack.login(`oBenchV3${i}`)).token);
    }
    await alternate(targets, 'pay',
      (t, i) => post(`${api(t)}/pay/`, { money: 1 + (i % 100) }, { authorization: `Bearer ${t.tokens[i % t.tokens.length]}` }).then(json),
      (t, r, i) => r.status === 200 && t.orders.push({ no: r.body.data.out_trade_no, fee: 1 + (i % 100) }));
    // Signed now, so every timestamp is well within the 300 s WeChat allows.
    for (const t of targets) t.notifies = t.orders.map(({ no, fee }, i) => v3Notify(t, no, fee, i));
    await alternate(targets, 'notify',
      (t, i) => { const n = t.notifies[i % t.notifies.length]; return fetch(`${api(t)}/notify/`, { method: 'POST', headers: n.headers, body: n.body }).then(text); },
      (t, r) => r.status === 204);
    return {
      routes: compare(targets, ['pay', 'notify']),
      paid: targets[0].stack.sql("SELECT COUNT(*) AS n FROM orders WHERE status = 'PAID'")[0].n,
      orders: targets[0].orders.length,
    };
  } finally {
    for (const t of targets) await t.stack.stop();
  }
}

/** The stand-ins under PAY_API=v3: a signed prepay answer, one signed notify. */
async function standInsV3() {
  const targets = [];
  try {
    await start(targets, (name) => ({ main: 'bench/mock-entry.mjs', vars: { MOCK_TARGET: name } }), 'v3');
    const token = 'A'.repeat(43);
    // Signed just before each route is measured: fresh timestamps.
    const setup = async (t) => {
      const body = JSON.stringify({ prepay_id: 'wx201410272009395522657a690389285100' });
      await post(`${t.stack.api}/__mock/setup`, { v3prepay: { body, headers: wechatSigned(t.stack, body) }, total_fee: 100 });
      t.notify = v3Notify(t, 'BenchOrder0000000000000000000001', 100, 0);
    };
    const calls = {
      pay: [(t) => post(`${t.stack.api}/pay/`, { money: 100 }, { authorization: `Bearer ${token}` }).then(json), 200],
      notify: [(t) => fetch(`${t.stack.api}/notify/`, { method: 'POST', headers: t.notify.headers, body: t.notify.body }).then(text), 204],
    };
    for (const [route, [call, status]] of Object.entries(calls)) {
      for (const t of targets) await setup(t);
      for (const t of targets) for (let i = 0; i < 100; i++) await call(t); // warm up
      await alternate(targets, route, (t) => call(t), (t, r) => r.status === status);
    }
    return { routes: compare(targets, Object.keys(calls)) };
  } finally {
    for (const t of targets) await t.stack.stop();
  }
}

/** The Wechatpay-* headers WeChat sends with `body` (signed with its key, now). */
function wechatSigned(stack, body) {
  const ts = String(Math.floor(Date.now() / 1000));
  const nonce = randomBytes(16).toString('hex');
  const signature = createSign('RSA-SHA256').update(`${ts}\n${nonce}\n${body}\n`).sign(stack.v3.wechat.privateKey, 'base64');
  return {
    'content-type': 'application/json',
    'wechatpay-timestamp': ts,
    'wechatpay-nonce': nonce,
    'wechatpay-serial': stack.v3.publicKeyId,
    'wechatpay-signature': signature,
  };
}

/**
 * A v3 payment notify as WeChat sends it: the transaction encrypted with the APIv3 key
 * (AEAD_AES_256_GCM), the envelope signed. The reference is also told the order by
 * header, since it decrypts nothing.
 */
function v3Notify(t, no, fee, i) {
  const { vars, v3 } = t.stack;
  const tx = JSON.stringify({
    appid: vars.WECHAT_APPID, mchid: vars.WECHAT_MCH_ID, out_trade_no: no,
    transaction_id: `42000000000000000${String(i).padStart(11, '0')}`, trade_type: 'JSAPI', trade_state: 'SUCCESS',
    trade_state_desc: '支付成功', bank_type: 'OTHERS', success_time: '2026-12-02T10:00:00+08:00',
    payer: { openid: 'oBench0' }, amount: { total: fee, payer_total: fee, currency: 'CNY', payer_currency: 'CNY' },
  });
  const nonce = randomBytes(6).toString('hex');
  const c = createCipheriv('aes-256-gcm', Buffer.from(v3.apiV3Key), Buffer.from(nonce));
  c.setAAD(Buffer.from('transaction'));
  const ciphertext = Buffer.concat([c.update(tx), c.final(), c.getAuthTag()]).toString('base64');
  const body = JSON.stringify({
    id: `EV-${randomBytes(4).toString('hex')}`, create_time: '2026-12-02T10:00:01+08:00', resource_type: 'encrypt-resource',
    event_type: 'TRANSACTION.SUCCESS', summary: '支付成功',
    resource: { original_type: 'transaction', algorithm: 'AEAD_AES_256_GCM', ciphertext, associated_data: 'transaction', nonce },
  });
  const headers = wechatSigned(t.stack, body);
  if (t.name === 'reference') Object.assign(headers, { 'x-bench-out-trade-no': no, 'x-bench-transaction-id': JSON.parse(tx).transaction_id });
  return { body, headers };
}

function signedNotify(stack, no, fee, i) {
  const { vars, secrets } = stack;
  const p = {
    appid: vars.WECHAT_APPID, mch_id: vars.WECHAT_MCH_ID, nonce_str: `n${i}`, result_code: 'SUCCESS', return_code: 'SUCCESS',
    openid: 'oBench0', trade_type: 'JSAPI', bank_type: 'OTHERS', total_fee: String(fee), cash_fee: String(fee),
    transaction_id: `42000000000000000${String(i).padStart(11, '0')}`, out_trade_no: no, time_end: '20261125120000',
  };
  return toXml({ ...p, sign: sign(p, secrets.WECHAT_PAY_KEY) });
}

async function main() {
  const real = await emulated();
  const mocked = await standIns();
  const realV3 = await emulatedV3();
  const mockedV3 = await standInsV3();
  const wasm = readFileSync(`${ROOT}/worker/build/index_bg.wasm`);
  console.log(JSON.stringify({
    n: N, c: C, b: B,
    paid: real.paid,
    orders: real.orders,
    wasm_raw: wasm.length,
    wasm_gzip: gzipSync(wasm, { level: 9 }).length,
    routes: real.routes,
    standins: mocked.routes,
    paid_v3: realV3.paid,
    orders_v3: realV3.orders,
    routes_v3: realV3.routes,
    standins_v3: mockedV3.routes,
  }));
}

await main();

// Load: the hot endpoints (login, pay, notify) and the full pay flow (login → pay → the
// app pays → WeChat's notify → PAID) against wxsim + the worker under `wrangler dev`, at
// several concurrencies, as the D1 tables grow. Every answer must be a correct envelope;
// the ledger invariant is checked after each run. Prints one JSON object (scripts/bench load).
//
//   BENCH_CONCURRENCIES=1,8,32,128 BENCH_SIZES=0,10000,100000 BENCH_LOAD_REQUESTS=256 node bench/load.mjs
import { DatabaseSync } from 'node:sqlite';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Stack } from '../tests/e2e/harness.mjs';
import { assertLedger } from '../tests/e2e/ledger_check.mjs';
import { sign, toXml } from '../pkg/index.mjs';
import { TICK_MS, ticks, workerdPids } from './proc.mjs';

const CONCURRENCIES = (process.env.BENCH_CONCURRENCIES ?? '1,8,32,128').split(',').map(Number);
const SIZES = (process.env.BENCH_SIZES ?? '0,10000,100000').split(',').map(Number);
const REQUESTS = Number(process.env.BENCH_LOAD_REQUESTS ?? 256);

const post = (url, body, headers = {}) =>
  fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) })
    .then(async (r) => ({ status: r.status, body: await r.json() }));

const STATUS_OF_CODE = { 0: [200], 1: [400], 2: [401], 3: [400, 502], 4: [401], 5: [404, 405], 6: [409], 7: [403], 8: [413], 9: [500, 502, 504], 10: [429] };
const goodEnvelope = (r) => r && typeof r.body === 'object' && Number.isInteger(r.body.code) && STATUS_OF_CODE[r.body.code]?.includes(r.status);

/**
 * n requests, c at a time; wall time, latency percentiles, workerd CPU per request.
 * `fn` returns 'ok', 'retry' (a correct code-9 envelope: WeChat did not answer in time,
 * nothing lost, the client retries) or a string saying what was wrong (a failure).
 */
async function drive(stack, n, c, fn) {
  const pids = workerdPids(stack);
  const lat = [];
  let failures = 0;
  let retries = 0;
  const problems = [];
  let next = 0;
  const cpu0 = ticks(pids.user);
  const t0 = performance.now();
  await Promise.all(Array.from({ length: Math.min(c, n) }, async () => {
    while (next < n) {
      const i = next++;
      const s = performance.now();
      const outcome = await fn(i).catch((e) => `transport: ${e.message}`);
      lat.push(performance.now() - s);
      if (outcome === 'retry') retries++;
      else if (outcome !== 'ok') {
        failures++;
        if (problems.length < 3) problems.push(String(outcome).slice(0, 200));
      }
    }
  }));
  const wall = performance.now() - t0;
  const cpu = (ticks(pids.user) - cpu0) * TICK_MS;
  lat.sort((a, b) => a - b);
  return {
    n, c, failures, retries, problems,
    rps: (n * 1000) / wall,
    p50_ms: lat[Math.floor(n * 0.5)],
    p99_ms: lat[Math.min(n - 1, Math.floor(n * 0.99))],
    cpu_ms: cpu / n,
  };
}

function d1File(stack) {
  let best;
  const walk = (d) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (name.endsWith('.sqlite') && name !== 'metadata.sqlite' && (!best || statSync(p).size > statSync(best).size)) best = p;
    }
  };
  walk(join(stack.persist, 'v3', 'd1'));
  return best;
}

/** 'ok' for code 0, 'retry' for a correct code 9, else what was wrong. */
function judge(r) {
  if (!goodEnvelope(r)) return `bad envelope: HTTP ${r?.status} ${JSON.stringify(r?.body)}`;
  if (r.body.code === 0) return 'ok';
  if (r.body.code === 9) return 'retry';
  return `code ${r.body.code}: ${r.body.msg}`;
}

/** Grows the tables to `total` orders (with a notification each; a third withdrawn in
 * withdrawals of 100), writing D1's SQLite file while the worker is stopped. */
async function grow(stack, total, merchants) {
  const have = stack.sql('SELECT COUNT(*) AS n FROM orders')[0].n;
  if (have >= total) return;
  await stack.kill('worker');
  const db = new DatabaseSync(d1File(stack));
  db.exec('BEGIN');
  db.exec("INSERT OR IGNORE INTO users (openid, created_ms, login_ms, updated_ms) VALUES ('oSeed', 0, 0, 0)");
  const order = db.prepare(`INSERT INTO orders (out_trade_no, openid, merchant_id, total_fee, body, spbill_create_ip, status,
    prepay_id, prepay_ms, transaction_id, paid_ms, withdrawal_id, created_ms, updated_ms, paid_via)
    VALUES (?, 'oSeed', ?, ?, 'seed', '127.0.0.1', ?, 'wx_seed', 1, ?, ?, ?, 1, 1, ?)`);
  const note = db.prepare("INSERT INTO notifications (received_ms, body, out_trade_no, verdict, reason) VALUES (1, ?, ?, 'CREDITED', 'seed')");
  const wd = db.prepare('INSERT INTO withdrawals (withdrawal_id, merchant_id, amount_fen, order_count, created_ms) VALUES (?, ?, ?, ?, 1)');
  const filler = '<xml>' + 'x'.repeat(1000) + '</xml>';
  const open = new Map(); // merchant → { id, sum, n }
  for (let i = have; i < total; i++) {
    const m = merchants[i % merchants.length].merchant_id;
    const no = `SEED${String(i).padStart(12, '0')}`;
    const fee = 1 + (i % 5000);
    const status = ['PAID', 'WITHDRAWN', 'CLOSED'][i % 3];
    let w = null;
    if (status === 'WITHDRAWN') {
      const cur = open.get(m) ?? { id: `wd_seed_${m}_${i}`, sum: 0, n: 0 };
      cur.sum += fee;
      cur.n += 1;
      w = cur.id;
      if (cur.n === 100) {
        wd.run(cur.id, m, cur.sum, cur.n);
        open.delete(m);
      } else open.set(m, cur);
    }
    const paid = status === 'CLOSED' ? null : 1;
    order.run(no, m, fee, status, paid ? `4200${String(i).padStart(24, '0')}` : null, paid, w, paid ? 'notify' : null);
    note.run(filler, no);
  }
  for (const [m, cur] of open) wd.run(cur.id, m, cur.sum, cur.n);
  db.exec('COMMIT');
  db.close();
  await stack.restartWorker();
}

const stack = await new Stack({ logLevel: 'warn', timeScale: 0.001 }).start();
const runs = [];
try {
  const admin = { authorization: `Bearer ${stack.secrets.ADMIN_TOKEN}` };
  const merchants = [];
  for (const name of ['L1', 'L2', 'L3']) merchants.push((await post(`${stack.api}/admin/merchants`, { name }, admin)).body.data);
  const appid = stack.vars.WECHAT_APPID;
  const key = stack.secrets.WECHAT_PAY_KEY;
  const paid = []; // orders the load paid for real: { no, fee, m }
  let seq = 0;
  const notifyBody = (no, fee, i) => {
    const p = {
      appid, mch_id: stack.vars.WECHAT_MCH_ID, nonce_str: `n${i}`, result_code: 'SUCCESS', return_code: 'SUCCESS',
      openid: 'oLoad', trade_type: 'JSAPI', bank_type: 'OTHERS', total_fee: String(fee), cash_fee: String(fee),
      transaction_id: `43${String(i).padStart(26, '0')}`, out_trade_no: no, time_end: '20261125120000',
    };
    return toXml({ ...p, sign: sign(p, key) });
  };
  for (let i = 0; i < 20; i++) await fetch(`${stack.api}/healthz`).then((r) => r.text());

  for (const size of SIZES) {
    await grow(stack, size, merchants);
    const rows = stack.sql('SELECT COUNT(*) AS n FROM orders')[0].n;
    for (const c of CONCURRENCIES) {
      const n = Math.max(REQUESTS, 2 * c);
      const base = seq;
      seq += n;
      // login: codes fetched first, so only /login/ is measured.
      const codes = [];
      for (let i = 0; i < n; i++) codes.push((await post(`${stack.sim}/sim/login`, { appid, openid: `oLoad${(base + i) % 500}` })).body.code);
      const tokens = [];
      const login = await drive(stack, n, c, async (i) => {
        const r = await post(`${stack.api}/login/`, { code: codes[i] });
        if (r.body.code === 0) tokens.push(r.body.data.token);
        return judge(r);
      });
      const orders = [];
      const pay = await drive(stack, n, c, async (i) => {
        const fee = 1 + ((base + i) % 1000);
        const m = merchants[i % merchants.length].merchant_id;
        const r = await post(`${stack.api}/pay/`, { money: fee, merchant_id: m }, { authorization: `Bearer ${tokens[i % tokens.length]}` });
        if (r.body.code === 0) orders.push({ no: r.body.data.out_trade_no, fee, m });
        return judge(r);
      });
      const bodies = orders.map((o, i) => notifyBody(o.no, o.fee, base + i));
      const notify = await drive(stack, orders.length, c, async (i) => {
        const r = await fetch(`${stack.api}/notify/`, { method: 'POST', body: bodies[i] });
        const text = await r.text();
        if (r.status === 200 && text.includes('SUCCESS')) {
          paid.push(orders[i]);
          return 'ok';
        }
        return `notify: HTTP ${r.status} ${text.slice(0, 120)}`;
      });
      // The whole flow, as a user lives it.
      const flowCodes = [];
      for (let i = 0; i < n; i++) flowCodes.push((await post(`${stack.sim}/sim/login`, { appid, openid: `oFlow${(base + i) % 500}` })).body.code);
      const flow = await drive(stack, n, c, async (i) => {
        // As a careful client does: a code 9 is retried (login with a fresh code, pay with
        // the out_trade_no it was given); each retry is counted.
        let retried = false;
        let l = await post(`${stack.api}/login/`, { code: flowCodes[i] });
        while (judge(l) === 'retry') {
          retried = true;
          const { code } = (await post(`${stack.sim}/sim/login`, { appid, openid: `oFlow${(base + i) % 500}` })).body;
          l = await post(`${stack.api}/login/`, { code });
        }
        if (judge(l) !== 'ok') return `login: ${judge(l)}`;
        const fee = 1 + ((base + i) % 777);
        const m = merchants[(i + 1) % merchants.length].merchant_id;
        const auth = { authorization: `Bearer ${l.body.data.token}` };
        let p = await post(`${stack.api}/pay/`, { money: fee, merchant_id: m }, auth);
        while (judge(p) === 'retry' && p.body.data?.out_trade_no) {
          retried = true;
          p = await post(`${stack.api}/pay/`, { out_trade_no: p.body.data.out_trade_no }, auth);
        }
        if (judge(p) !== 'ok') return `pay: ${judge(p)}`;
        const s = await post(`${stack.sim}/sim/pay`, { appId: appid, ...p.body.data });
        if (s.status !== 200) return `sim pay: ${JSON.stringify(s.body)}`;
        for (let k = 0; k < 1200; k++) {
          const o = stack.sql('SELECT status FROM orders WHERE out_trade_no = ?', p.body.data.out_trade_no)[0];
          if (o?.status === 'PAID') {
            paid.push({ no: p.body.data.out_trade_no, fee, m });
            return retried ? 'retry' : 'ok';
          }
          await new Promise((r) => setTimeout(r, 50));
        }
        return 'not PAID 60 s after the payment';
      });
      // A withdrawal per merchant, then the invariant.
      for (const m of merchants) await post(`${stack.api}/merchant/withdrawals`, {}, { authorization: `Bearer ${m.api_key}` });
      assertLedger(stack.sql.bind(stack));
      const audit = (await fetch(`${stack.api}/admin/ledger`, { headers: admin }).then((r) => r.json())).data;
      if (!audit.ok) throw new Error(`ledger audit failed: ${JSON.stringify(audit.violations)}`);
      runs.push({ rows, c, login, pay, notify, flow, ledger_ok: true });
      console.error(`rows ${rows} c ${c}: login ${login.rps.toFixed(0)}/s pay ${pay.rps.toFixed(0)}/s notify ${notify.rps.toFixed(0)}/s flow ${flow.rps.toFixed(1)}/s failures ${login.failures + pay.failures + notify.failures + flow.failures}, code-9 retries ${login.retries + pay.retries + flow.retries}`);
    }
  }
  // Drift against what the load really paid (seed rows aside).
  const real = new Map();
  for (const p of paid) real.set(p.m, (real.get(p.m) ?? 0) + p.fee);
  let drift = 0;
  for (const m of merchants) {
    const got = stack.sql("SELECT COALESCE(SUM(total_fee), 0) AS s FROM orders WHERE merchant_id = ? AND status IN ('PAID', 'WITHDRAWN') AND out_trade_no NOT LIKE 'SEED%'", m.merchant_id)[0].s;
    drift += Math.abs(got - (real.get(m.merchant_id) ?? 0));
  }
  console.log(JSON.stringify({ runs, drift, requests: REQUESTS }));
} finally {
  await stack.stop();
}

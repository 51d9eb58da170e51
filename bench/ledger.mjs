// Pays/s, withdrawals/s and refunds/s against the real stack (wxsim + the worker under
// wrangler dev, local D1), under concurrency, with the ledger invariant checked after every
// run. Prints one JSON object; scripts/bench.d/ledger turns it into bench/RESULTS.md.
//
//   BENCH_PAYS=400 BENCH_CONCURRENCY=16 BENCH_WITHDRAWALS=200 BENCH_REFUNDS=100 node bench/ledger.mjs
import { startStack, waitUntil } from '../tests/e2e/harness.mjs';
import { assertLedger } from '../tests/e2e/ledger_check.mjs';
import { cpuMs, workerdPids } from './proc.mjs';

const PAYS = Number(process.env.BENCH_PAYS ?? 400);
const C = Number(process.env.BENCH_CONCURRENCY ?? 16);
const WITHDRAWALS = Number(process.env.BENCH_WITHDRAWALS ?? 200);
const REFUNDS = Number(process.env.BENCH_REFUNDS ?? 100);
const BILL_ROWS = Number(process.env.BENCH_BILL_ROWS ?? 100000);

function percentile(xs, p) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

async function pool(n, c, fn) {
  let i = 0;
  const lat = [];
  const t0 = performance.now();
  await Promise.all(Array.from({ length: c }, async () => {
    while (i < n) {
      const k = i++;
      const s = performance.now();
      await fn(k);
      lat.push(performance.now() - s);
    }
  }));
  const secs = (performance.now() - t0) / 1000;
  return { n, secs, per_sec: n / secs, p50_ms: percentile(lat, 50), p99_ms: percentile(lat, 99) };
}

// v2 pays (as before), with APIv3 keys for the refunds.
const stack = await startStack({ logLevel: 'warn', timeScale: 0.001, v3Keys: true });
try {
  const admin = { authorization: `Bearer ${stack.secrets.ADMIN_TOKEN}` };
  const merchants = [];
  for (const name of ['m1', 'm2', 'm3', 'm4']) {
    merchants.push((await stack.call('POST', '/admin/merchants', { json: { name }, headers: admin })).body.data);
  }
  const users = [];
  for (let i = 0; i < 8; i++) users.push(await stack.login(`oBench${i}`));
  const expect = (r, what) => {
    if (r.status !== 200 || r.body.code !== 0) throw new Error(`${what}: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body.data;
  };
  const paid = [];
  const payOne = async (k) => {
    const m = merchants[k % merchants.length];
    const fee = 1 + ((k * 7919) % 10000);
    const p = expect(await stack.call('POST', '/pay/', { json: { token: users[k % users.length].token, money: fee, merchant_id: m.merchant_id } }), 'pay');
    const s = await stack.simCall('POST', '/sim/pay', { appId: stack.vars.WECHAT_APPID, ...p });
    if (s.status !== 200) throw new Error(`sim pay: ${JSON.stringify(s.body)}`);
    paid.push({ no: p.out_trade_no, m: m.merchant_id, fee });
  };
  // 1. Pays alone: POST /pay/ (D1 insert, unifiedorder to wxsim, D1 update) + the app's payment.
  const pays = await pool(PAYS, C, payOne);
  const isPaid = () => stack.sql("SELECT COUNT(*) AS n FROM orders WHERE status IN ('PAID', 'WITHDRAWN')")[0].n === paid.length;
  await waitUntil(isPaid, 'every notify credited', 120000);
  // 2. Withdrawals while pays keep landing: each claims whatever is PAID at that instant.
  let answered = { claimed: 0, nothing: 0 };
  const more = pool(PAYS / 2, Math.max(1, C / 2), (k) => payOne(PAYS + k));
  const withdrawals = await pool(WITHDRAWALS, C, async (k) => {
    const m = merchants[k % merchants.length];
    const r = await stack.call('POST', '/merchant/withdrawals', { headers: { authorization: `Bearer ${m.api_key}` } });
    if (r.body.code === 0) answered.claimed++;
    else if (r.body.code === 6) answered.nothing++;
    else throw new Error(`withdrawal: ${r.status} ${JSON.stringify(r.body)}`);
  });
  await more;
  await waitUntil(isPaid, 'every notify credited', 120000);
  // 3. Refunds (POST /merchant/refunds: the guarded batch, APIv3's refund at wxsim, its
  // answer), some of orders already withdrawn (debts), while withdrawals keep firing.
  const refunded = [];
  const refundAnswered = { ok: 0, refused: 0 };
  const moreWithdrawals = pool(WITHDRAWALS / 4, Math.max(1, C / 4), async (k) => {
    const m = merchants[k % merchants.length];
    await stack.call('POST', '/merchant/withdrawals', { headers: { authorization: `Bearer ${m.api_key}` } });
  });
  const refunds = await pool(REFUNDS, C, async (k) => {
    const p = paid[(k * 131) % paid.length];
    const m = merchants.find((x) => x.merchant_id === p.m);
    const amount = 1 + ((k * 613) % p.fee);
    const r = await stack.call('POST', '/merchant/refunds', {
      json: { out_trade_no: p.no, amount_fen: amount },
      headers: { authorization: `Bearer ${m.api_key}`, 'idempotency-key': `bench-${k}` },
    });
    if (r.body.code === 0) {
      refundAnswered.ok++;
      refunded.push({ no: r.body.data.out_refund_no, m: p.m, amount });
    } else if (r.body.code === 6) refundAnswered.refused++;
    else throw new Error(`refund: ${r.status} ${JSON.stringify(r.body)}`);
  });
  await moreWithdrawals;
  const settled = () => stack.sql("SELECT COUNT(*) AS n FROM refunds WHERE status = 'SUCCESS'")[0].n === refunded.length;
  await waitUntil(settled, 'every refund settled', 120000);
  for (const m of merchants) await stack.call('POST', '/merchant/withdrawals', { headers: { authorization: `Bearer ${m.api_key}` } });
  // 3. The invariant, and drift against what was really paid.
  assertLedger(stack.sql.bind(stack));
  const audit = (await stack.call('GET', '/admin/ledger', { headers: admin })).body.data;
  if (!audit.ok) throw new Error(`audit: ${JSON.stringify(audit.violations)}`);
  // Per merchant: what was really paid, less what was really refunded, is what was
  // withdrawn plus what is left (below zero: owed).
  let drift = 0;
  for (const m of merchants) {
    const real = paid.filter((p) => p.m === m.merchant_id).reduce((s, p) => s + p.fee, 0)
      - refunded.filter((r) => r.m === m.merchant_id).reduce((s, r) => s + r.amount, 0);
    const out = stack.sql('SELECT COALESCE(SUM(amount_fen), 0) AS s FROM withdrawals WHERE merchant_id = ?', m.merchant_id)[0].s;
    const left = (await stack.call('GET', '/merchant/balance', { headers: { authorization: `Bearer ${m.api_key}` } })).body.data.available_fen;
    drift += Math.abs(real - out - left);
  }
  if (drift !== 0) throw new Error(`drift ${drift} fen`);
  const n = stack.sql('SELECT (SELECT COUNT(*) FROM orders) AS orders, (SELECT COUNT(*) FROM withdrawals) AS withdrawals')[0];
  // 4. The daily bill: today's (wxsim gives the day so far: this run's payments and refunds)
  // padded to BILL_ROWS rows of payments WeChat has and we do not, fetched, gunzipped,
  // parsed, stored and matched by one POST /admin/reconciliation. The figure is the CPU of
  // the workerd running the worker — local D1's SQLite included, so an upper bound on the
  // worker's own — against the cron's CPU limit (30 s by default on the paid plan).
  const today = new Date(Date.now() + 8 * 3600_000).toISOString().slice(0, 10);
  const real = stack.sql('SELECT (SELECT COUNT(*) FROM orders WHERE paid_ms IS NOT NULL) AS p, (SELECT COUNT(*) FROM refunds) AS r')[0];
  const pad = Math.max(0, BILL_ROWS - real.p - real.r);
  const padded = await stack.simCall('POST', '/sim/bill-padding', { date: today, rows: pad });
  if (padded.status >= 300) throw new Error(`bill padding: ${JSON.stringify(padded.body)}`);
  const { user } = workerdPids(stack);
  const cpu0 = cpuMs(user);
  const t0 = performance.now();
  const billed = await stack.call('POST', `/admin/reconciliation?date=${today}`, { headers: admin });
  const bill = { wall_ms: performance.now() - t0, cpu_ms: cpuMs(user) - cpu0 };
  if (billed.status !== 200 || !billed.body.data.fetched.ok) throw new Error(`bill: ${billed.status} ${JSON.stringify(billed.body).slice(0, 500)}`);
  Object.assign(bill, { rows: billed.body.data.bill.rows, differences: billed.body.data.bill.differences, padding: pad });
  console.log(JSON.stringify({ c: C, pays, withdrawals, refunds, refund_answered: refundAnswered, answered, orders: n.orders, stored_withdrawals: n.withdrawals, drift, audit_ok: audit.ok, bill }));
} finally {
  await stack.stop();
}

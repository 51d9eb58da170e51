// Chaos: many merchants, many concurrent pays, every kind of bad notify, and withdrawals
// firing all the while. At the end every merchant has withdrawn exactly what its payers
// really paid (wxsim is the truth): drift 0 fen, no order twice, nothing forged credited.
import test, { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { sign, toXml } from '../../pkg/index.mjs';
import { startStack, waitUntil } from './harness.mjs';
import { assertLedger } from './ledger_check.mjs';

const PAYS = Number(process.env.CHAOS_PAYS ?? 160);
const CONCURRENCY = Number(process.env.CHAOS_CONCURRENCY ?? 16);

let stack;
before(async () => {
  stack = await startStack({ timeScale: 0.001, wechatTimeoutMs: 3000 });
});
after(() => stack?.stop());

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// A small deterministic PRNG, so a failing run can be replayed with CHAOS_SEED.
let seed = Number(process.env.CHAOS_SEED ?? 20261125);
const rand = () => {
  seed = (seed * 1103515245 + 12345) % 2147483648;
  return seed / 2147483648;
};
const pick = (xs) => xs[Math.floor(rand() * xs.length)];

/** Every answer must be the envelope, its code agreeing with its status. */
const STATUS_OF_CODE = { 0: [200], 1: [400], 2: [401], 3: [502, 400], 4: [401], 5: [404, 405], 6: [409], 7: [403], 8: [413], 9: [500, 502, 504] };
function envelope(r, what) {
  assert.equal(typeof r.body, 'object', `${what}: not JSON: ${r.body}`);
  assert.ok(Number.isInteger(r.body.code) && typeof r.body.msg === 'string' && 'data' in r.body, `${what}: ${JSON.stringify(r.body)}`);
  assert.ok(STATUS_OF_CODE[r.body.code]?.includes(r.status), `${what}: code ${r.body.code} with HTTP ${r.status}`);
  return r;
}

async function pool(items, n, fn) {
  let i = 0;
  await Promise.all(Array.from({ length: n }, async () => {
    while (i < items.length) await fn(items[i++]);
  }));
}

function notifyXml(fields, key) {
  const params = { return_code: 'SUCCESS', result_code: 'SUCCESS', appid: stack.vars.WECHAT_APPID, mch_id: stack.vars.WECHAT_MCH_ID,
    nonce_str: `n${Math.floor(rand() * 1e12)}`, openid: 'oForger', trade_type: 'JSAPI', bank_type: 'CMC', fee_type: 'CNY',
    cash_fee: String(fields.total_fee), time_end: '20261125120000', ...fields };
  params.sign = sign(params, key, 'MD5');
  return toXml(params);
}

test(`chaos: ${PAYS} pays at concurrency ${CONCURRENCY}, forged and reordered notifies, concurrent withdrawals: drift 0`, { timeout: 600000 }, async () => {
  const admin = { authorization: `Bearer ${stack.secrets.ADMIN_TOKEN}` };
  const merchants = [];
  for (const name of ['north', 'south', 'east']) {
    const r = envelope(await stack.call('POST', '/admin/merchants', { json: { name }, headers: admin }), 'merchant');
    merchants.push(r.body.data);
  }
  const key = envelope(await stack.call('POST', '/admin/merchants/default/api_key', { headers: admin }), 'default key');
  merchants.push({ merchant_id: 'default', api_key: key.body.data.api_key });
  const users = [];
  for (let i = 0; i < 8; i++) users.push(await stack.login(`oChaos${i}`));

  const orders = []; // { no, merchant_id, fee, kind }
  const forged = []; // out_trade_no of forged notifies for unknown orders
  const withdrawals = []; // first answers (not replays)
  let paying = true;

  // Withdrawals fire all the while: every merchant, some with a reused Idempotency-Key.
  const withdrawers = merchants.map(async (m, idx) => {
    let n = 0;
    while (paying) {
      await sleep(50 + rand() * 200);
      const key = rand() < 0.3 ? `${m.merchant_id}-${n % 3}` : undefined;
      n++;
      const headers = { authorization: `Bearer ${m.api_key}`, ...(key ? { 'idempotency-key': key } : {}) };
      const fire = () => stack.call('POST', '/merchant/withdrawals', { headers });
      const answers = await Promise.all(idx % 2 ? [fire(), fire()] : [fire()]);
      for (const r of answers) {
        envelope(r, 'withdrawal');
        if (r.body.code === 0 && !r.body.data.idempotent_replay) withdrawals.push({ merchant_id: m.merchant_id, ...r.body.data });
        else if (r.body.code !== 0) assert.equal(r.body.code, 6, JSON.stringify(r.body));
      }
    }
  });

  const kinds = ['plain', 'plain', 'double_tap', 'abandoned', 'not_enough', 'duplicate', 'out_of_order', 'wrong_sign', 'wrong_amount', 'retry'];
  const tasks = Array.from({ length: PAYS }, (_, i) => ({ i, merchant: merchants[i % merchants.length], kind: kinds[i % kinds.length], fee: 1 + Math.floor(rand() * 50000), user: pick(users) }));
  const fault = async (f) => assert.equal((await stack.simCall('POST', '/sim/faults', f)).status, 201);
  const simPay = (p) => stack.simCall('POST', '/sim/pay', { appId: stack.vars.WECHAT_APPID, ...p });

  await pool(tasks, CONCURRENCY, async (t) => {
    const r = envelope(await stack.call('POST', '/pay/', { json: { token: t.user.token, money: t.fee, merchant_id: t.merchant.merchant_id } }), 'pay');
    assert.equal(r.body.code, 0, JSON.stringify(r.body));
    const p = r.body.data;
    orders.push({ no: p.out_trade_no, merchant_id: t.merchant.merchant_id, fee: t.fee, kind: t.kind });
    switch (t.kind) {
      case 'abandoned':
        return;
      case 'not_enough':
        await fault({ target: 'pay', kind: 'not_enough', out_trade_no: p.out_trade_no });
        assert.notEqual((await simPay(p)).status, 200);
        return;
      case 'double_tap': {
        const both = await Promise.all([simPay(p), simPay(p)]);
        assert.ok(both.some((b) => b.status === 200), JSON.stringify(both.map((b) => b.body)));
        return;
      }
      case 'retry': {
        // The client asks again for the same order (a lost answer): same order, one charge.
        const again = envelope(await stack.call('POST', '/pay/', { json: { token: t.user.token, out_trade_no: p.out_trade_no } }), 'retry');
        assert.equal(again.body.data.out_trade_no, p.out_trade_no);
        assert.equal((await simPay(again.body.data)).status, 200);
        return;
      }
      case 'duplicate':
      case 'wrong_sign':
      case 'wrong_amount':
        await fault({ target: 'notify', kind: t.kind, out_trade_no: p.out_trade_no });
        break;
      case 'out_of_order':
        await fault({ target: 'notify', kind: 'out_of_order', out_trade_no: p.out_trade_no, delay_ms: 200 + Math.floor(rand() * 1500) });
        break;
      default:
    }
    assert.equal((await simPay(p)).status, 200);
    // Forgeries straight at /notify/ now and then: wrong key, wrong amount (right key), unknown order.
    if (t.i % 7 === 0) {
      const target = pick(orders);
      const bad = [
        notifyXml({ out_trade_no: target.no, total_fee: String(target.fee), transaction_id: `42${t.i}` }, 'f'.repeat(32)),
        notifyXml({ out_trade_no: target.no, total_fee: String(target.fee + 1), transaction_id: `43${t.i}` }, stack.secrets.WECHAT_PAY_KEY),
      ];
      const unknown = `FORGED${t.i}`;
      forged.push(unknown);
      bad.push(notifyXml({ out_trade_no: unknown, total_fee: '100', transaction_id: `44${t.i}` }, stack.secrets.WECHAT_PAY_KEY));
      for (const body of bad) {
        const res = await fetch(`${stack.api}/notify/`, { method: 'POST', headers: { 'content-type': 'text/xml' }, body });
        const text = await res.text();
        assert.match(text, /FAIL/, text);
      }
    }
  });

  // The truth: what wxsim says each payer really paid.
  const truth = new Map();
  for (const o of orders) {
    const w = (await stack.simCall('GET', `/sim/orders/${o.no}`)).body;
    truth.set(o.no, w.trade_state === 'SUCCESS' ? w.total_fee : 0);
  }
  const status = (no) => stack.sql('SELECT status FROM orders WHERE out_trade_no = ?', no)[0]?.status;
  // Every real payment's notify lands (retries, reordering), while withdrawals continue.
  await waitUntil(() => orders.every((o) => (truth.get(o.no) > 0) === ['PAID', 'WITHDRAWN'].includes(status(o.no))), 'every paid order credited, no other', 60000);
  paying = false;
  await Promise.all(withdrawers);
  // Drain: one last withdrawal each (code 6 when nothing is left).
  for (const m of merchants) {
    const r = envelope(await stack.call('POST', '/merchant/withdrawals', { headers: { authorization: `Bearer ${m.api_key}` } }), 'drain');
    if (r.body.code === 0) withdrawals.push({ merchant_id: m.merchant_id, ...r.body.data });
  }

  // Drift 0 per merchant: withdrawn = Σ fen really paid for its orders.
  const seen = new Set();
  for (const m of merchants) {
    const mine = withdrawals.filter((w) => w.merchant_id === m.merchant_id);
    const withdrawn = mine.reduce((s, w) => s + w.amount_fen, 0);
    const paid = orders.filter((o) => o.merchant_id === m.merchant_id).reduce((s, o) => s + truth.get(o.no), 0);
    assert.equal(withdrawn - paid, 0, `merchant ${m.merchant_id}: withdrawn ${withdrawn}, really paid ${paid}`);
    const bal = envelope(await stack.call('GET', '/merchant/balance', { headers: { authorization: `Bearer ${m.api_key}` } }), 'balance');
    assert.equal(bal.body.data.available_fen, 0);
    assert.equal(bal.body.data.withdrawn_fen, paid);
    for (const w of mine) {
      const fees = w.order_ids.map((no) => truth.get(no));
      assert.equal(fees.reduce((a, b) => a + b, 0), w.amount_fen, `withdrawal ${w.withdrawal_id} = its orders`);
      for (const no of w.order_ids) {
        assert.ok(!seen.has(no), `order ${no} in two withdrawals`);
        seen.add(no);
      }
    }
  }
  // Nothing forged credited; every forged notify recorded as refused.
  for (const no of forged) assert.equal(status(no), undefined);
  const verdicts = stack.sql('SELECT verdict, COUNT(*) AS n FROM notifications GROUP BY verdict');
  const v = Object.fromEntries(verdicts.map((r) => [r.verdict, r.n]));
  assert.ok(v.REJECTED > 0 && v.UNKNOWN_ORDER > 0 && v.DUPLICATE > 0, JSON.stringify(v));
  assert.equal(v.CREDITED, [...truth.values()].filter((f) => f > 0).length, 'one credit per real payment');
  assert.equal(stack.sql("SELECT COUNT(*) AS n FROM notifications WHERE verdict IS NULL")[0].n, 0, 'every notify judged');
  assertLedger(stack.sql.bind(stack));
  const audit = envelope(await stack.call('GET', '/admin/ledger', { headers: admin }), 'audit');
  assert.equal(audit.body.data.ok, true, JSON.stringify(audit.body.data.violations));
  // The abandoned and short-of-money orders are still open for the reconciler, unpaid.
  const open = orders.filter((o) => o.kind === 'abandoned' || o.kind === 'not_enough');
  for (const o of open) assert.equal(status(o.no), 'PREPAID');
  // A full run's logs carry no secret: not the env file's, not a merchant key, not a token.
  const { wxsim, worker } = stack.logs();
  const secrets = [...Object.entries(stack.secrets), ...merchants.map((m) => [`api_key of ${m.merchant_id}`, m.api_key]), ...users.map((u) => ['a session token', u.token])];
  for (const [name, value] of secrets) {
    assert.ok(!wxsim.includes(value) && !worker.includes(value), `${name} appears in a log`);
  }
  console.log(JSON.stringify({ pays: orders.length, withdrawals: withdrawals.length, verdicts: v }));
});

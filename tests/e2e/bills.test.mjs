// The daily bill end to end (issue 14): wxsim makes the bill of its own state (APIv3
// tradebill + download, and v2 downloadbill), the worker fetches it (POST
// /admin/reconciliation, and the cron), checks it, stores and matches it, and lists every
// difference; a bill whose SHA-1 is not WeChat's stores nothing; bad dates are refused.
// wxsim gives the bill of today as the day so far, so no test waits for midnight.
import test, { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, waitUntil } from './harness.mjs';
import { assertLedger } from './ledger_check.mjs';

/** A Beijing date, `days` from today. */
const beijing = (days = 0) => new Date(Date.now() + 8 * 3600_000 + days * 86_400_000).toISOString().slice(0, 10);

/** A stack with a shop and a user, and helpers around them. */
async function shopStack(opts) {
  const stack = await startStack({ wechatTimeoutMs: 1500, ...opts });
  const user = await stack.login('oBills');
  const m = await stack.call('POST', '/admin/merchants', { json: { name: 'bill shop' }, token: stack.secrets.ADMIN_TOKEN });
  assert.equal(m.status, 200, JSON.stringify(m.body));
  const shop = m.body.data;
  const admin = (method, path) => stack.call(method, path, { token: stack.secrets.ADMIN_TOKEN });
  const paid = async (money) => {
    const p = await stack.call('POST', '/pay/', { json: { token: user.token, money, merchant_id: shop.merchant_id } });
    assert.equal(p.status, 200, JSON.stringify(p.body));
    assert.equal((await stack.simCall('POST', '/sim/pay', { appId: stack.vars.WECHAT_APPID, ...p.body.data })).status, 200);
    const no = p.body.data.out_trade_no;
    await waitUntil(() => stack.sql('SELECT status FROM orders WHERE out_trade_no = ?', no)[0]?.status === 'PAID', `${no} PAID`);
    return no;
  };
  const fault = async (f) => {
    const r = await stack.simCall('POST', '/sim/faults', f);
    assert.equal(r.status, 201, JSON.stringify(r.body));
  };
  const fetchBill = async (date) => {
    const r = await admin('POST', `/admin/reconciliation?date=${date}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body.data;
  };
  const differences = (report) => report.differences.map((d) => `${d.kind} ${d.difference}`).sort();
  return { stack, user, shop, admin, paid, fault, fetchBill, differences };
}

test('APIv3: the bill is fetched, checked and matched; each discrepancy is listed; a forged one stores nothing', async (t) => {
  const s = await shopStack({ api: 'v3' });
  t.after(() => s.stack.stop());
  const { stack, admin } = s;
  const today = beijing();
  const a = await s.paid(120);
  await s.paid(80);
  const r = await stack.call('POST', '/merchant/refunds', { json: { out_trade_no: a, amount_fen: 20 }, token: s.shop.api_key });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  const rno = r.body.data.out_refund_no;
  await waitUntil(() => stack.sql('SELECT status FROM refunds WHERE out_refund_no = ?', rno)[0]?.status === 'SUCCESS', 'refund SUCCESS');

  // Never fetched: 404. Bad dates: code 1. No admin token: 403.
  assert.equal((await admin('GET', `/admin/reconciliation?date=${today}`)).status, 404);
  for (const bad of ['2026-13-01', '2026-02-30', '20261201', '']) {
    const b = await admin('GET', `/admin/reconciliation?date=${bad}`);
    assert.equal(b.status, 400, bad);
    assert.equal(b.body.code, 1, bad);
    assert.match(b.body.msg, /date/);
  }
  assert.equal((await admin('POST', '/admin/reconciliation')).status, 400);
  assert.equal((await stack.call('GET', `/admin/reconciliation?date=${today}`)).status, 403);

  // A bill whose hash_value is not the file's SHA-1: refused, nothing stored.
  await s.fault({ target: 'bill', kind: 'bill_hash', count: 1 });
  const forged = await s.fetchBill(today);
  assert.equal(forged.fetched.ok, false);
  assert.equal(forged.fetched.code, 'BILL_HASH_MISMATCH');
  assert.equal(forged.bill.status, 'FAILED');
  assert.deepEqual(forged.differences, []);
  assert.equal(stack.sql('SELECT COUNT(*) AS n FROM bill_rows')[0].n, 0);

  // The genuine bill: two payments and one refund, all agreeing.
  const good = await s.fetchBill(today);
  assert.equal(good.fetched.ok, true, JSON.stringify(good.fetched));
  assert.equal(good.bill.status, 'MATCHED');
  assert.equal(good.bill.rows, 3);
  assert.equal(good.bill.paid_fen, 200);
  assert.equal(good.bill.refunded_fen, 20);
  assert.match(good.bill.sha1, /^[0-9a-f]{40}$/);
  assert.deepEqual(good.differences, []);
  const listed = await admin('GET', `/admin/reconciliation?date=${today}`);
  assert.equal(listed.status, 200);
  assert.deepEqual(listed.body.data.bill, good.bill);

  // WeChat bills one payment at another amount, has one we never heard of, leaves one out
  // (a fault changes the next bill made; each fetch matches the day afresh).
  for (const [kind, found] of [
    ['bill_missing', ['PAYMENT MISSING_IN_BILL']],
    ['bill_extra', ['PAYMENT MISSING_HERE']],
    ['bill_amount', ['PAYMENT AMOUNT_DIFFERS']],
  ]) {
    await s.fault({ target: 'bill', kind, count: 1 });
    const off = await s.fetchBill(today);
    assert.equal(off.bill.status, 'MATCHED', kind);
    assert.deepEqual(s.differences(off), found, kind);
    assert.equal(off.bill.differences, 1, kind);
  }
  // Paged: a page of one, then nothing after it.
  const page = (await admin('GET', `/admin/reconciliation?date=${today}&limit=1`)).body.data;
  assert.equal(page.differences.length, 1);
  assert.ok(page.next_cursor);
  const rest = (await admin('GET', `/admin/reconciliation?date=${today}&limit=1&cursor=${page.next_cursor}`)).body.data;
  assert.deepEqual([rest.differences, rest.next_cursor], [[], null]);
  assert.equal((await admin('GET', `/admin/reconciliation?date=${today}&cursor=x`)).body.code, 1);
  const ledger = await admin('GET', '/admin/ledger');
  assert.equal(ledger.body.data.reconciliation.differences, 1);
  assert.deepEqual(ledger.body.data.reconciliation.by_difference, { AMOUNT_DIFFERS: 1 });
  assert.equal(ledger.body.data.reconciliation.last_matched, today);
  assert.equal(ledger.body.data.ok, true, 'a difference moves no money');
  await waitUntil(() => /the daily bill differs from our records/.test(stack.logs().worker), 'the difference logged as an error');

  // A later forged fetch of a matched day keeps the match and its differences.
  await s.fault({ target: 'bill', kind: 'bill_hash', count: 1 });
  const again = await s.fetchBill(today);
  assert.equal(again.fetched.ok, false);
  assert.equal(again.bill.status, 'MATCHED');
  assert.equal(again.differences.length, 1);

  // A day without trade: NO_BILL.
  const empty = await s.fetchBill(beijing(-1));
  assert.equal(empty.bill.status, 'NO_BILL');
  assert.deepEqual(empty.differences, []);
  assertLedger(stack.sql.bind(stack));
});

test('v2: downloadbill is fetched and matched; the cron fetches yesterday once it is due', async (t) => {
  const s = await shopStack({ vars: { BILL_READY_AFTER_SECS: '0' } });
  t.after(() => s.stack.stop());
  const { stack, admin } = s;
  await s.paid(55);
  const good = await s.fetchBill(beijing());
  assert.equal(good.fetched.ok, true, JSON.stringify(good.fetched));
  assert.equal(good.bill.status, 'MATCHED');
  assert.equal(good.bill.rows, 1);
  assert.equal(good.bill.paid_fen, 55);
  assert.deepEqual(good.differences, []);
  await s.fault({ target: 'bill', kind: 'bill_extra', count: 1 });
  const extra = await s.fetchBill(beijing());
  assert.deepEqual(s.differences(extra), ['PAYMENT MISSING_HERE']);

  // The cron: yesterday had no trade, so its bill is NO_BILL, fetched once.
  const yesterday = beijing(-1);
  const cron = await fetch(`${stack.api}/__scheduled?cron=*/5+*+*+*+*`);
  assert.equal(cron.status, 200);
  await waitUntil(async () => (await admin('GET', `/admin/reconciliation?date=${yesterday}`)).status === 200, 'the cron fetched yesterday');
  const y = (await admin('GET', `/admin/reconciliation?date=${yesterday}`)).body.data;
  assert.equal(y.bill.status, 'NO_BILL');
  assertLedger(stack.sql.bind(stack));
});

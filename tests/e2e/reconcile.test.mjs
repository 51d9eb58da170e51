// The reconciler, run as the cron runs it (wrangler dev --test-scheduled, /__scheduled):
// lost notifies become PAID through orderquery, unpaid orders are closed at WeChat after
// the prepay_id's life, orders WeChat never saw end CLOSED, a failing orderquery changes
// nothing, and a notify arriving after the reconciler credited the order changes nothing.
import test, { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, waitUntil } from './harness.mjs';
import { assertLedger } from './ledger_check.mjs';

// Due at once; unpaid orders close after 4 s instead of 2 h.
const CLOSE_AFTER_SECS = 4;
let stack;
let user;

before(async () => {
  stack = await startStack({
    wechatTimeoutMs: 1500,
    vars: { RECONCILE_GRACE_SECS: '0', RECONCILE_CLOSE_AFTER_SECS: String(CLOSE_AFTER_SECS), RECONCILE_BATCH: '50', RECONCILE_BACKOFF_MIN_SECS: '1', RECONCILE_BACKOFF_MAX_SECS: '2' },
  });
  user = await stack.login('oReconcile');
});
after(() => stack?.stop());

const fault = async (f) => {
  const r = await stack.simCall('POST', '/sim/faults', f);
  assert.equal(r.status, 201, JSON.stringify(r.body));
};
const row = (no) => stack.sql('SELECT status, paid_via, paid_ms, transaction_id, reconcile_note, failure FROM orders WHERE out_trade_no = ?', no)[0];
const pay = async (money, extra = {}) => stack.call('POST', '/pay/', { json: { token: user.token, money, ...extra } });
const simPay = (params) => stack.simCall('POST', '/sim/pay', { appId: stack.vars.WECHAT_APPID, ...params });

/** One cron run, the way Cloudflare would trigger it. */
async function cron() {
  const r = await fetch(`${stack.api}/__scheduled?cron=${encodeURIComponent('*/5 * * * *')}`);
  assert.equal(r.status, 200, await r.text());
}

test('a lost notify: the cron finds the payment with orderquery and credits it once', async () => {
  const r = await pay(4321);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  const no = r.body.data.out_trade_no;
  await fault({ target: 'notify', kind: 'drop', out_trade_no: no });
  assert.equal((await simPay(r.body.data)).status, 200);
  await waitUntil(async () => (await stack.simCall('GET', '/sim/notifications')).body.notifications.some((n) => n.out_trade_no === no), 'the drop');
  assert.equal(row(no).status, 'PREPAID', 'no notify arrived');
  await cron();
  await waitUntil(() => row(no).status === 'PAID', 'PAID by the reconciler');
  assert.equal(row(no).paid_via, 'reconciler');
  const wx = (await stack.simCall('GET', `/sim/orders/${no}`)).body;
  assert.equal(row(no).transaction_id, wx.transaction_id);
  // Another run changes nothing.
  const before = row(no);
  await cron();
  assert.deepEqual({ ...row(no) }, { ...before });
  assertLedger(stack.sql.bind(stack));
});

test('a notify that arrives after the reconciler credited the order changes nothing', async () => {
  const r = await pay(555);
  const no = r.body.data.out_trade_no;
  await fault({ target: 'notify', kind: 'out_of_order', out_trade_no: no, delay_ms: 2500 });
  assert.equal((await simPay(r.body.data)).status, 200);
  await cron();
  await waitUntil(() => row(no).status === 'PAID', 'PAID by the reconciler');
  const credited = row(no);
  assert.equal(credited.paid_via, 'reconciler');
  await waitUntil(() => stack.sql('SELECT verdict FROM notifications WHERE out_trade_no = ?', no)[0]?.verdict, 'the late notify', 10000);
  assert.equal(stack.sql('SELECT verdict FROM notifications WHERE out_trade_no = ?', no)[0].verdict, 'DUPLICATE');
  assert.deepEqual({ ...row(no) }, { ...credited });
});

test('an unpaid order waits while payable, then is closed at WeChat and here', async () => {
  const r = await pay(800);
  assert.equal(r.status, 200);
  const no = r.body.data.out_trade_no;
  await cron();
  await waitUntil(() => row(no).reconcile_note, 'a reconciler note');
  assert.equal(row(no).status, 'PREPAID');
  assert.match(row(no).reconcile_note, /not paid yet/);
  await new Promise((res) => setTimeout(res, CLOSE_AFTER_SECS * 1000 + 200));
  await cron();
  await waitUntil(() => row(no).status === 'CLOSED', 'CLOSED');
  assert.equal((await stack.simCall('GET', `/sim/orders/${no}`)).body.trade_state, 'CLOSED', 'closed at WeChat too');
  // The user can no longer pay it, and a retry of pay/ says so.
  const late = await simPay(r.body.data);
  assert.notEqual(late.status, 200);
  const retry = await pay(undefined, { out_trade_no: no });
  assert.equal(retry.status, 409);
  assert.equal(retry.body.code, 6);
});

test('an order WeChat never saw ends CLOSED once no retry can place it; orderquery failures change nothing', async () => {
  await fault({ target: 'unifiedorder', kind: 'http500' });
  const r = await pay(900);
  assert.equal(r.body.code, 9);
  const no = r.body.data.out_trade_no;
  assert.equal(row(no).status, 'CREATED');
  // WeChat is down for the reconciler: nothing moves.
  await fault({ target: 'orderquery', kind: 'system_error', count: 50 });
  await cron();
  await waitUntil(() => row(no).reconcile_note, 'a note');
  assert.equal(row(no).status, 'CREATED');
  assert.match(row(no).reconcile_note, /orderquery failed|SYSTEMERROR/);
  await stack.simCall('DELETE', '/sim/faults');
  await new Promise((res) => setTimeout(res, CLOSE_AFTER_SECS * 1000 + 200));
  await cron();
  await waitUntil(() => row(no).status === 'CLOSED', 'CLOSED');
  assert.match(row(no).failure, /ORDERNOTEXIST/);
  assertLedger(stack.sql.bind(stack));
});

test('POST /admin/reconcile runs it on demand and says what it did; admin only', async () => {
  const denied = await stack.call('POST', '/admin/reconcile', {});
  assert.equal(denied.status, 403);
  const r = await stack.call('POST', '/admin/reconcile', { headers: { authorization: `Bearer ${stack.secrets.ADMIN_TOKEN}` } });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(typeof r.body.data.checked, 'number');
  // Every order is settled by now: nothing open to check.
  assert.equal(stack.sql("SELECT COUNT(*) AS n FROM orders WHERE status IN ('CREATED', 'PREPAID')")[0].n, r.body.data.checked);
});

// WeChat misbehaving (wxsim faults): HTTP 500, timeouts, SYSTEMERROR, duplicated,
// forged and reordered notifies. Nothing is lost, nothing is charged or credited twice.
import test, { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, waitUntil } from './harness.mjs';

let stack;
let user;

before(async () => {
  stack = await startStack({ wechatTimeoutMs: 1500 });
  user = await stack.login('oFaulty');
});
after(() => stack?.stop());

const fault = async (f) => {
  const r = await stack.simCall('POST', '/sim/faults', f);
  assert.equal(r.status, 201, JSON.stringify(r.body));
};
const orderRows = () => stack.sql('SELECT out_trade_no, status, total_fee FROM orders ORDER BY id');
const status = (no) => stack.sql('SELECT status FROM orders WHERE out_trade_no = ?', no)[0]?.status;
const payOnce = (json) => stack.call('POST', '/pay/', { json: { token: user.token, ...json } });
const simPay = (params) => stack.simCall('POST', '/sim/pay', { appId: stack.vars.WECHAT_APPID, ...params });

for (const [kind, extra, httpStatus] of [
  ['system_error', {}, 502],
  ['http500', {}, 502],
  ['timeout', { delay_ms: 4000 }, 504],
]) {
  test(`unifiedorder ${kind}: code 9, the order kept, a retry pays it once`, async () => {
    await fault({ target: 'unifiedorder', kind, ...extra });
    const before = orderRows().length;
    const t0 = Date.now();
    const r = await payOnce({ money: 777 });
    assert.equal(r.status, httpStatus, JSON.stringify(r.body));
    assert.equal(r.body.code, 9);
    assert.match(r.body.msg, /nothing (was lost|was charged)/);
    if (kind === 'timeout') assert.ok(Date.now() - t0 < 4000, 'the worker gave up before WeChat answered');
    const no = r.body.data.out_trade_no;
    assert.equal(orderRows().length, before + 1);
    assert.equal(status(no), 'CREATED');
    // The retry names the order; WeChat sees the same unifiedorder again.
    const retry = await payOnce({ out_trade_no: no });
    assert.equal(retry.status, 200, JSON.stringify(retry.body));
    assert.equal(retry.body.data.out_trade_no, no);
    assert.equal(orderRows().length, before + 1, 'no second order');
    // Asking again while it is PREPAID gives the same prepay_id without calling WeChat.
    await fault({ target: 'unifiedorder', kind: 'http500' });
    const again = await payOnce({ out_trade_no: no });
    assert.equal(again.status, 200);
    assert.equal(again.body.data.package, retry.body.data.package);
    assert.equal((await simPay(again.body.data)).status, 200);
    await waitUntil(() => status(no) === 'PAID', 'PAID');
    // WeChat was not called for the PREPAID order: its fault is still there.
    assert.equal((await stack.simCall('GET', '/sim/faults')).body.faults.length, 1);
    assert.equal((await stack.simCall('DELETE', '/sim/faults')).status, 200);
  });
}

for (const [kind, extra, httpStatus, code] of [
  ['http500', {}, 502, 9],
  ['timeout', { delay_ms: 4000 }, 504, 9],
  ['system_error', {}, 502, 3],
]) {
  test(`jscode2session ${kind}: no session, no user row, a fresh code works`, async () => {
    const users = stack.sql('SELECT COUNT(*) AS n FROM users')[0].n;
    await fault({ target: 'jscode2session', kind, ...extra });
    const { body } = await stack.simCall('POST', '/sim/login', { appid: stack.vars.WECHAT_APPID, openid: `oLogin${kind}` });
    const r = await stack.call('POST', '/login/', { json: { code: body.code } });
    assert.equal(r.status, httpStatus, JSON.stringify(r.body));
    assert.equal(r.body.code, code);
    if (code === 3) assert.equal(r.body.data.errcode, -1);
    assert.equal(stack.sql('SELECT COUNT(*) AS n FROM users')[0].n, users);
    // WeChat never saw the code (the fault answered first), so it still works.
    const ok = await stack.call('POST', '/login/', { json: { code: body.code } });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
  });
}

test('notify faults: duplicates, forgeries, wrong amounts and reordering credit each order exactly once', async () => {
  await fault({ target: 'notify', kind: 'duplicate', count: 2 });
  await fault({ target: 'notify', kind: 'wrong_sign', count: 2 });
  await fault({ target: 'notify', kind: 'wrong_amount', count: 2 });
  await fault({ target: 'notify', kind: 'out_of_order', count: 1, delay_ms: 400 });
  const nos = [];
  for (const money of [11, 22, 33]) {
    const p = await payOnce({ money });
    assert.equal(p.status, 200, JSON.stringify(p.body));
    assert.equal((await simPay(p.body.data)).status, 200);
    nos.push(p.body.data.out_trade_no);
  }
  await waitUntil(() => nos.every((no) => status(no) === 'PAID'), 'all PAID');
  // Let duplicates land too.
  await waitUntil(async () => {
    const log = (await stack.simCall('GET', '/sim/notifications')).body.notifications;
    return log.filter((d) => d.kind === 'duplicate').length === 2;
  }, 'the duplicates');
  for (const no of nos) {
    const verdicts = stack.sql('SELECT verdict FROM notifications WHERE out_trade_no = ? ORDER BY id', no).map((v) => v.verdict);
    assert.equal(verdicts.filter((v) => v === 'CREDITED').length, 1, `${no}: ${verdicts}`);
  }
  const all = stack.sql("SELECT verdict, COUNT(*) AS n FROM notifications WHERE out_trade_no IN (?, ?, ?) GROUP BY verdict", ...nos);
  const by = Object.fromEntries(all.map((r) => [r.verdict, r.n]));
  assert.deepEqual(by, { CREDITED: 3, DUPLICATE: 2, REJECTED: 4 }, JSON.stringify(by));
  // Every delivery got the answer it deserved.
  const log = (await stack.simCall('GET', '/sim/notifications')).body.notifications.filter((d) => nos.includes(d.out_trade_no));
  for (const d of log) {
    assert.equal(d.success, d.kind === 'notify' || d.kind === 'duplicate', JSON.stringify(d));
  }
});

test('nothing is lost: every order the user was given payment fields for ends PAID once paid', async () => {
  await fault({ target: 'unifiedorder', kind: 'system_error', count: 2 });
  await fault({ target: 'unifiedorder', kind: 'http500', count: 2 });
  const before = orderRows().length;
  const paid = [];
  const stuck = [];
  let refused = 0;
  for (let i = 0; i < 8; i++) {
    let r = await payOnce({ money: 100 + i });
    if (r.status !== 200) {
      refused++;
      assert.equal(r.body.code, 9);
      const no = r.body.data.out_trade_no;
      r = await payOnce({ out_trade_no: no });
      if (r.status !== 200) {
        assert.equal(r.body.code, 9);
        stuck.push(no);
        continue;
      }
    }
    assert.equal((await simPay(r.body.data)).status, 200);
    paid.push(r.body.data.out_trade_no);
  }
  assert.equal(refused, 2, 'each fault was hit once, by a first try or its retry');
  assert.equal(stuck.length, 2);
  assert.equal(orderRows().length, before + 8, 'one order per pay, retries included');
  // The orders WeChat never accepted are kept, unpaid, and a later retry pays them.
  for (const no of stuck) {
    assert.equal(status(no), 'CREATED');
    const r = await payOnce({ out_trade_no: no });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal((await simPay(r.body.data)).status, 200);
    paid.push(no);
  }
  await waitUntil(() => paid.every((no) => status(no) === 'PAID'), 'all paid orders PAID');
  const sim = await Promise.all(paid.map((no) => stack.simCall('GET', `/sim/orders/${no}`)));
  assert.ok(sim.every((s) => s.body.trade_state === 'SUCCESS'));
  // Orders never handed out stay unpaid and payable; none is PAID without a payment.
  const paidRows = stack.sql("SELECT out_trade_no FROM orders WHERE status = 'PAID'").map((r) => r.out_trade_no);
  for (const no of paidRows) {
    const s = await stack.simCall('GET', `/sim/orders/${no}`);
    assert.equal(s.body.trade_state, 'SUCCESS', `${no} is PAID here but not at WeChat`);
  }
});

// Production faults while money moves: wxsim (WeChat) stopped and restarted mid-run,
// wrangler dev (the worker) restarted mid-run with its local KV/D1 kept, and a storm of
// wxsim faults on every path. Afterwards every order is where it should be, the reconciler
// heals lost notifies, and each merchant's withdrawals equal what was really paid.
import test, { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { startStack, waitUntil } from './harness.mjs';
import { assertLedger } from './ledger_check.mjs';

let stack;
let users;
let merchants;
const orders = []; // { no, merchant }
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// How often the run really hit the outage: pay/ refused for WeChat's sake (code 9), or the
// worker not answering at all.
const seen = { code9: 0, refused: 0 };

before(async () => {
  stack = await startStack({
    timeScale: 0.001,
    wechatTimeoutMs: 1500,
    vars: { RECONCILE_GRACE_SECS: '0', RECONCILE_CLOSE_AFTER_SECS: '3600', RECONCILE_BATCH: '200', RECONCILE_BACKOFF_MIN_SECS: '1', RECONCILE_BACKOFF_MAX_SECS: '2' },
  });
  stack.opts.simArgs = ['--state', join(stack.dir, 'wxsim-state.json')];
  await stack.kill('sim');
  await stack.restartSim();
  users = [await stack.login('oRestart1'), await stack.login('oRestart2')];
  merchants = [];
  for (const name of ['r1', 'r2']) {
    const r = await stack.call('POST', '/admin/merchants', { json: { name }, headers: admin() });
    merchants.push(r.body.data);
  }
});
after(() => stack?.stop());

const admin = () => ({ authorization: `Bearer ${stack.secrets.ADMIN_TOKEN}` });
const simPay = (p) => stack.simCall('POST', '/sim/pay', { appId: stack.vars.WECHAT_APPID, ...p });
const status = (no) => stack.sql('SELECT status FROM orders WHERE out_trade_no = ?', no)[0]?.status;
const fault = async (f) => assert.equal((await stack.simCall('POST', '/sim/faults', f)).status, 201);
async function cron() {
  const r = await fetch(`${stack.api}/__scheduled?cron=${encodeURIComponent('*/5 * * * *')}`);
  assert.equal(r.status, 200);
}

/** pay/ until it answers (code 9 → retry with the out_trade_no it gave), then the app pays. */
async function payAndSettle(k, { appPays = true } = {}) {
  const user = users[k % users.length];
  const merchant = merchants[k % merchants.length];
  let body = { token: user.token, money: 100 + k, merchant_id: merchant.merchant_id };
  for (let attempt = 0; ; attempt++) {
    let r;
    try {
      r = await stack.call('POST', '/pay/', { json: body });
    } catch {
      r = null; // the worker is down: the connection failed
      seen.refused++;
    }
    if (r?.body?.code === 0) {
      orders.push({ no: r.body.data.out_trade_no, merchant });
      if (appPays) {
        for (let i = 0; ; i++) {
          const paid = await simPay(r.body.data).catch(() => null);
          if (paid?.status === 200 || i > 100) break;
          await sleep(100);
        }
      }
      return r.body.data.out_trade_no;
    }
    if (r?.body?.code === 9) seen.code9++;
    if (r?.body?.code === 9 && r.body.data?.out_trade_no) body = { token: user.token, out_trade_no: r.body.data.out_trade_no };
    else if (r) assert.fail(`pay: ${r.status} ${JSON.stringify(r.body)}`);
    if (attempt > 200) assert.fail('pay never succeeded');
    await sleep(100);
  }
}

/** The end state: every order WeChat says was paid is PAID here (cron heals), the rest
 * are open or closed, the ledger holds, and withdrawals equal what was really paid. */
async function settleAndCheck() {
  const truth = new Map();
  for (const o of orders) {
    const w = (await stack.simCall('GET', `/sim/orders/${o.no}`)).body;
    truth.set(o.no, w.trade_state === 'SUCCESS' ? w.total_fee : 0);
  }
  await waitUntil(async () => {
    await cron();
    return orders.every((o) => (truth.get(o.no) > 0) === ['PAID', 'WITHDRAWN'].includes(status(o.no)));
  }, 'every paid order PAID, and no other', 60000);
  for (const m of merchants) {
    await stack.call('POST', '/merchant/withdrawals', { headers: { authorization: `Bearer ${m.api_key}` } });
    const got = stack.sql('SELECT COALESCE(SUM(amount_fen), 0) AS s FROM withdrawals WHERE merchant_id = ?', m.merchant_id)[0].s;
    const paid = orders.filter((o) => o.merchant === m).reduce((s, o) => s + truth.get(o.no), 0);
    assert.equal(got - paid, 0, `merchant ${m.merchant_id}: drift`);
  }
  assertLedger(stack.sql.bind(stack));
}

test('WeChat (wxsim) stops mid-run and comes back: nothing lost, nothing twice', { timeout: 180000 }, async () => {
  const running = Array.from({ length: 24 }, (_, k) => sleep(k * 60).then(() => payAndSettle(k)));
  await sleep(500);
  await stack.kill('sim');
  await sleep(1500);
  await stack.restartSim();
  await Promise.all(running);
  assert.ok(seen.code9 > 0, 'no pay met the outage: the test did not test it');
  await settleAndCheck();
});

test('the worker (wrangler dev) restarts mid-run with its KV and D1: sessions and orders survive', { timeout: 300000 }, async () => {
  const before = orders.length;
  const running = Array.from({ length: 24 }, (_, k) => sleep(k * 60).then(() => payAndSettle(100 + k)));
  await sleep(400);
  await stack.kill('worker');
  // Meanwhile payments made at WeChat get no answer: wxsim retries, then gives up.
  await sleep(1000);
  await stack.restartWorker();
  await Promise.all(running);
  assert.ok(seen.refused > 0, 'no pay met the restart: the test did not test it');
  assert.equal(orders.length, before + 24);
  // The tokens issued before the restart still work (KV kept).
  const r = await stack.call('GET', `/orders/${orders[0].no}`, { token: users[0].token });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  await settleAndCheck();
});

test('a storm of wxsim faults on every path: login, unifiedorder, orderquery, the app and the notify', { timeout: 300000 }, async () => {
  for (const kind of ['http500', 'timeout', 'system_error']) {
    await fault({ target: 'jscode2session', kind, delay_ms: 2000 });
    const { body } = await stack.simCall('POST', '/sim/login', { appid: stack.vars.WECHAT_APPID, openid: 'oStorm' });
    const r = await stack.call('POST', '/login/', { json: { code: body.code } });
    assert.ok([502, 504].includes(r.status) && [3, 9].includes(r.body.code), `${kind}: ${JSON.stringify(r.body)}`);
  }
  users.push(await stack.login('oStorm'));
  await fault({ target: 'unifiedorder', kind: 'http500', count: 3 });
  await fault({ target: 'unifiedorder', kind: 'system_error', count: 3 });
  await fault({ target: 'unifiedorder', kind: 'timeout', count: 2, delay_ms: 2000 });
  await fault({ target: 'notify', kind: 'drop', count: 4 });
  await fault({ target: 'notify', kind: 'duplicate', count: 4 });
  await fault({ target: 'notify', kind: 'out_of_order', count: 4, delay_ms: 800 });
  await fault({ target: 'notify', kind: 'wrong_sign', count: 3 });
  await fault({ target: 'notify', kind: 'wrong_amount', count: 3 });
  await fault({ target: 'orderquery', kind: 'system_error', count: 5 });
  const storm = [];
  for (let k = 0; k < 30; k++) storm.push(payAndSettle(200 + k, { appPays: k % 6 !== 5 }));
  await Promise.all(storm);
  // The app's payment failing for want of money: the order stays payable.
  const short = await payAndSettle(300, { appPays: false });
  await fault({ target: 'pay', kind: 'not_enough', out_trade_no: short });
  const p = (await stack.call('POST', '/pay/', { json: { token: users[0].token, out_trade_no: short } })).body.data;
  assert.notEqual((await simPay(p)).status, 200);
  assert.equal(status(short), 'PREPAID');
  await settleAndCheck();
  const faults = (await stack.simCall('GET', '/sim/faults')).body.faults;
  // Every injected fault was used up: each path really failed at least once.
  assert.deepEqual(faults, [], JSON.stringify(faults));
});

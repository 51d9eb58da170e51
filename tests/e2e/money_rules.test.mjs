// The money rules of issue 12, each through the real interface (wxsim + wrangler dev):
// a payment WeChat confirms is credited, also for an order we had ended (and marked for an
// operator); an order is ended only after WeChat agrees (closeorder first; PAYERROR is
// still payable; a refused retry never ends a payable order); the reconciler's queue lets
// no order starve; amounts above 2^53 fen stay exact; junk notifies cannot fill D1.
import test, { before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { startStack, waitUntil } from './harness.mjs';
import { assertLedger } from './ledger_check.mjs';

const CLOSE_AFTER_SECS = 4;
const BIG = '9007199254740993'; // 2^53 + 1: a JS number cannot hold it

function helpers(stack) {
  const fault = async (f) => {
    const r = await stack.simCall('POST', '/sim/faults', f);
    assert.equal(r.status, 201, JSON.stringify(r.body));
  };
  const row = (no) =>
    stack.sql(
      `SELECT status, paid_via, transaction_id, failure, attention, attention_note, reconcile_note,
              CAST(total_fee AS TEXT) AS fee FROM orders WHERE out_trade_no = ?`,
      no,
    )[0];
  const simPay = (params) => stack.simCall('POST', '/sim/pay', { appId: stack.vars.WECHAT_APPID, ...params });
  const simOrder = async (no) => (await stack.simCall('GET', `/sim/orders/${no}`)).body;
  const cron = async () => {
    const r = await fetch(`${stack.api}/__scheduled?cron=${encodeURIComponent('*/5 * * * *')}`);
    assert.equal(r.status, 200, await r.text());
  };
  const admin = (path) => stack.call('GET', path, { headers: { authorization: `Bearer ${stack.secrets.ADMIN_TOKEN}` } });
  return { fault, row, simPay, simOrder, cron, admin };
}

describe('the rules', () => {
  let stack;
  let user;
  let h;
  before(async () => {
    stack = await startStack({
      wechatTimeoutMs: 1500,
      vars: {
        RECONCILE_GRACE_SECS: '0',
        RECONCILE_CLOSE_AFTER_SECS: String(CLOSE_AFTER_SECS),
        RECONCILE_BATCH: '50',
        RECONCILE_BACKOFF_MIN_SECS: '1',
        RECONCILE_BACKOFF_MAX_SECS: '2',
        MAX_PAY_FEN: BIG,
        NOTIFY_REJECTED_RETENTION_SECS: '2',
      },
      limits: { NOTIFY_REJECT_IP_LIMITER: 5 },
    });
    user = await stack.login('oMoneyRules');
    h = helpers(stack);
  });
  after(() => stack?.stop());

  const pay = (money, extra = {}) => stack.call('POST', '/pay/', { json: { token: user.token, money, ...extra } });

  test('PAYERROR is still payable: the reconciler leaves the order open, and the payment that follows is credited', async () => {
    const r = await pay(321);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const no = r.body.data.out_trade_no;
    await h.fault({ target: 'orderquery', kind: 'trade_state', trade_state: 'PAYERROR', out_trade_no: no });
    await h.cron();
    await waitUntil(() => h.row(no).reconcile_note, 'a reconciler note');
    assert.equal(h.row(no).status, 'PREPAID', 'PAYERROR is not a failure');
    assert.match(h.row(no).reconcile_note, /PAYERROR/);
    assert.equal((await h.simPay(r.body.data)).status, 200);
    await waitUntil(() => h.row(no).status === 'PAID', 'PAID');
    assert.equal(h.row(no).attention, null);
  });

  test('a refused retry leaves a payable order open: its first prepay_id is paid and credited', async () => {
    const r = await pay(654);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const no = r.body.data.out_trade_no;
    // The prepay_id's life here is 4 s, so a retry asks WeChat again; WeChat refuses it.
    await new Promise((res) => setTimeout(res, 300));
    await h.fault({ target: 'unifiedorder', kind: 'err_code', err_code: 'INVALID_REQUEST', out_trade_no: no });
    const retry = await pay(undefined, { out_trade_no: no });
    assert.equal(retry.status, 502, JSON.stringify(retry.body));
    assert.equal(retry.body.code, 3);
    assert.equal(retry.body.data.err_code, 'INVALID_REQUEST');
    assert.equal(h.row(no).status, 'PREPAID', 'never FAILED while its old prepay_id may be paid');
    assert.equal((await h.simPay(r.body.data)).status, 200);
    await waitUntil(() => h.row(no).status === 'PAID', 'PAID');
    assert.equal(h.row(no).paid_via, 'notify');
  });

  test('ORDERNOTEXIST past the prepay life: closed at WeChat before it is CLOSED here, and then unpayable', async () => {
    const r = await pay(987);
    const no = r.body.data.out_trade_no;
    await h.fault({ target: 'orderquery', kind: 'err_code', err_code: 'ORDERNOTEXIST', out_trade_no: no });
    await new Promise((res) => setTimeout(res, CLOSE_AFTER_SECS * 1000 + 300));
    await h.cron();
    await waitUntil(() => h.row(no).status === 'CLOSED', 'CLOSED');
    assert.equal((await h.simOrder(no)).trade_state, 'CLOSED', 'WeChat agreed first');
    assert.notEqual((await h.simPay(r.body.data)).status, 200, 'nobody can pay it now');
  });

  test('a payment for an order we had CLOSED is credited, marked LATE_PAYMENT, listed and counted', async () => {
    const r = await pay(4242);
    const no = r.body.data.out_trade_no;
    // WeChat answers closeorder SUCCESS, yet the order stays payable (reported of WeChat).
    await h.fault({ target: 'closeorder', kind: 'ignored', out_trade_no: no });
    await new Promise((res) => setTimeout(res, CLOSE_AFTER_SECS * 1000 + 300));
    await h.cron();
    await waitUntil(() => h.row(no).status === 'CLOSED', 'CLOSED');
    assert.equal((await h.simPay(r.body.data)).status, 200, 'WeChat took the money');
    await waitUntil(() => h.row(no).status === 'PAID', 'credited despite CLOSED');
    const o = h.row(no);
    assert.equal(o.attention, 'LATE_PAYMENT');
    assert.match(o.attention_note, /CLOSED/);
    assert.equal(o.transaction_id, (await h.simOrder(no)).transaction_id);
    const v = stack.sql('SELECT verdict FROM notifications WHERE out_trade_no = ? AND verified = 1', no).map((n) => n.verdict);
    assert.ok(v.includes('CREDITED'), JSON.stringify(v));
    const listed = await h.admin('/admin/attention');
    assert.equal(listed.status, 200, JSON.stringify(listed.body));
    const item = listed.body.data.items.find((i) => i.out_trade_no === no);
    assert.ok(item, JSON.stringify(listed.body.data));
    assert.equal(item.attention, 'LATE_PAYMENT');
    assert.equal(item.status, 'PAID');
    const audit = await h.admin('/admin/ledger');
    assert.equal(audit.body.data.ok, true, JSON.stringify(audit.body.data.violations));
    assert.ok(audit.body.data.attention.LATE_PAYMENT >= 1, JSON.stringify(audit.body.data));
    assertLedger(stack.sql.bind(stack));
    // A merchant key is refused there, and nobody without the admin token gets in.
    assert.equal((await stack.call('GET', '/admin/attention')).status, 403);
    // The operator delivers, and clears the mark; the money stays where it is.
    const auth = { authorization: `Bearer ${stack.secrets.ADMIN_TOKEN}` };
    const resolvePath = `/admin/attention/${no}/resolve`;
    assert.equal((await stack.call('POST', resolvePath, { json: { note: 'goods delivered' } })).status, 403);
    const noNote = await stack.call('POST', resolvePath, { json: {}, headers: auth });
    assert.equal(noNote.body.code, 1, JSON.stringify(noNote.body));
    const resolved = await stack.call('POST', resolvePath, { json: { note: 'goods delivered' }, headers: auth });
    assert.equal(resolved.status, 200, JSON.stringify(resolved.body));
    assert.equal(resolved.body.data.attention, null);
    assert.equal(resolved.body.data.status, 'PAID');
    assert.match(h.row(no).attention_note, /LATE_PAYMENT resolved: goods delivered/);
    const again = await stack.call('POST', resolvePath, { json: { note: 'twice' }, headers: auth });
    assert.equal(again.status, 409, JSON.stringify(again.body));
    assert.equal(again.body.code, 6);
    assert.ok(!(await h.admin('/admin/attention')).body.data.items.some((i) => i.out_trade_no === no));
    const unknown = await stack.call('POST', '/admin/attention/NOSUCHORDER/resolve', { json: { note: 'x' }, headers: auth });
    assert.equal(unknown.status, 404);
    assertLedger(stack.sql.bind(stack));
  });

  test('an amount above 2^53 fen is stored, signed and credited to the fen', async () => {
    const r = await pay(BIG);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const no = r.body.data.out_trade_no;
    assert.equal(h.row(no).fee, BIG, 'stored exactly');
    assert.equal((await h.simPay(r.body.data)).status, 200);
    await waitUntil(() => h.row(no).status === 'PAID', 'PAID (the notify matched the order to the fen)');
    assert.equal(h.row(no).fee, BIG);
  });

  test('junk notifies keep a 512-byte prefix and a hash, are rate-limited per IP, and pruned by the cron', async () => {
    const junk = Buffer.alloc(64 * 1024, 'x');
    const send = () => fetch(`${stack.api}/notify/`, { method: 'POST', body: junk, headers: { 'content-type': 'text/xml' } });
    const before = stack.sql('SELECT COUNT(*) AS n FROM notifications WHERE verified = 0')[0].n;
    const first = await send();
    assert.equal(first.status, 400);
    const kept = stack.sql('SELECT length(body) AS len, body_bytes, body_sha256, verdict FROM notifications WHERE verified = 0 ORDER BY id DESC LIMIT 1')[0];
    assert.ok(kept.len <= 512, `kept ${kept.len} bytes`);
    assert.equal(kept.body_bytes, 64 * 1024);
    assert.equal(kept.body_sha256, createHash('sha256').update(junk).digest('hex'));
    assert.equal(kept.verdict, 'REJECTED');
    const statuses = [];
    for (let i = 0; i < 8; i++) statuses.push((await send()).status);
    assert.ok(statuses.includes(429), `over the limit: ${statuses}`);
    const stored = stack.sql('SELECT COUNT(*) AS n FROM notifications WHERE verified = 0')[0].n - before;
    assert.ok(stored <= 5, `${stored} junk notifies stored past a limit of 5 per minute`);
    // Verified notifies are evidence and stay; unverified ones go after their retention.
    const verified = stack.sql('SELECT COUNT(*) AS n FROM notifications WHERE verified = 1')[0].n;
    await new Promise((res) => setTimeout(res, 2500));
    await h.cron();
    await waitUntil(() => stack.sql('SELECT COUNT(*) AS n FROM notifications WHERE verified = 0')[0].n === 0, 'pruned');
    assert.equal(stack.sql('SELECT COUNT(*) AS n FROM notifications WHERE verified = 1')[0].n, verified);
  });
});

describe('the queue', () => {
  let stack;
  let h;
  before(async () => {
    stack = await startStack({
      wechatTimeoutMs: 1500,
      // Everything due at once, nothing closes, a look pushes an order an hour back.
      vars: { RECONCILE_GRACE_SECS: '0', RECONCILE_CLOSE_AFTER_SECS: '3600', RECONCILE_BATCH: '3', RECONCILE_BACKOFF_MIN_SECS: '3600' },
    });
    h = helpers(stack);
  });
  after(() => stack?.stop());

  test('abandoned orders cannot starve a paid order whose notifies were all lost', async () => {
    const user = await stack.login('oQueue');
    for (let i = 0; i < 12; i++) {
      const r = await stack.call('POST', '/pay/', { json: { token: user.token, money: 100 + i } });
      assert.equal(r.status, 200, JSON.stringify(r.body));
    }
    const r = await stack.call('POST', '/pay/', { json: { token: user.token, money: 777 } });
    const no = r.body.data.out_trade_no;
    await h.fault({ target: 'notify', kind: 'drop', out_trade_no: no });
    assert.equal((await h.simPay(r.body.data)).status, 200);
    let runs = 0;
    while (h.row(no).status !== 'PAID' && runs < 8) {
      await h.cron();
      runs++;
    }
    // 13 due orders, 3 a run: the paid one is reached by the 5th run at the latest.
    assert.equal(h.row(no).status, 'PAID', `not credited after ${runs} runs`);
    assert.ok(runs <= 5, `${runs} runs`);
    assert.equal(h.row(no).paid_via, 'reconciler');
  });
});

// Refunds end to end (issue 14) against wxsim's APIv3 refunds: the money taken at once, a
// refund of a withdrawn order a debt the next credit repays, refusals that write nothing,
// WeChat's refusal and CLOSED giving the money back, a lost request found by the
// reconciler, a refund made by hand in the merchant platform recorded like ours (v3 and v2
// wire formats), a forged v2 refund notify refused — the ledger checked after each step.
import test, { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import { startStack, waitUntil } from './harness.mjs';
import { assertLedger } from './ledger_check.mjs';

let stack;
let user;
let shop;
before(async () => {
  stack = await startStack({
    api: 'v3',
    wechatTimeoutMs: 1500,
    vars: { RECONCILE_GRACE_SECS: '0', RECONCILE_BACKOFF_MIN_SECS: '1', RECONCILE_BACKOFF_MAX_SECS: '2' },
  });
  user = await stack.login('oRefunds');
  const m = await stack.call('POST', '/admin/merchants', { json: { name: 'refund shop' }, token: stack.secrets.ADMIN_TOKEN });
  assert.equal(m.status, 200, JSON.stringify(m.body));
  shop = m.body.data;
});
after(() => stack?.stop());

const as = (key) => (key ? { 'idempotency-key': key } : {});
const refund = (json, key) => stack.call('POST', '/merchant/refunds', { json, token: shop.api_key, headers: as(key) });
const balance = async () => (await stack.call('GET', '/merchant/balance', { token: shop.api_key })).body.data;
const refundRow = (no) => stack.sql('SELECT status, amount_fen, source FROM refunds WHERE out_refund_no = ?', no)[0];
const fault = async (f) => {
  const r = await stack.simCall('POST', '/sim/faults', f);
  assert.equal(r.status, 201, JSON.stringify(r.body));
};
const audit = async () => {
  assertLedger(stack.sql.bind(stack));
  const l = await stack.call('GET', '/admin/ledger', { token: stack.secrets.ADMIN_TOKEN });
  assert.equal(l.body.data.ok, true, JSON.stringify(l.body.data.violations));
};

/** A paid order of the shop: pay, wxsim pays, the notify credits. */
async function paid(money) {
  const p = await stack.call('POST', '/pay/', { json: { token: user.token, money, merchant_id: shop.merchant_id } });
  assert.equal(p.status, 200, JSON.stringify(p.body));
  assert.equal((await stack.simCall('POST', '/sim/pay', { appId: stack.vars.WECHAT_APPID, ...p.body.data })).status, 200);
  const no = p.body.data.out_trade_no;
  await waitUntil(() => stack.sql('SELECT status FROM orders WHERE out_trade_no = ?', no)[0]?.status === 'PAID', `${no} PAID`);
  return no;
}

test('a refund takes the money at once and WeChat settles it; bad requests write nothing', async () => {
  const no = await paid(100);
  assert.equal((await balance()).available_fen, 100);
  const r = await refund({ out_trade_no: no, amount_fen: 30, reason: '换货' }, 'r-1');
  assert.equal(r.status, 200, JSON.stringify(r.body));
  const rno = r.body.data.out_refund_no;
  // WeChat accepted it; its REFUND.SUCCESS notify may even have overtaken the answer (a
  // PROCESSING answer never moves a refund back).
  assert.ok(['PROCESSING', 'SUCCESS'].includes(r.body.data.status), r.body.data.status);
  assert.equal((await balance()).available_fen, 70, 'taken the moment it was recorded');
  await waitUntil(() => refundRow(rno)?.status === 'SUCCESS', 'REFUND.SUCCESS notify');
  const order = await stack.call('GET', `/orders/${no}`, { token: user.token });
  assert.equal(order.body.data.refunded_fen, 30);
  assert.deepEqual(order.body.data.refunds.map((x) => [x.out_refund_no, x.status]), [[rno, 'SUCCESS']]);
  await audit();

  const before = stack.sql('SELECT COUNT(*) AS n FROM refunds')[0].n;
  const again = await refund({ out_trade_no: no, amount_fen: 30, reason: '换货' }, 'r-1');
  assert.equal(again.status, 200);
  assert.equal(again.body.data.out_refund_no, rno);
  assert.equal(again.body.data.idempotent_replay, true);
  const cases = [
    ['the same key, another amount', { out_trade_no: no, amount_fen: 31 }, 'r-1', 409, 6],
    ['above what is left', { out_trade_no: no, amount_fen: 71 }, 'r-2', 409, 6],
    ['an unknown order', { out_trade_no: 'NOSUCHORDER01', amount_fen: 1 }, 'r-3', 404, 5],
    ['a zero amount', { out_trade_no: no, amount_fen: 0 }, 'r-4', 400, 1],
    ['a fractional amount', { out_trade_no: no, amount_fen: 1.5 }, 'r-5', 400, 1],
    ['no amount', { out_trade_no: no }, 'r-6', 400, 1],
    ['a reason over 80 bytes', { out_trade_no: no, amount_fen: 1, reason: '长'.repeat(30) }, 'r-7', 400, 1],
  ];
  for (const [what, body, key, status, code] of cases) {
    const x = await refund(body, key);
    assert.equal(x.status, status, `${what}: ${JSON.stringify(x.body)}`);
    assert.equal(x.body.code, code, what);
  }
  const unpaid = await stack.call('POST', '/pay/', { json: { token: user.token, money: 9, merchant_id: shop.merchant_id } });
  const u = await refund({ out_trade_no: unpaid.body.data.out_trade_no, amount_fen: 1 }, 'r-8');
  assert.equal(u.body.code, 6, `an unpaid order: ${JSON.stringify(u.body)}`);
  const other = await stack.call('POST', '/pay/', { json: { token: user.token, money: 9 } });
  await stack.simCall('POST', '/sim/pay', { appId: stack.vars.WECHAT_APPID, ...other.body.data });
  const foreign = await refund({ out_trade_no: other.body.data.out_trade_no, amount_fen: 1 }, 'r-9');
  assert.equal(foreign.body.code, 5, `another merchant's order: ${JSON.stringify(foreign.body)}`);
  assert.equal(stack.sql('SELECT COUNT(*) AS n FROM refunds')[0].n, before, 'nothing written');
  assert.equal((await balance()).available_fen, 70);
  await audit();
});

test('a refund of a withdrawn order is a debt the next credit repays', async () => {
  const start = (await balance()).available_fen;
  const no = await paid(200);
  const w = await stack.call('POST', '/merchant/withdrawals', { token: shop.api_key, headers: as('w-1') });
  assert.equal(w.status, 200, JSON.stringify(w.body));
  assert.equal(w.body.data.amount_fen, start + 200);
  const r = await refund({ out_trade_no: no, amount_fen: 50 }, 'd-1');
  assert.equal(r.status, 200, JSON.stringify(r.body));
  let b = await balance();
  assert.deepEqual([b.available_fen, b.debt_fen], [-50, 50]);
  const refused = await stack.call('POST', '/merchant/withdrawals', { token: shop.api_key, headers: as('w-2') });
  assert.equal(refused.body.code, 6, 'a debt is never withdrawn');
  await audit();
  await paid(80);
  b = await balance();
  assert.deepEqual([b.available_fen, b.debt_fen], [30, 0]);
  const w3 = await stack.call('POST', '/merchant/withdrawals', { token: shop.api_key, headers: as('w-3') });
  assert.equal(w3.body.data.amount_fen, 30, '80 − the 50 owed');
  assert.equal(w3.body.data.entries_fen, -50);
  await audit();
});

test('WeChat refusing or closing a refund gives the money back; a lost request is found and resent', async () => {
  const no = await paid(100);
  const base = (await balance()).available_fen;
  await fault({ target: 'refund', kind: 'err_code', err_code: 'NOT_ENOUGH', out_trade_no: no });
  const r = await refund({ out_trade_no: no, amount_fen: 40 }, 'f-1');
  assert.equal(r.status, 502, JSON.stringify(r.body));
  assert.equal(r.body.code, 3);
  assert.equal(r.body.data.err_code, 'NOT_ENOUGH');
  assert.equal(r.body.data.refund.status, 'FAILED');
  assert.equal((await balance()).available_fen, base, 'the money stays available');

  await fault({ target: 'refund', kind: 'refund_closed', out_trade_no: no });
  const c = await refund({ out_trade_no: no, amount_fen: 40 }, 'f-2');
  assert.equal(c.status, 200, JSON.stringify(c.body));
  await waitUntil(() => refundRow(c.body.data.out_refund_no)?.status === 'CLOSED', 'REFUND.CLOSED');
  assert.equal((await balance()).available_fen, base, 'a closed refund gives it back');
  await audit();

  await fault({ target: 'refund', kind: 'timeout', delay_ms: 4000, out_trade_no: no });
  const t = await refund({ out_trade_no: no, amount_fen: 25 }, 'f-3');
  assert.equal(t.status, 200, JSON.stringify(t.body));
  assert.equal(t.body.data.status, 'REQUESTED');
  assert.match(t.body.data.note, /never request it again/);
  assert.equal((await balance()).available_fen, base - 25, 'held while unknown');
  const run = await stack.call('POST', '/admin/reconcile', { token: stack.secrets.ADMIN_TOKEN });
  assert.equal(run.status, 200, JSON.stringify(run.body));
  const tno = t.body.data.out_refund_no;
  assert.ok(run.body.data.refunds.some((x) => x.out_refund_no === tno && /resent/.test(x.outcome)), JSON.stringify(run.body.data.refunds));
  await waitUntil(() => refundRow(tno)?.status === 'SUCCESS', 'the resent refund settles');
  const sim = (await stack.simCall('GET', `/sim/orders/${no}`)).body;
  assert.equal(sim.refunds.filter((x) => x.out_refund_no === tno).length, 1, 'one refund at WeChat');
  await audit();
});

test('refunds made by hand in the merchant platform are recorded like ours, in both wire formats', async () => {
  const no = await paid(100);
  const base = (await balance()).available_fen;
  const h = await stack.simCall('POST', '/sim/refund', { out_trade_no: no, amount_fen: 15 });
  assert.equal(h.status, 200, JSON.stringify(h.body));
  const hno = h.body.refund.out_refund_no;
  await waitUntil(() => refundRow(hno)?.status === 'SUCCESS', 'the by-hand refund recorded');
  assert.equal(refundRow(hno).source, 'BY_HAND');
  assert.equal((await balance()).available_fen, base - 15);
  await audit();

  // v2's refund notify: req_info under md5(v2 key), no sign.
  const key = stack.secrets.WECHAT_PAY_KEY;
  const aes = createHash('md5').update(key).digest('hex');
  const inner = `<root><out_refund_no><![CDATA[V2HAND0001]]></out_refund_no><out_trade_no><![CDATA[${no}]]></out_trade_no><refund_id><![CDATA[50300999]]></refund_id><transaction_id><![CDATA[4200999]]></transaction_id><total_fee><![CDATA[100]]></total_fee><refund_fee><![CDATA[5]]></refund_fee><refund_status><![CDATA[SUCCESS]]></refund_status><success_time><![CDATA[2026-12-02 10:00:00]]></success_time><refund_request_source><![CDATA[VENDOR_PLATFORM]]></refund_request_source></root>`;
  const enc = (k) => {
    const c = createCipheriv('aes-256-ecb', Buffer.from(k), null);
    return Buffer.concat([c.update(inner), c.final()]).toString('base64');
  };
  const xml = (reqInfo) => `<xml><return_code><![CDATA[SUCCESS]]></return_code><appid><![CDATA[${stack.vars.WECHAT_APPID}]]></appid><mch_id><![CDATA[${stack.vars.WECHAT_MCH_ID}]]></mch_id><nonce_str><![CDATA[${randomBytes(8).toString('hex')}]]></nonce_str><req_info><![CDATA[${reqInfo}]]></req_info></xml>`;
  const forged = await stack.call('POST', '/notify/', { raw: xml(enc(createHash('md5').update('not the key').digest('hex'))), headers: { 'content-type': 'text/xml' } });
  assert.equal(forged.status, 400, forged.body);
  assert.match(forged.body, /REQ_INFO_DECRYPT_FAILED/);
  assert.equal(refundRow('V2HAND0001'), undefined, 'a forged refund notify changes nothing');
  const ok = await stack.call('POST', '/notify/', { raw: xml(enc(aes)), headers: { 'content-type': 'text/xml' } });
  assert.equal(ok.status, 200, ok.body);
  assert.match(ok.body, /SUCCESS/);
  assert.deepEqual({ ...refundRow('V2HAND0001') }, { status: 'SUCCESS', amount_fen: 5, source: 'BY_HAND' });
  const dup = await stack.call('POST', '/notify/', { raw: xml(enc(aes)), headers: { 'content-type': 'text/xml' } });
  assert.equal(dup.status, 200, 'a duplicate is acknowledged');
  assert.equal((await balance()).available_fen, base - 20, 'and takes nothing twice');
  await audit();
});

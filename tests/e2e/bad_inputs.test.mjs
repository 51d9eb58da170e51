// Every endpoint given bad input: the right code and HTTP status, a message that says what
// to fix, and D1 unchanged. Plus the ways the seed client (and its variants) may call.
import test, { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, waitUntil } from './harness.mjs';
import { sign, toXml } from '../../pkg/index.mjs';

let stack;
let alice;
let bob;
let paidNo; // an order of alice's, paid
let openNo; // an order of alice's, prepaid

before(async () => {
  stack = await startStack();
  alice = await stack.login('oAlice');
  bob = await stack.login('oBob');
  const pay = async (money) => (await stack.call('POST', '/pay/', { json: { money, token: alice.token } })).body.data;
  const p = await pay(300);
  const r = await stack.simCall('POST', '/sim/pay', { appId: stack.vars.WECHAT_APPID, ...p });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  paidNo = p.out_trade_no;
  await waitUntil(async () => stack.sql('SELECT status FROM orders WHERE out_trade_no = ?', paidNo)[0]?.status === 'PAID', 'PAID');
  openNo = (await pay(200)).out_trade_no;
});
after(() => stack?.stop());

/** Everything a bad request must not touch. */
function snapshot() {
  return JSON.stringify({
    users: stack.sql('SELECT openid, unionid, profile, login_ms FROM users ORDER BY openid'),
    orders: stack.sql('SELECT out_trade_no, status, prepay_id, transaction_id, paid_ms FROM orders ORDER BY out_trade_no'),
  });
}

async function expectRefused(what, req, status, code, msg) {
  const before = snapshot();
  const r = await req();
  assert.equal(r.status, status, `${what}: ${JSON.stringify(r.body)}`);
  assert.equal(r.body.code, code, `${what}: ${JSON.stringify(r.body)}`);
  assert.ok(typeof r.body.msg === 'string' && r.body.msg.length > 5, `${what}: a message that says what to fix`);
  if (msg) assert.match(r.body.msg, msg, what);
  assert.ok('data' in r.body, `${what}: the envelope has data`);
  assert.equal(snapshot(), before, `${what}: D1 changed`);
  return r;
}

test('login/', async () => {
  const c = (json, opts = {}) => () => stack.call('POST', '/login/', { json, ...opts });
  await expectRefused('no code', c({}), 400, 1, /code is required/);
  await expectRefused('code not a string', c({ code: 123 }), 400, 1, /code must be a string/);
  await expectRefused('code with spaces', c({ code: 'a b' }), 400, 1, /code/);
  const bogus = await expectRefused('unknown code', c({ code: 'x'.repeat(32) }), 400, 3);
  assert.equal(bogus.body.data.errcode, 40029);
  const { body } = await stack.simCall('POST', '/sim/login', { appid: stack.vars.WECHAT_APPID, openid: 'oAlice' });
  assert.equal((await stack.call('POST', '/login/', { json: { code: body.code } })).status, 200);
  const used = await expectRefused('used code', c({ code: body.code }), 400, 3);
  assert.equal(used.body.data.errcode, 40163);
  await expectRefused('broken JSON', () => stack.call('POST', '/login/', { raw: '{"code":', headers: { 'content-type': 'application/json' } }), 400, 1, /JSON/);
  await expectRefused('oversize body', () => stack.call('POST', '/login/', { json: { code: 'x'.repeat(70_000) } }), 413, 8);
  await expectRefused('GET', () => stack.call('GET', '/login/'), 405, 5, /POST/);
});

test('getinfo/', async () => {
  const { body: info } = await stack.simCall('POST', '/sim/userinfo', { appid: stack.vars.WECHAT_APPID, openid: 'oBob' });
  const c = (json) => () => stack.call('POST', '/getinfo/', { json });
  const good = { token: bob.token, encryptedData: info.encryptedData, iv: info.iv };
  await expectRefused('no token', c({ encryptedData: info.encryptedData, iv: info.iv }), 401, 2, /wx\.login/);
  await expectRefused('malformed token', c({ ...good, token: 'abc' }), 401, 2);
  await expectRefused('unknown token', c({ ...good, token: 'A'.repeat(43) }), 401, 2, /log in again/);
  await expectRefused('no encryptedData', c({ token: bob.token, iv: info.iv }), 400, 1, /encryptedData is required/);
  await expectRefused('no iv', c({ token: bob.token, encryptedData: info.encryptedData }), 400, 1, /iv is required/);
  await expectRefused('bad base64', c({ ...good, encryptedData: '%%%' }), 400, 1, /base64/);
  await expectRefused('short iv', c({ ...good, iv: 'AAAA' }), 400, 1, /iv/);
  const e = info.encryptedData;
  const mid = e.length >> 1;
  const tampered = e.slice(0, mid) + (e[mid] === 'A' ? 'B' : 'A') + e.slice(mid + 1);
  await expectRefused('tampered encryptedData', c({ ...good, encryptedData: tampered }), 401, 4, /log|wx\.login/);
  await expectRefused('rawData alone', c({ ...good, rawData: info.rawData }), 400, 1, /together/);
  await expectRefused('wrong signature', c({ ...good, rawData: info.rawData, signature: '0'.repeat(40) }), 401, 4);
  // The good request works (and stores the profile)…
  const ok = await stack.call('POST', '/getinfo/', { json: { ...good, rawData: info.rawData, signature: info.signature } });
  assert.equal(ok.status, 200, JSON.stringify(ok.body));
  // …until Bob logs in again: WeChat issued a new session_key, the old data is stale.
  const again = await stack.login('oBob');
  await expectRefused('stale session_key', c({ ...good, token: again.token }), 401, 4, /wx\.login/);
});

test('pay/', async () => {
  const c = (json) => () => stack.call('POST', '/pay/', { json: { token: alice.token, ...json } });
  await expectRefused('no money', c({}), 400, 1, /money is required/);
  for (const money of [1.5, '1.5', 1.25, '1e2', 'abc', true, [1]]) {
    await expectRefused(`money ${JSON.stringify(money)}`, c({ money }), 400, 1, /money/);
  }
  for (const money of [0, -1, '-5', '0']) {
    await expectRefused(`money ${JSON.stringify(money)}`, c({ money }), 400, 1, /at least 1 fen/);
  }
  await expectRefused('over the maximum', c({ money: 10_000_001 }), 400, 1, /maximum/);
  await expectRefused('unknown merchant', c({ money: 1, merchant_id: 'nope' }), 404, 5, /merchant/);
  await expectRefused('body too long', c({ money: 1, body: '长'.repeat(50) }), 400, 1, /128/);
  await expectRefused('no token', () => stack.call('POST', '/pay/', { json: { money: 1 } }), 401, 2);
  await expectRefused("another user's order", () => stack.call('POST', '/pay/', { json: { token: bob.token, out_trade_no: openNo } }), 403, 7);
  await expectRefused('unknown order', c({ out_trade_no: 'NOSUCHORDER' }), 404, 5);
  await expectRefused('paid order', c({ out_trade_no: paidNo }), 409, 6, /already paid/);
  await expectRefused('another amount', c({ out_trade_no: openNo, money: 999 }), 409, 6, /200 fen/);
});

test('orders/{out_trade_no}', async () => {
  const mine = await stack.call('GET', `/orders/${paidNo}`, { token: alice.token });
  assert.equal(mine.body.data.status, 'PAID');
  await expectRefused("another user's order", () => stack.call('GET', `/orders/${paidNo}`, { token: bob.token }), 403, 7);
  await expectRefused('unknown order', () => stack.call('GET', '/orders/NOSUCH', { token: alice.token }), 404, 5);
  await expectRefused('malformed out_trade_no', () => stack.call('GET', '/orders/a%20b', { token: alice.token }), 400, 1);
  await expectRefused('no token', () => stack.call('GET', `/orders/${paidNo}`), 401, 2);
  await expectRefused('POST', () => stack.call('POST', `/orders/${paidNo}`, { token: alice.token }), 405, 5);
});

test('unknown routes', async () => {
  await expectRefused('unknown route', () => stack.call('GET', '/nope'), 404, 5, /no route/);
  await expectRefused('root', () => stack.call('GET', '/'), 404, 5);
});

/** A notify as WeChat would send it for `order`, signed with `key`. */
function notifyXml({ no, fee, key = stack.secrets.WECHAT_PAY_KEY, extra = {} }) {
  const p = {
    appid: stack.vars.WECHAT_APPID,
    mch_id: stack.vars.WECHAT_MCH_ID,
    nonce_str: 'n' + Math.random().toString(36).slice(2),
    result_code: 'SUCCESS',
    return_code: 'SUCCESS',
    openid: 'oAlice',
    trade_type: 'JSAPI',
    bank_type: 'OTHERS',
    total_fee: String(fee),
    cash_fee: String(fee),
    transaction_id: '4200000000000000000000000001',
    out_trade_no: no,
    time_end: '20261125120000',
    ...extra,
  };
  return toXml({ ...p, sign: sign(p, key) });
}

async function notify(xml) {
  const r = await fetch(`${stack.api}/notify/`, { method: 'POST', headers: { 'content-type': 'text/xml' }, body: xml });
  return { status: r.status, text: await r.text() };
}

test('notify/: forged, mismatched, unknown, duplicate — nothing credited twice or wrongly', async () => {
  const orders = () => JSON.stringify(stack.sql('SELECT out_trade_no, status, transaction_id FROM orders ORDER BY out_trade_no'));
  const lastVerdict = () => stack.sql('SELECT verdict, reason FROM notifications ORDER BY id DESC LIMIT 1')[0];
  const cases = [
    ['signed with another key', notifyXml({ no: openNo, fee: 200, key: 'f'.repeat(32) }), 400, 'REJECTED', /SIGN_MISMATCH/],
    ['wrong amount', notifyXml({ no: openNo, fee: 201 }), 400, 'REJECTED', /total_fee/],
    ['another merchant', notifyXml({ no: openNo, fee: 200, extra: { mch_id: '1234567890' } }), 400, 'REJECTED', /mch_id/],
    ['unknown order', notifyXml({ no: 'NOSUCHORDER', fee: 200 }), 404, 'UNKNOWN_ORDER', /no such/],
    ['not XML', 'hello', 400, 'REJECTED', /XML/],
    ['a DOCTYPE', '<!DOCTYPE xml [<!ENTITY x "y">]><xml><a>&x;</a></xml>', 400, 'REJECTED', /XML_DOCTYPE|XML_ENTITY/],
  ];
  for (const [what, xml, status, verdict, reason] of cases) {
    const before = orders();
    const count = stack.sql('SELECT COUNT(*) AS n FROM notifications')[0].n;
    const r = await notify(xml);
    assert.equal(r.status, status, `${what}: ${r.text}`);
    assert.match(r.text, /<return_code><!\[CDATA\[FAIL\]\]><\/return_code>/, what);
    assert.equal(orders(), before, `${what}: an order changed`);
    assert.equal(stack.sql('SELECT COUNT(*) AS n FROM notifications')[0].n, count + 1, `${what}: stored as received`);
    const v = lastVerdict();
    assert.equal(v.verdict, verdict, what);
    assert.match(v.reason, reason, what);
  }
  // The genuine notify credits the order once; the same again is a duplicate.
  const good = notifyXml({ no: openNo, fee: 200 });
  const first = await notify(good);
  assert.equal(first.status, 200);
  assert.match(first.text, /SUCCESS/);
  const paid = stack.sql('SELECT status, paid_ms FROM orders WHERE out_trade_no = ?', openNo)[0];
  assert.equal(paid.status, 'PAID');
  const before = orders();
  for (let i = 0; i < 3; i++) {
    const again = await notify(good);
    assert.equal(again.status, 200);
    assert.match(again.text, /SUCCESS/);
    assert.equal(lastVerdict().verdict, 'DUPLICATE');
  }
  assert.equal(orders(), before);
  assert.equal(stack.sql('SELECT paid_ms FROM orders WHERE out_trade_no = ?', openNo)[0].paid_ms, paid.paid_ms);
  const big = await notify(`<xml><a>${'x'.repeat(70_000)}</a></xml>`);
  assert.equal(big.status, 413);
  assert.match(big.text, /FAIL/);
});

test('seed compatibility: paths, form bodies, Bearer tokens', async () => {
  const { body } = await stack.simCall('POST', '/sim/login', { appid: stack.vars.WECHAT_APPID, openid: 'oForm' });
  const form = await stack.call('POST', '/login', { form: { code: body.code } });
  assert.equal(form.status, 200, JSON.stringify(form.body));
  const token = form.body.data.token;
  assert.equal(form.body.data.expires_in, 7200);
  const { body: info } = await stack.simCall('POST', '/sim/userinfo', { appid: stack.vars.WECHAT_APPID, openid: 'oForm' });
  // A form-encoded body keeps '+' in base64 only if it was URL-encoded, as URLSearchParams does.
  const viaForm = await stack.call('POST', '/getinfo', { form: { token, encryptedData: info.encryptedData, iv: info.iv } });
  assert.equal(viaForm.status, 200, JSON.stringify(viaForm.body));
  const viaBearer = await stack.call('POST', '/getinfo/', { token, json: { encryptedData: info.encryptedData, iv: info.iv } });
  assert.equal(viaBearer.status, 200, JSON.stringify(viaBearer.body));
  const pay = await stack.call('POST', '/pay', { form: { token, money: '5' } });
  assert.equal(pay.status, 200, JSON.stringify(pay.body));
  for (const k of ['timeStamp', 'nonceStr', 'package', 'signType', 'paySign', 'out_trade_no']) {
    assert.equal(typeof pay.body.data[k], 'string', k);
  }
  const health = await stack.call('GET', '/healthz/');
  assert.equal(health.status, 200);
  assert.deepEqual(
    { ...health.body.data, version: undefined },
    { version: undefined, appid: stack.vars.WECHAT_APPID, mch_id: stack.vars.WECHAT_MCH_ID, pay_api: 'v2', sign_type: 'MD5', kv: true, d1: true },
  );
  // No secret in any answer or log line so far.
  const logs = stack.logs();
  for (const secret of Object.values(stack.secrets)) {
    assert.ok(!logs.worker.includes(secret), 'a secret in the worker log');
    assert.ok(!logs.wxsim.includes(secret), 'a secret in the wxsim log');
  }
});

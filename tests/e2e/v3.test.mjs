// WeChat Pay APIv3 end to end (PAY_API=v3): the seed client, unchanged, pays through JSAPI
// prepay with an RSA paySign; wxsim sends the signed, encrypted JSON notify; the order is
// PAID and withdrawn. Then every bad notify the issue names, each answered as stated and
// changing nothing; wxsim's v3 faults through the worker; and the reverse (JSON to a v2
// merchant).
import test, { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createCipheriv, createSign, randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startStack, waitUntil, rsaKeys } from './harness.mjs';
import { loadSeedClient } from './wx.mjs';
import { TEST_MERCHANT_KEY, TEST_MERCHANT_SERIAL } from './v3_vectors.mjs';

/** A self-signed X.509 certificate standing in for a 微信支付平台证书 (openssl, as scripts/dev). */
function platformCertificate() {
  const dir = mkdtempSync(join(tmpdir(), 'wxedge-cert-'));
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=wxedge test platform certificate',
      '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
    const serial = execFileSync('openssl', ['x509', '-in', join(dir, 'cert.pem'), '-noout', '-serial'], { encoding: 'utf8' })
      .trim().replace(/^serial=/, '').replace(/^(00)+(?=..)/, '');
    return { cert: readFileSync(join(dir, 'cert.pem'), 'utf8'), key: readFileSync(join(dir, 'key.pem'), 'utf8'), serial };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

let stack;
let platform;
before(async () => {
  platform = platformCertificate();
  // No v2 key at all: an XML notify has nothing to verify it with here.
  stack = await startStack({
    api: 'v3',
    workerOmits: ['WECHAT_PAY_KEY'],
    // Mid-switch from a platform certificate to the 微信支付公钥: both are trusted.
    secrets: { WECHAT_PAY_PLATFORM_CERTS: `"${platform?.cert.trim().replace(/\n/g, '\\n')}"` },
    // WeChat's published test merchant key: the worker's signatures become checkable vectors.
    v3Merchant: { privateKey: TEST_MERCHANT_KEY, serial: TEST_MERCHANT_SERIAL },
    wechatTimeoutMs: 1500,
    // The reconciler looks at once and closes unpaid orders after 4 s (only when run).
    vars: { RECONCILE_GRACE_SECS: '0', RECONCILE_CLOSE_AFTER_SECS: '4', RECONCILE_BACKOFF_MIN_SECS: '1', RECONCILE_BACKOFF_MAX_SECS: '2' },
  });
});
after(() => stack?.stop());

const simPay = (params) => stack.simCall('POST', '/sim/pay', { appId: stack.vars.WECHAT_APPID, ...params });
const orderRow = (no) => stack.sql('SELECT status, version, transaction_id FROM orders WHERE out_trade_no = ?', no)[0];
const fault = async (f) => {
  const r = await stack.simCall('POST', '/sim/faults', f);
  assert.equal(r.status, 201, JSON.stringify(r.body));
};

test('the seed client, unchanged, pays end to end in APIv3, and the merchant withdraws', async () => {
  const health = await stack.call('GET', '/healthz');
  assert.equal(health.status, 200, JSON.stringify(health.body));
  assert.equal(health.body.data.pay_api, 'v3');
  assert.deepEqual(health.body.data.v3.wechat_keys, [stack.v3.publicKeyId, platform.serial]);

  const client = loadSeedClient(stack, 'oSeedV3');
  await client.settle();
  const token = client.storage.get('token');
  client.page.pay();
  await client.settle();
  const pay = client.calls.find((c) => c.url.endsWith('pay/'));
  assert.equal(pay.status, 200, JSON.stringify(pay.body));
  const { out_trade_no: no, signType, package: pkg, paySign } = pay.body.data;
  assert.equal(signType, 'RSA', 'APIv3 signs wx.requestPayment with RSA');
  assert.match(pkg, /^prepay_id=wx/);
  assert.equal(Buffer.from(paySign, 'base64').length, 256, 'a 2048-bit RSA signature');
  // PKCS#1 v1.5 is deterministic: the worker's WebCrypto signature under WeChat's published
  // test key is node:crypto's, byte for byte, over the message WeChat documents.
  const message = `${stack.vars.WECHAT_APPID}\n${pay.body.data.timeStamp}\n${pay.body.data.nonceStr}\n${pkg}\n`;
  assert.equal(paySign, createSign('RSA-SHA256').update(message).sign(TEST_MERCHANT_KEY, 'base64'));
  // wxsim's app side checked the RSA paySign with the merchant's public key.
  assert.deepEqual(client.payments.map((p) => p.errMsg), ['requestPayment:ok']);

  const order = await waitUntil(async () => {
    const r = await stack.call('GET', `/orders/${no}`, { token });
    return r.body.data?.status === 'PAID' && r.body.data;
  }, 'the order to be PAID by the v3 notify');
  assert.equal(order.total_fee, 1);
  const notes = stack.sql('SELECT verdict, verified, body FROM notifications WHERE out_trade_no = ?', no);
  assert.deepEqual(notes.map((n) => [n.verdict, n.verified]), [['CREDITED', 1]]);
  const envelope = JSON.parse(notes[0].body);
  assert.equal(envelope.event_type, 'TRANSACTION.SUCCESS', 'the JSON envelope is what was kept, as received');
  const log = await stack.simCall('GET', `/sim/notifications?out_trade_no=${no}`);
  const last = log.body.notifications.at(-1);
  assert.equal(last.success, true, `the worker acknowledged it: ${JSON.stringify(last)}`);

  // The merchant side, through APIv3 too.
  const shop = await stack.call('POST', '/admin/merchants', { json: { name: 'v3 shop' }, token: stack.secrets.ADMIN_TOKEN });
  assert.equal(shop.status, 200, JSON.stringify(shop.body));
  const { merchant_id, api_key } = shop.body.data;
  const p2 = await stack.call('POST', '/pay/', { json: { token, money: 250, merchant_id } });
  assert.equal(p2.status, 200, JSON.stringify(p2.body));
  assert.equal((await simPay(p2.body.data)).status, 200);
  await waitUntil(async () => orderRow(p2.body.data.out_trade_no)?.status === 'PAID', 'the second order PAID');
  const w = await stack.call('POST', '/merchant/withdrawals', { token: api_key, headers: { 'idempotency-key': 'v3-w1' } });
  assert.equal(w.status, 200, JSON.stringify(w.body));
  assert.equal(w.body.data.amount_fen, 250);
  assert.equal(orderRow(p2.body.data.out_trade_no).status, 'WITHDRAWN');
});

/** A paid-transaction notify as WeChat builds it (encrypted with the APIv3 key). */
function transactionNotify(no, total, { key = stack.v3.apiV3Key, aad = 'transaction' } = {}) {
  const tx = JSON.stringify({
    appid: stack.vars.WECHAT_APPID,
    mchid: stack.vars.WECHAT_MCH_ID,
    out_trade_no: no,
    transaction_id: `42000${Date.now()}${randomBytes(2).readUInt16BE()}`.slice(0, 28),
    trade_type: 'JSAPI',
    trade_state: 'SUCCESS',
    trade_state_desc: '支付成功',
    bank_type: 'OTHERS',
    success_time: '2026-12-02T10:00:00+08:00',
    payer: { openid: 'oBad' },
    amount: { total, payer_total: total, currency: 'CNY', payer_currency: 'CNY' },
  });
  const nonce = randomBytes(6).toString('hex');
  const c = createCipheriv('aes-256-gcm', Buffer.from(key), Buffer.from(nonce));
  c.setAAD(Buffer.from(aad));
  const ciphertext = Buffer.concat([c.update(tx), c.final(), c.getAuthTag()]).toString('base64');
  return JSON.stringify({
    id: `EV-${randomBytes(4).toString('hex')}`,
    create_time: '2026-12-02T10:00:01+08:00',
    resource_type: 'encrypt-resource',
    event_type: 'TRANSACTION.SUCCESS',
    summary: '支付成功',
    resource: { original_type: 'transaction', algorithm: 'AEAD_AES_256_GCM', ciphertext, associated_data: 'transaction', nonce },
  });
}

/** The Wechatpay-* headers WeChat would send for `body`, with what a case changes. */
function signed(body, { key = stack.v3.wechat.privateKey, serial = stack.v3.publicKeyId, skew = 0, signature, signOver } = {}) {
  const ts = String(Math.floor(Date.now() / 1000) + skew);
  const nonce = randomBytes(16).toString('hex');
  const s = createSign('RSA-SHA256');
  s.update(`${ts}\n${nonce}\n${signOver ?? body}\n`);
  return {
    'content-type': 'application/json',
    'wechatpay-timestamp': ts,
    'wechatpay-nonce': nonce,
    'wechatpay-serial': serial,
    'wechatpay-signature': signature ?? s.sign(key, 'base64'),
  };
}

const notify = (body, headers) => stack.call('POST', '/notify/', { raw: body, headers });

test('every bad v3 notify has its stated answer and changes nothing; then the real one credits', async () => {
  const user = await stack.login('oBadNotify');
  const p = await stack.call('POST', '/pay/', { json: { token: user.token, money: 30 } });
  assert.equal(p.status, 200, JSON.stringify(p.body));
  const no = p.body.data.out_trade_no;
  const before = orderRow(no);
  assert.equal(before.status, 'PREPAID');
  const good = transactionNotify(no, 30);
  const pretty = JSON.stringify(JSON.parse(good), null, 2);
  const stranger = rsaKeys();
  const xml = `<xml><return_code><![CDATA[SUCCESS]]></return_code><out_trade_no><![CDATA[${no}]]></out_trade_no></xml>`;
  const cases = [
    ['a wrong signature (another key)', good, signed(good, { key: stranger.privateKey }), 401, 'SIGN_MISMATCH'],
    // ±305 s, not ±301: the worker's clock reads whole seconds a moment after ours, and the
    // boundary itself (300 accepted, 301 refused) is the core's unit test.
    ['a stale timestamp (305 s old)', good, signed(good, { skew: -305 }), 401, 'V3_TIMESTAMP_SKEW'],
    ['a future timestamp (305 s ahead)', good, signed(good, { skew: 305 }), 401, 'V3_TIMESTAMP_SKEW'],
    ['an unknown serial', good, signed(good, { serial: 'PUB_KEY_ID_0000000000000000000000000000' }), 401, 'V3_UNKNOWN_SERIAL'],
    ['a certificate serial no certificate is held for', good, signed(good, { serial: '5157F09EFDC096DE15EBE81A47057A7232F1B8E1' }), 401, 'V3_UNKNOWN_SERIAL'],
    ['WeChat\'s SIGNTEST probe', good, signed(good, { signature: 'WECHATPAY/SIGNTEST/ZmFrZQ==' }), 401, 'V3_SIGN_PROBE'],
    ['a body re-serialized after signing', pretty, signed(pretty, { signOver: good }), 401, 'SIGN_MISMATCH'],
    ['no Wechatpay-* headers at all', good, { 'content-type': 'application/json' }, 401, 'V3_HEADER_MISSING'],
    ['a bad tag (another APIv3 key)', transactionNotify(no, 30, { key: 'x'.repeat(32) }), null, 500, 'V3_DECRYPT_FAILED'],
    ['a wrong AAD', transactionNotify(no, 30, { aad: 'certificate' }), null, 500, 'V3_DECRYPT_FAILED'],
    ['not JSON', '{"id": "EV-1", truncated', null, 400, 'V3_BAD_NOTIFY'],
    ['an XML notify to a v3 merchant', xml, { 'content-type': 'text/xml' }, 400, 'WRONG_NOTIFY_FORMAT'],
    ['neither XML nor JSON', 'hello', { 'content-type': 'text/plain' }, 400, 'NOT_A_NOTIFY'],
  ];
  for (const [what, body, headers, status, code] of cases) {
    const seen = stack.sql('SELECT COUNT(*) AS n FROM notifications')[0].n;
    const r = await notify(body, headers ?? signed(body));
    assert.equal(r.status, status, `${what}: ${JSON.stringify(r.body)}`);
    if (body.startsWith('<')) {
      assert.match(r.body, /<return_code><!\[CDATA\[FAIL\]\]><\/return_code>/, `${what}: answered in XML`);
      assert.match(r.body, new RegExp(code), what);
    } else {
      assert.equal(r.body.code, 'FAIL', `${what}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.message, `rejected: ${code}`, what);
    }
    assert.deepEqual(orderRow(no), before, `${what}: the order did not change`);
    const rows = stack.sql('SELECT verdict, verified, reason, body_bytes, length(body) AS kept FROM notifications ORDER BY id DESC LIMIT 1');
    assert.equal(stack.sql('SELECT COUNT(*) AS n FROM notifications')[0].n, seen + 1, `${what}: recorded once`);
    assert.equal(rows[0].verdict, 'REJECTED', what);
    assert.ok(rows[0].reason.startsWith(code), `${what}: ${rows[0].reason}`);
    // Only a body WeChat signed is kept whole; anything else keeps a prefix.
    assert.equal(rows[0].verified, status === 500 || code === 'V3_BAD_NOTIFY' ? 1 : 0, `${what}: verified flag`);
  }
  const ok = await notify(good, signed(good));
  assert.equal(ok.status, 204, JSON.stringify(ok.body));
  assert.equal(ok.body, '', '204 has no body');
  assert.equal(orderRow(no).status, 'PAID');
  const again = await notify(good, signed(good));
  assert.equal(again.status, 204, 'a duplicate is acknowledged');
  assert.equal(orderRow(no).version, before.version + 1, 'and credits nothing twice');
  const wrongAmount = transactionNotify(no, 31);
  const r = await notify(wrongAmount, signed(wrongAmount));
  assert.equal(r.status, 400, JSON.stringify(r.body));
  assert.equal(orderRow(no).version, before.version + 1, 'another amount changes nothing');
});

test('mid-switch, a notify signed with the platform certificate and one with the 微信支付公钥 are both believed', async () => {
  const health = await stack.call('GET', '/healthz');
  assert.deepEqual(health.body.data.v3.wechat_keys, [stack.v3.publicKeyId, platform.serial]);
  const user = await stack.login('oSwitch');
  for (const [what, opts] of [
    ['the platform certificate', { key: platform.key, serial: platform.serial }],
    ['the 微信支付公钥', {}],
  ]) {
    const p = await stack.call('POST', '/pay/', { json: { token: user.token, money: 7 } });
    const no = p.body.data.out_trade_no;
    const body = transactionNotify(no, 7);
    const r = await notify(body, signed(body, opts));
    assert.equal(r.status, 204, `${what}: ${JSON.stringify(r.body)}`);
    assert.equal(orderRow(no).status, 'PAID', what);
    // The certificate's key under the public key's id is another key: refused.
    const q = await stack.call('POST', '/pay/', { json: { token: user.token, money: 8 } });
    const other = transactionNotify(q.body.data.out_trade_no, 8);
    const crossed = opts.serial ? { key: platform.key } : { serial: platform.serial };
    const x = await notify(other, signed(other, crossed));
    assert.equal(x.status, 401, `${what}, crossed: ${JSON.stringify(x.body)}`);
    assert.equal(orderRow(q.body.data.out_trade_no).status, 'PREPAID');
  }
});

test('wxsim\'s v3 faults through the worker: probe, skew and bad tag refused, then the retry credits; a rotated key is not believed', async () => {
  const user = await stack.login('oFaultsV3');
  for (const kind of ['signtest', 'skewed', 'bad_tag']) {
    const p = await stack.call('POST', '/pay/', { json: { token: user.token, money: 12 } });
    assert.equal(p.status, 200, JSON.stringify(p.body));
    const no = p.body.data.out_trade_no;
    await fault({ target: 'notify', kind, out_trade_no: no });
    assert.equal((await simPay(p.body.data)).status, 200);
    // WeChat's schedule retries; the first (faulty) attempt was refused, the next credits.
    await waitUntil(async () => orderRow(no)?.status === 'PAID', `${kind}: PAID by the retry`);
    // wxsim logs an attempt once the worker's answer is in: wait for the successful one.
    const log = await waitUntil(async () => {
      const l = (await stack.simCall('GET', `/sim/notifications?out_trade_no=${no}`)).body.notifications;
      return l.some((n) => n.success) && l;
    }, `${kind}: the acknowledged retry in wxsim's log`);
    assert.ok(log.length >= 2, `${kind}: ${JSON.stringify(log)}`);
    assert.equal(log[0].success, false, `${kind}: the faulty attempt was refused`);
    assert.ok(log[0].status >= 400, `${kind}: with a 4xx/5xx (${log[0].status})`);
    const verdicts = stack.sql('SELECT verdict FROM notifications WHERE out_trade_no = ? OR out_trade_no IS NULL ORDER BY id', no);
    assert.ok(verdicts.some((v) => v.verdict === 'CREDITED'), kind);
  }
  // An answer signed with a key we do not hold: the prepay_id is not believed, nothing paid.
  await fault({ target: 'jsapi', kind: 'rotated_key' });
  const q = await stack.call('POST', '/pay/', { json: { token: user.token, money: 14 } });
  assert.equal(q.status, 502, JSON.stringify(q.body));
  assert.equal(q.body.code, 9, 'code 9: retry with the out_trade_no');
  const no = q.body.data.out_trade_no;
  assert.equal(orderRow(no).status, 'CREATED', 'the unverified answer changed nothing');
  const retry = await stack.call('POST', '/pay/', { json: { token: user.token, out_trade_no: no } });
  assert.equal(retry.status, 200, JSON.stringify(retry.body));
  assert.equal(orderRow(no).status, 'PREPAID');
});

test('the reconciler queries and closes through APIv3', async () => {
  const user = await stack.login('oReconcileV3');
  // Paid at WeChat, every notify lost: the reconciler's v3 query credits it.
  const p = await stack.call('POST', '/pay/', { json: { token: user.token, money: 40 } });
  const no = p.body.data.out_trade_no;
  await fault({ target: 'notify', kind: 'drop', out_trade_no: no, count: 100 });
  assert.equal((await simPay(p.body.data)).status, 200);
  // Unpaid past its (shortened) life: closed at WeChat (204), then here.
  const u = await stack.call('POST', '/pay/', { json: { token: user.token, money: 41 } });
  const unpaid = u.body.data.out_trade_no;
  await new Promise((r) => setTimeout(r, 5000));
  const r = await fetch(`${stack.api}/__scheduled?cron=${encodeURIComponent('*/5 * * * *')}`);
  assert.equal(r.status, 200, await r.text());
  await waitUntil(() => orderRow(no).status === 'PAID' && orderRow(unpaid).status === 'CLOSED', 'PAID by query, CLOSED by close');
  const [paid] = stack.sql('SELECT paid_via, transaction_id FROM orders WHERE out_trade_no = ?', no);
  assert.equal(paid.paid_via, 'reconciler');
  assert.equal(paid.transaction_id, (await stack.simCall('GET', `/sim/orders/${no}`)).body.transaction_id);
  assert.equal((await stack.simCall('GET', `/sim/orders/${unpaid}`)).body.trade_state, 'CLOSED', 'closed at WeChat first');
});

test('a JSON notify to a v2 merchant is refused by name, in JSON, and changes nothing', async (t) => {
  const v2 = await startStack({});
  t.after(() => v2.stop());
  const body = JSON.stringify({ id: 'EV-1', event_type: 'TRANSACTION.SUCCESS', resource: {} });
  const r = await v2.call('POST', '/notify/', { raw: body, headers: { 'content-type': 'application/json' } });
  assert.equal(r.status, 400, JSON.stringify(r.body));
  assert.deepEqual(r.body, { code: 'FAIL', message: 'rejected: WRONG_NOTIFY_FORMAT' });
  const [row] = v2.sql('SELECT verdict, verified, reason FROM notifications');
  assert.equal(row.verdict, 'REJECTED');
  assert.equal(row.verified, 0);
  assert.match(row.reason, /^WRONG_NOTIFY_FORMAT: an APIv3 JSON notify to a merchant configured for a v2 XML notify/);
});

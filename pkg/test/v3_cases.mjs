// The APIv3 helpers against the core's vectors (crates/core/tests/v3_vectors.rs), and the
// inputs that must be refused. Shared by Node (v3.test.mjs) and headless Chromium
// (browser/page.js), so both engines' WebCrypto run the same cases.
import { V3 } from './vectors.mjs';

function fail(message) {
  throw new Error(message);
}
function equal(actual, expected, what) {
  if (actual !== expected) fail(`${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
}
async function rejects(promise, code, what) {
  try {
    await promise;
  } catch (e) {
    if (!(e instanceof Error)) fail(`${what}: threw a non-Error`);
    equal(e.code, code, `${what} (${e.message})`);
    return e;
  }
  fail(`${what}: expected ${code}, nothing was thrown`);
}
function throws(f, code, what) {
  try {
    f();
  } catch (e) {
    equal(e.code, code, `${what} (${e.message})`);
    return e;
  }
  fail(`${what}: expected ${code}, nothing was thrown`);
}

const signatureOf = (header) => /signature="([^"]+)"/.exec(header)?.[1];
const merchant = { mchid: V3.mchid, serialNo: V3.serialNo, privateKey: V3.testKeyPkcs8, timestamp: V3.timestamp, nonce: V3.nonce };
const answer = (over = {}) => ({
  headers: { ...V3.answer.headers, ...over.headers },
  body: over.body ?? V3.answer.body,
  keys: { publicKeyId: V3.answer.publicKeyId, publicKey: V3.answer.publicKey },
  now: over.now ?? 1722850421 + 299,
});
const flip = (b64) => b64.slice(0, 10) + (b64[10] === 'A' ? 'B' : 'A') + b64.slice(11);

let fresh = 0;

export const cases = [
  ['v3Authorization: the official GET (path parameter) vector', async (wx) => {
    const a = await wx.v3Authorization({ ...merchant, method: 'GET', url: V3.refundQuery.url });
    equal(a.message, `GET\n${V3.refundQuery.url}\n1554208460\n${V3.nonce}\n\n`, 'message');
    equal(signatureOf(a.authorization), V3.refundQuery.signature, 'signature');
    equal(a.authorization.startsWith('WECHATPAY2-SHA256-RSA2048 mchid="1900007291",'), true, 'schema and mchid first');
    equal(a.authorization.includes(`serial_no="${V3.serialNo}"`), true, 'serial_no');
    equal(a.authorization.includes('timestamp="1554208460"'), true, 'timestamp');
  }],
  ['v3Authorization: the official JSAPI prepay body vector, byte for byte', async (wx) => {
    const a = await wx.v3Authorization({ ...merchant, method: 'POST', url: V3.jsapiPrepay.url, body: V3.jsapiPrepay.body });
    equal(signatureOf(a.authorization), V3.jsapiPrepay.signature, 'signature');
    // The same bytes as a Uint8Array sign the same.
    const bytes = await wx.v3Authorization({ ...merchant, method: 'POST', url: V3.jsapiPrepay.url, body: new TextEncoder().encode(V3.jsapiPrepay.body) });
    equal(signatureOf(bytes.authorization), V3.jsapiPrepay.signature, 'signature over bytes');
    // Re-serialized with one space more: another signature.
    const respaced = await wx.v3Authorization({ ...merchant, method: 'POST', url: V3.jsapiPrepay.url, body: V3.jsapiPrepay.body.replace(',', ', ') });
    equal(signatureOf(respaced.authorization) === V3.jsapiPrepay.signature, false, 'a re-serialized body signs differently');
  }],
  ['v3Authorization: a percent-encoded query is signed as sent; a CryptoKey works as the key', async (wx) => {
    const a = await wx.v3Authorization({ ...merchant, method: 'GET', url: V3.encodedQuery.url });
    equal(signatureOf(a.authorization), V3.encodedQuery.signature, 'signature');
    const der = Uint8Array.from(atob(V3.testKeyPkcs8.replace(/-----[^-]+-----|\s/g, '')), (c) => c.charCodeAt(0));
    const key = await crypto.subtle.importKey('pkcs8', der, { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }, false, ['sign']);
    const k = await wx.v3Authorization({ ...merchant, privateKey: key, method: 'GET', url: V3.encodedQuery.url });
    equal(signatureOf(k.authorization), V3.encodedQuery.signature, 'signature with a CryptoKey');
  }],
  ['v3Authorization: defaults, and each PEM imported once', async (wx) => {
    const subtle = globalThis.crypto.subtle;
    const original = subtle.importKey;
    let imports = 0;
    subtle.importKey = function (...args) {
      imports++;
      return original.apply(this, args);
    };
    try {
      const pem = V3.testKeyPkcs8 + '\n'.repeat(++fresh); // a PEM string not seen yet
      const before = Math.floor(Date.now() / 1000);
      const [a, b] = await Promise.all([0, 1].map(() => wx.v3Authorization({ ...merchant, privateKey: pem, timestamp: undefined, nonce: undefined, method: 'GET', url: '/v3/certificates' })));
      await wx.v3Authorization({ ...merchant, privateKey: pem, method: 'GET', url: '/v3/certificates' });
      equal(imports, 1, 'importKey calls for one PEM');
      equal(/^[0-9A-Za-z]{32}$/.test(a.nonce), true, 'a 32-character nonce');
      equal(a.nonce === b.nonce, false, 'a fresh nonce per request');
      equal(Math.abs(Number(a.timestamp) - before) <= 2, true, 'timestamp is now');
      equal(a.authorization.includes(`nonce_str="${a.nonce}",timestamp="${a.timestamp}"`), true, 'header carries them');
    } finally {
      subtle.importKey = original;
    }
  }],
  ['v3Authorization: refused before signing', async (wx) => {
    await rejects(wx.v3Authorization({ ...merchant, method: 'GET', url: 'https://api.mch.weixin.qq.com/v3/certificates' }), 'V3_BAD_REQUEST', 'full URL');
    await rejects(wx.v3Authorization({ ...merchant, method: 'GET', url: '/v3/x', body: '{}' }), 'V3_BAD_REQUEST', 'GET with a body');
    await rejects(wx.v3Authorization({ ...merchant, method: 'get', url: '/v3/x' }), 'V3_BAD_REQUEST', 'lowercase method');
    await rejects(wx.v3Authorization({ ...merchant, serialNo: 'a"b', method: 'GET', url: '/v3/x' }), 'V3_BAD_REQUEST', 'a quote in serial_no');
    await rejects(wx.v3Authorization({ ...merchant, mchid: undefined, method: 'GET', url: '/v3/x' }), 'INVALID_ARGUMENT', 'no mchid');
    await rejects(wx.v3Authorization({ ...merchant, privateKey: V3.answer.publicKey, method: 'GET', url: '/v3/x' }), 'V3_BAD_KEY', 'a public key to sign with');
    await rejects(wx.v3Authorization({ ...merchant, privateKey: '-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----', method: 'GET', url: '/v3/x' }), 'V3_BAD_KEY', 'PKCS#1');
    await rejects(wx.v3Authorization({ ...merchant, privateKey: 'not a pem', method: 'GET', url: '/v3/x' }), 'V3_BAD_KEY', 'not PEM');
    await rejects(wx.v3Authorization(null), 'INVALID_ARGUMENT', 'no options');
  }],
  ['v3PaymentParams: wx.requestPayment fields and the paySign vector', async (wx) => {
    const p = await wx.v3PaymentParams({ ...V3.payment, privateKey: V3.testKeyPkcs8 });
    equal(JSON.stringify(p), JSON.stringify({
      appId: V3.payment.appId,
      timeStamp: V3.payment.timeStamp,
      nonceStr: V3.payment.nonceStr,
      package: `prepay_id=${V3.payment.prepayId}`,
      signType: 'RSA',
      paySign: V3.payment.paySign,
    }), 'fields');
    const d = await wx.v3PaymentParams({ appId: V3.payment.appId, prepayId: V3.payment.prepayId, privateKey: V3.testKeyPkcs8 });
    equal(/^\d{10}$/.test(d.timeStamp) && /^[0-9A-Za-z]{32}$/.test(d.nonceStr), true, 'defaults');
    await rejects(wx.v3PaymentParams({ ...V3.payment, prepayId: '', privateKey: V3.testKeyPkcs8 }), 'INVALID_ARGUMENT', 'empty prepayId');
  }],
  ['v3Verify: the official answer under the 微信支付公钥; its raw bytes only', async (wx) => {
    const v = await wx.v3Verify(answer());
    equal(v.serial, V3.answer.publicKeyId, 'serial');
    equal(v.body, V3.answer.body, 'body');
    equal(v.timestamp, 1722850421, 'timestamp');
    equal(v.nonce, 'd824f2e086d3c1df967785d13fcd22ef', 'nonce');
    const bytes = await wx.v3Verify(answer({ body: new TextEncoder().encode(V3.answer.body) }));
    equal(bytes.body, V3.answer.body, 'a Uint8Array body');
    await rejects(wx.v3Verify(answer({ body: V3.answer.body.replace(':', ': ') })), 'SIGN_MISMATCH', 're-serialized body');
    await rejects(wx.v3Verify({ ...answer(), body: JSON.parse(V3.answer.body) }), 'INVALID_ARGUMENT', 'a parsed body');
  }],
  ['v3Verify: headers from fetch, Node (lowercase) or a plain object', async (wx) => {
    if (typeof Headers === 'function') {
      const v = await wx.v3Verify({ ...answer(), headers: new Headers(V3.answer.headers) });
      equal(v.serial, V3.answer.publicKeyId, 'fetch Headers');
    }
    const lower = Object.fromEntries(Object.entries(V3.answer.headers).map(([k, v]) => [k.toLowerCase(), v]));
    equal((await wx.v3Verify({ ...answer(), headers: lower })).serial, V3.answer.publicKeyId, 'lowercase');
  }],
  ['v3Verify: a wrong signature, stale or future timestamps, the probe, an unknown serial, a missing header', async (wx) => {
    const sig = V3.answer.headers['Wechatpay-Signature'];
    await rejects(wx.v3Verify(answer({ headers: { 'Wechatpay-Signature': flip(sig) } })), 'SIGN_MISMATCH', 'one signature character changed');
    await rejects(wx.v3Verify(answer({ headers: { 'Wechatpay-Signature': V3.goNotify.headers['Wechatpay-Signature'] } })), 'SIGN_MISMATCH', "another message's signature");
    await rejects(wx.v3Verify(answer({ now: 1722850421 + 301 })), 'V3_TIMESTAMP_SKEW', 'stale by 301 s');
    await rejects(wx.v3Verify(answer({ now: 1722850421 - 301 })), 'V3_TIMESTAMP_SKEW', 'from 301 s in the future');
    equal((await wx.v3Verify(answer({ now: 1722850421 - 300 }))).serial, V3.answer.publicKeyId, '300 s either way is accepted');
    await rejects(wx.v3Verify(answer({ headers: { 'Wechatpay-Signature': `WECHATPAY/SIGNTEST/${sig}` } })), 'V3_SIGN_PROBE', 'the probe');
    await rejects(wx.v3Verify(answer({ headers: { 'Wechatpay-Serial': 'PUB_KEY_ID_0000000000000024101100397200000007' } })), 'V3_UNKNOWN_SERIAL', 'another public key id');
    await rejects(wx.v3Verify(answer({ headers: { 'Wechatpay-Serial': V3.goNotify.serial } })), 'V3_UNKNOWN_SERIAL', 'a certificate we do not hold');
    await rejects(wx.v3Verify(answer({ headers: { 'Wechatpay-Nonce': undefined } })), 'V3_HEADER_MISSING', 'no nonce');
    await rejects(wx.v3Verify(answer({ headers: { 'Wechatpay-Signature': '***' } })), 'BAD_BASE64', 'not base64');
    await rejects(wx.v3Verify({ ...answer(), keys: { publicKeyId: 'ABC', publicKey: V3.answer.publicKey } }), 'V3_UNKNOWN_SERIAL', 'a public key id without PUB_KEY_ID_');
  }],
  ['v3Verify: a notify by platform certificate (wechatpay-go), beside the 微信支付公钥', async (wx) => {
    const keys = { publicKeyId: V3.answer.publicKeyId, publicKey: V3.answer.publicKey, platformCertificates: { [V3.goNotify.serial]: V3.goNotify.certificate } };
    const v = await wx.v3Verify({ headers: V3.goNotify.headers, body: V3.goNotify.body, keys, now: 1624523846 });
    equal(v.serial, V3.goNotify.serial, 'serial');
    equal(JSON.parse(v.body).resource.algorithm, 'AEAD_AES_256_GCM', 'body');
    const both = await wx.v3Verify({ ...answer(), keys });
    equal(both.serial, V3.answer.publicKeyId, 'the public key still verifies its answers');
    await rejects(wx.v3Verify({ headers: V3.goNotify.headers, body: V3.goNotify.body, keys: { platformCertificates: { [V3.goNotify.serial]: V3.answer.publicKey } }, now: 1624523846 }), 'SIGN_MISMATCH', 'the wrong key under that serial');
    // Its resource is encrypted with a 16-byte key: refused as an APIv3 key.
    const r = JSON.parse(v.body).resource;
    throws(() => wx.v3Decrypt({ apiV3Key: V3.goNotify.apiV3Key16, nonce: r.nonce, associatedData: r.associated_data, ciphertext: r.ciphertext }), 'BAD_KEY_LENGTH', '16-byte key');
  }],
  ['v3Decrypt: the wechatpay-java vector; a bad tag, AAD, nonce or key refused', async (wx) => {
    equal(wx.v3Decrypt(V3.aead), V3.aead.plaintext, 'plaintext');
    throws(() => wx.v3Decrypt({ ...V3.aead, associatedData: 'bad-associatedData' }), 'V3_DECRYPT_FAILED', 'bad AAD');
    throws(() => wx.v3Decrypt({ ...V3.aead, nonce: 'bad-4a9R25RW' }), 'V3_DECRYPT_FAILED', 'bad nonce');
    const sealed = atob(V3.aead.ciphertext);
    const badTag = btoa(sealed.slice(0, -1) + String.fromCharCode(sealed.charCodeAt(sealed.length - 1) ^ 1));
    throws(() => wx.v3Decrypt({ ...V3.aead, ciphertext: badTag }), 'V3_DECRYPT_FAILED', 'bad tag');
    throws(() => wx.v3Decrypt({ ...V3.aead, apiV3Key: V3.goNotify.apiV3Key16 }), 'BAD_KEY_LENGTH', '16-byte key');
    throws(() => wx.v3Decrypt({ ...V3.aead, nonce: 'short' }), 'V3_BAD_NONCE_LENGTH', 'nonce length');
    throws(() => wx.v3Decrypt({ ...V3.aead, ciphertext: 'AAAA' }), 'BAD_CIPHERTEXT_LENGTH', 'shorter than the tag');
    throws(() => wx.v3Decrypt({ ...V3.aead, ciphertext: '%%%' }), 'BAD_BASE64', 'not base64');
    throws(() => wx.v3Decrypt(null), 'INVALID_ARGUMENT', 'no options');
  }],
  ['the package exports the v3 helpers and nothing internal', async (wx) => {
    for (const f of ['v3Authorization', 'v3Verify', 'v3PaymentParams', 'v3Decrypt', 'explainV3']) equal(typeof wx[f], 'function', f);
    equal(Object.keys(wx).filter((k) => k.startsWith('_')).join(), '', 'internal names');
    for (const c of ['V3_TIMESTAMP_SKEW', 'V3_SIGN_PROBE', 'V3_UNKNOWN_SERIAL', 'V3_DECRYPT_FAILED', 'V3_BAD_KEY']) equal(wx.errorCodes().includes(c), true, c);
  }],
];

/** Runs every case; `{passed, failures}` for the browser page. */
export async function runCases(wx) {
  const failures = [];
  let passed = 0;
  for (const [name, f] of cases) {
    try {
      await f(wx);
      passed++;
    } catch (e) {
      failures.push(`${name}: ${e.code ?? ''} ${e.message}`);
    }
  }
  return { passed, failures };
}

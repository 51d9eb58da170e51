// The package as a Node user meets it (ESM): every function, its errors, the official
// vectors, and agreement with Node's own crypto on random inputs.
import test from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createHmac, createCipheriv, randomBytes, randomInt } from 'node:crypto';
import * as wx from 'wxedge';
import { DEMO, DOC } from './vectors.mjs';

function throwsCode(fn, code) {
  assert.throws(fn, (e) => {
    assert.ok(e instanceof Error, 'throws an Error');
    assert.equal(e.code, code, `expected code ${code}, got ${e.code}: ${e.message}`);
    assert.ok(e.message.length > 0);
    return true;
  });
}

test('official v2 signing example: MD5 and HMAC-SHA256', () => {
  assert.equal(wx.sign(DOC.params, DOC.key), DOC.md5);
  assert.equal(wx.sign(DOC.params, DOC.key, 'MD5'), DOC.md5);
  assert.equal(wx.sign(DOC.params, DOC.key, 'HMAC-SHA256'), DOC.hmac);
  assert.equal(wx.verifySign({ ...DOC.params, sign: DOC.md5 }, DOC.key, 'MD5'), true);
  assert.equal(wx.verifySign({ ...DOC.params, sign: DOC.hmac }, DOC.key, 'HMAC-SHA256'), true);
  assert.equal(wx.verifySign({ ...DOC.params, sign: DOC.md5.toLowerCase() }, DOC.key, 'MD5'), false);
});

test('official decrypt demo vector', () => {
  const u = wx.decryptUserData(DEMO.appId, DEMO.sessionKey, DEMO.encryptedData, DEMO.iv);
  assert.equal(u.openId, 'oGZUI0egBJY1zhBYw2KhdUfwVJJE');
  assert.equal(u.nickName, 'Band');
  assert.equal(u.gender, 1);
  assert.deepEqual(u.watermark, { appid: 'wx4f4bc4dec97d474b', timestamp: 1477314187 });
});

test('sign: sign_type in params selects the algorithm; numbers are stringified', () => {
  assert.equal(wx.sign({ ...DOC.params, sign_type: 'HMAC-SHA256' }, DOC.key), wx.sign({ ...DOC.params, sign_type: 'HMAC-SHA256' }, DOC.key, 'HMAC-SHA256'));
  assert.equal(wx.sign({ ...DOC.params, mch_id: 10000100 }, DOC.key), DOC.md5);
  assert.equal(wx.sign({ ...DOC.params, attach: '', openid: null, x: undefined }, DOC.key), DOC.md5);
  throwsCode(() => wx.sign(DOC.params, DOC.key, 'SHA1'), 'SIGN_TYPE_UNKNOWN');
  throwsCode(() => wx.sign({ ...DOC.params, sign_type: 'md5' }, DOC.key), 'SIGN_TYPE_UNKNOWN');
  throwsCode(() => wx.sign('appid=1', DOC.key), 'INVALID_ARGUMENT');
  throwsCode(() => wx.sign({ a: { nested: 1 } }, DOC.key), 'INVALID_ARGUMENT');
  throwsCode(() => wx.verifySign(DOC.params, DOC.key, 'MD5'), 'SIGN_MISSING');
});

test('toXml / parseXml round-trip, CDATA and ]]>', () => {
  const p = { body: '老男孩学费 😀', attach: 'a]]>b', note: '<&>' };
  const xml = wx.toXml(p);
  assert.match(xml, /^<xml><attach><!\[CDATA\[a\]\]\]\]><!\[CDATA\[>b\]\]><\/attach>/);
  assert.deepEqual(wx.parseXml(xml), p);
  assert.deepEqual(wx.parseXml(new TextEncoder().encode(xml)), p);
  throwsCode(() => wx.toXml({ 'bad key': '1' }), 'XML_INVALID_KEY');
});

test('parseXml refuses what WeChat never sends, each with its code', () => {
  const cases = [
    ['<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml><a>&e;</a></xml>', 'XML_ENTITY_DECLARATION'],
    ['<!DOCTYPE xml><xml></xml>', 'XML_DOCTYPE'],
    ['<xml><a>&foo;</a></xml>', 'XML_UNKNOWN_ENTITY'],
    ['<xml><a>1</a><a>2</a></xml>', 'XML_DUPLICATE_KEY'],
    ['<xml><a><b>1</b></a></xml>', 'XML_NESTED'],
    ['<xml><a>1</a></xml><x/>', 'XML_TRAILING_CONTENT'],
    ['', 'XML_MISSING_ROOT'],
    ['<root/>', 'XML_WRONG_ROOT'],
    ['<xml><a k="v">1</a></xml>', 'XML_ATTRIBUTES'],
    ['<xml><a>1</a>', 'XML_UNCLOSED'],
    [`<xml><a>${'x'.repeat(70000)}</a></xml>`, 'XML_TOO_LARGE'],
    [new Uint8Array([0x3c, 0x78, 0xff]), 'XML_NOT_UTF8'],
  ];
  for (const [body, code] of cases) throwsCode(() => wx.parseXml(body), code);
  throwsCode(() => wx.parseXml(42), 'INVALID_ARGUMENT');
});

test('decryptUserData errors name the problem', () => {
  const { appId, sessionKey, encryptedData, iv } = DEMO;
  throwsCode(() => wx.decryptUserData(appId, 'AAAAAAAAAAAAAAAAAAAAAA==', encryptedData, iv), 'BAD_PADDING');
  throwsCode(() => wx.decryptUserData('wxsomeoneelse', sessionKey, encryptedData, iv), 'WATERMARK_MISMATCH');
  throwsCode(() => wx.decryptUserData(appId, 'AAAA', encryptedData, iv), 'BAD_KEY_LENGTH');
  throwsCode(() => wx.decryptUserData(appId, sessionKey, encryptedData, 'AAAA'), 'BAD_IV_LENGTH');
  throwsCode(() => wx.decryptUserData(appId, sessionKey, 'AAAA', iv), 'BAD_CIPHERTEXT_LENGTH');
  throwsCode(() => wx.decryptUserData(appId, sessionKey, '***', iv), 'BAD_BASE64');
  // The form-encoding trap: '+' arrived as ' '.
  assert.throws(() => wx.decryptUserData(appId, sessionKey, encryptedData.replaceAll('+', ' '), iv), /form-encoding/);
});

test('verifyRawData', () => {
  const raw = '{"nickName":"Band","gender":1}';
  const sig = createHash('sha1').update(raw + DEMO.sessionKey).digest('hex');
  assert.equal(wx.verifyRawData(raw, DEMO.sessionKey, sig), true);
  assert.equal(wx.verifyRawData(raw + ' ', DEMO.sessionKey, sig), false);
});

test('paymentParams and verifyPaymentParams', () => {
  for (const signType of ['MD5', 'HMAC-SHA256']) {
    const pp = wx.paymentParams({ appId: 'wxapp', prepayId: 'wx2017033010242291fcfe0db70013231072', key: DOC.key, signType });
    assert.deepEqual(Object.keys(pp).sort(), ['appId', 'nonceStr', 'package', 'paySign', 'signType', 'timeStamp']);
    assert.equal(pp.package, 'prepay_id=wx2017033010242291fcfe0db70013231072');
    assert.equal(pp.signType, signType);
    assert.ok(Math.abs(Number(pp.timeStamp) - Date.now() / 1000) < 5, 'timeStamp is now, in seconds');
    assert.equal(pp.nonceStr.length, 32);
    // What the seed client forwards to wx.requestPayment: the five fields, no appId.
    const { appId, ...five } = pp;
    assert.equal(wx.verifyPaymentParams(five, 'wxapp', DOC.key), true);
    assert.equal(wx.verifyPaymentParams(pp, 'wxother', DOC.key), false);
    assert.equal(wx.verifyPaymentParams({ ...pp, paySign: pp.paySign.toLowerCase() }, 'wxapp', DOC.key), false);
    // Independent recomputation of the second sign.
    const s = `appId=wxapp&nonceStr=${pp.nonceStr}&package=${pp.package}&signType=${signType}&timeStamp=${pp.timeStamp}&key=${DOC.key}`;
    const want = signType === 'MD5' ? createHash('md5').update(s).digest('hex') : createHmac('sha256', DOC.key).update(s).digest('hex');
    assert.equal(pp.paySign, want.toUpperCase());
  }
  const fixed = wx.paymentParams({ appId: 'a', prepayId: 'p', key: 'k', timeStamp: 1414561699, nonceStr: 'n' });
  assert.equal(fixed.timeStamp, '1414561699');
  throwsCode(() => wx.paymentParams({ appId: 'a', key: 'k' }), 'INVALID_ARGUMENT');
  throwsCode(() => wx.verifyPaymentParams({ timeStamp: '1', nonceStr: 'n', package: 'prepay_id=p', signType: 'MD5' }, 'a', 'k'), 'MISSING_FIELD');
  throwsCode(() => wx.verifyPaymentParams({ ...fixed, package: 'p' }, 'a', 'k'), 'BAD_FIELD');
});

test('validateUnifiedOrder returns every problem at once', () => {
  const ok = {
    appid: 'wxapp', mch_id: '1900000109', nonce_str: wx.nonceStr(), body: '学费', out_trade_no: 'o1',
    total_fee: 1, spbill_create_ip: '203.0.113.7', notify_url: 'https://x.example/notify/', trade_type: 'JSAPI', openid: 'o',
  };
  assert.deepEqual(wx.validateUnifiedOrder(ok), []);
  const problems = wx.validateUnifiedOrder({ ...ok, total_fee: 0.5, body: 'x'.repeat(129), out_trade_no: 'a b', openid: '' });
  const fields = problems.map((p) => p.field).sort();
  assert.deepEqual(fields, ['body', 'openid', 'out_trade_no', 'total_fee']);
  for (const p of problems) assert.ok(p.problem.length > 0);
});

test('nonceStr', () => {
  const seen = new Set();
  for (let i = 0; i < 1000; i++) {
    const n = wx.nonceStr();
    assert.match(n, /^[0-9A-Za-z]{32}$/);
    seen.add(n);
  }
  assert.equal(seen.size, 1000);
  assert.equal(wx.nonceStr(16).length, 16);
  throwsCode(() => wx.nonceStr(33), 'INVALID_ARGUMENT');
  throwsCode(() => wx.nonceStr(0), 'INVALID_ARGUMENT');
});

test('explainSign names the mistake', () => {
  const right = wx.explainSign(DOC.params, DOC.key, DOC.md5);
  assert.equal(right.matches, true);
  assert.equal(right.canonical, 'appid=wxd930ea5d5a258f4f&body=test&device_info=1000&mch_id=10000100&nonce_str=ibuaiVcKdpRxkhJA');
  assert.equal(right.hmacSha256, DOC.hmac);
  assert.ok(!right.stringToSign.includes(DOC.key), 'key is masked');
  const lower = wx.explainSign(DOC.params, DOC.key, DOC.md5.toLowerCase());
  assert.deepEqual(lower.mistakes.map((m) => m.code), ['LOWERCASE_HEX']);
  const other = wx.explainSign({ ...DOC.params, sign_type: 'HMAC-SHA256' }, DOC.key, wx.sign({ ...DOC.params, sign_type: 'HMAC-SHA256' }, DOC.key, 'MD5'));
  assert.equal(other.mistakes[0].code, 'OTHER_ALGORITHM');
  assert.match(other.mistakes[0].message, /HMAC-SHA256/);
  const secret = 'a1b2c3d4e5f60718293a4b5c6d7e8f90';
  const withSecret = wx.explainSign(DOC.params, DOC.key, wx.sign(DOC.params, secret), { appSecret: secret });
  assert.deepEqual(withSecret.mistakes.map((m) => m.code), ['APP_SECRET_AS_KEY']);
});

test('parseNotify verifies with the merchant sign type and notifyReply answers', () => {
  const key = DOC.key;
  const fields = {
    return_code: 'SUCCESS', result_code: 'SUCCESS', appid: 'wxapp', mch_id: '1900000109', nonce_str: 'n',
    out_trade_no: 'o1', transaction_id: '4200', total_fee: '100', openid: 'oU', time_end: '20261125120000',
  };
  // HMAC-SHA256 merchant, notify without sign_type.
  const xml = wx.toXml({ ...fields, sign: wx.sign(fields, key, 'HMAC-SHA256') });
  const n = wx.parseNotify(xml, key, 'HMAC-SHA256');
  assert.equal(n.total_fee, 100);
  assert.equal(n.result_code, 'SUCCESS');
  assert.equal(n.params.transaction_id, '4200');
  throwsCode(() => wx.parseNotify(xml, key, 'MD5'), 'SIGN_MISMATCH');
  throwsCode(() => wx.parseNotify(xml.replace('100', '1'), key, 'HMAC-SHA256'), 'SIGN_MISMATCH');
  assert.deepEqual(wx.parseXml(wx.notifyReply(true)), { return_code: 'SUCCESS', return_msg: 'OK' });
  assert.deepEqual(wx.parseXml(wx.notifyReply(false, '签名失败')), { return_code: 'FAIL', return_msg: '签名失败' });
});

// Cross-checks against Node's own crypto on random inputs: the two always agree.
function randomParams() {
  const p = {};
  const n = randomInt(1, 12);
  for (let i = 0; i < n; i++) {
    const key = 'k' + randomBytes(4).toString('hex');
    const kinds = [() => randomBytes(randomInt(0, 40)).toString('base64'), () => '学费😀]]>&<' + randomInt(1e6), () => String(randomInt(1e9)), () => ''];
    p[key] = kinds[randomInt(kinds.length)]();
  }
  return p;
}

function nodeSign(p, key, type) {
  const s = Object.keys(p).filter((k) => p[k] !== '' && k !== 'sign').sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))).map((k) => `${k}=${p[k]}`).join('&') + `&key=${key}`;
  return (type === 'MD5' ? createHash('md5').update(s, 'utf8') : createHmac('sha256', key).update(s, 'utf8')).digest('hex').toUpperCase();
}

test('sign agrees with node:crypto on 2000 random maps', () => {
  for (let i = 0; i < 2000; i++) {
    const p = randomParams();
    const key = randomBytes(16).toString('hex');
    for (const t of ['MD5', 'HMAC-SHA256']) assert.equal(wx.sign(p, key, t), nodeSign(p, key, t));
    assert.deepEqual(wx.parseXml(wx.toXml(p)), p);
  }
});

test('signing with one key, then another, then the first again never signs with a stale key', () => {
  const p = { a: '1', b: '学费' };
  const keys = [randomBytes(16).toString('hex'), randomBytes(16).toString('hex')];
  for (const key of [...keys, ...keys, keys[0], keys[0]]) {
    for (const t of ['HMAC-SHA256', 'MD5', 'HMAC-SHA256']) {
      assert.equal(wx.sign(p, key, t), nodeSign(p, key, t));
      assert.equal(wx.verifySign({ ...p, sign: nodeSign(p, key, t) }, key, t), true);
    }
  }
});

test('decryptUserData agrees with node:crypto createCipheriv on 500 random payloads', () => {
  for (let i = 0; i < 500; i++) {
    const key = randomBytes(16);
    const iv = randomBytes(16);
    const profile = { nickName: randomBytes(randomInt(0, 30)).toString('base64') + '😀', gender: randomInt(3), watermark: { appid: 'wxapp', timestamp: randomInt(2e9) } };
    const c = createCipheriv('aes-128-cbc', key, iv);
    const enc = Buffer.concat([c.update(JSON.stringify(profile), 'utf8'), c.final()]).toString('base64');
    const out = wx.decryptUserData('wxapp', key.toString('base64'), enc, iv.toString('base64'));
    assert.deepEqual(out, profile);
  }
});

test('errorCodes lists every code, and index.d.ts declares exactly those', async () => {
  const { readFile } = await import('node:fs/promises');
  const dts = await readFile(new URL('../index.d.ts', import.meta.url), 'utf8');
  const union = dts.slice(dts.indexOf('export type WxedgeErrorCode'), dts.indexOf(';', dts.indexOf('export type WxedgeErrorCode')));
  const declared = [...union.matchAll(/'([A-Z_0-9]+)'/g)].map((m) => m[1]).sort();
  assert.deepEqual(declared, [...wx.errorCodes()].sort());
  for (const fn of ['sign', 'verifySign', 'toXml', 'parseXml', 'decryptUserData', 'verifyRawData', 'paymentParams', 'verifyPaymentParams', 'validateUnifiedOrder', 'nonceStr', 'explainSign', 'explainV3', 'v3Authorization', 'v3Verify', 'v3PaymentParams', 'v3Decrypt', 'parseNotify', 'notifyReply', 'errorCodes', 'init', 'initSync']) {
    assert.equal(typeof wx[fn], 'function', fn);
    assert.match(dts, new RegExp(`export function ${fn}\\(`), `${fn} is declared in index.d.ts`);
  }
});

test('params: NUL characters and nested values are refused, numbers kept as JS writes them', () => {
  throwsCode(() => wx.sign({ a: 'x\u0000y' }, 'k'), 'INVALID_ARGUMENT');
  throwsCode(() => wx.sign({ 'a\u0000': 'x', b: 'c\u0000d' }, 'k'), 'INVALID_ARGUMENT');
  throwsCode(() => wx.toXml({ a: [1, 2] }), 'INVALID_ARGUMENT');
  assert.equal(wx.sign({ total_fee: 100, ok: true }, 'k'), wx.sign({ total_fee: '100', ok: 'true' }, 'k'));
  assert.deepEqual(wx.parseXml(wx.toXml({ big: 1e21, small: 0.5 })), { big: '1e+21', small: '0.5' });
  assert.equal(wx.sign({}, 'k'), createHash('md5').update('&key=k').digest('hex').toUpperCase());
});

test('parseNotify: a failed payment, and values that look like the wire markers survive', () => {
  const key = DOC.key;
  const base = { return_code: 'SUCCESS', appid: 'wxapp', mch_id: '1', out_trade_no: 'o1', total_fee: '7', nonce_str: 'n' };
  const paid = { ...base, result_code: 'SUCCESS', transaction_id: '42' };
  const p = wx.parseNotify(wx.toXml({ ...paid, sign: wx.sign(paid, key) }), key, 'MD5');
  assert.equal(p.err_code, null);
  assert.equal(p.err_code_des, null);
  assert.strictEqual(p.total_fee, 7);
  const failed = { ...base, result_code: 'FAIL', err_code: 'NOTENOUGH', err_code_des: '\u0002余额不足' };
  const f = wx.parseNotify(wx.toXml({ ...failed, sign: wx.sign(failed, key) }), key, 'MD5');
  assert.equal(f.result_code, 'FAIL');
  assert.equal(f.err_code, 'NOTENOUGH');
  assert.strictEqual(f.err_code_des, '\u0002余额不足');
  assert.strictEqual(f.total_fee, 7);
  assert.equal(f.params.err_code_des, '\u0002余额不足');
});

test('params read through getters: a throwing getter is an error, re-entry works, and the package stays usable', () => {
  const throwing = { a: '1', get b() { throw new Error('boom'); } };
  assert.throws(() => wx.sign(throwing, 'k'), /boom/);
  const reentrant = { a: '1', get b() { return wx.sign({ inner: 'x' }, 'k'); } };
  const inner = wx.sign({ inner: 'x' }, 'k');
  assert.equal(wx.sign(reentrant, 'k'), wx.sign({ a: '1', b: inner }, 'k'));
  assert.equal(wx.sign(DOC.params, DOC.key), DOC.md5, 'still works afterwards');
  const big = Object.fromEntries(Array.from({ length: 400 }, (_, i) => [`k${i}`, '学'.repeat(40)]));
  const s = Object.keys(big).sort().map((k) => `${k}=${big[k]}`).join('&') + '&key=k';
  assert.equal(wx.sign(big, 'k'), createHash('md5').update(s).digest('hex').toUpperCase(), 'a body larger than the buffer');
});

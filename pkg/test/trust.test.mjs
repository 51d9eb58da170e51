// What the package trusts, and from whom: a verification's algorithm comes from the caller,
// never from the message being verified, and a decrypted payload's watermark is judged by
// the core's one rule (crypt::judge_watermark), so the package refuses exactly what the
// worker refuses, with the same code (crates/core/src/crypt.rs tests the same payloads).
import test from 'node:test';
import assert from 'node:assert/strict';
import { createCipheriv, randomBytes } from 'node:crypto';
import * as wx from 'wxedge';
import { DOC } from './vectors.mjs';

function throwsCode(fn, code, message) {
  assert.throws(fn, (e) => {
    assert.ok(e instanceof Error, 'throws an Error');
    assert.equal(e.code, code, `expected code ${code}, got ${e.code}: ${e.message}`);
    if (message) assert.match(e.message, message);
    return true;
  });
}

// The usage error says what to pass.
const PASS_SIGN_TYPE = /pass your merchant's sign type: 'MD5' or 'HMAC-SHA256'/;

test('verifySign without a sign type is a usage error, whatever the message says', () => {
  for (const params of [{ ...DOC.params, sign: DOC.md5 }, { ...DOC.params, sign_type: 'MD5', sign: DOC.md5 }, DOC.params]) {
    for (const missing of [[], [undefined], [null], ['']]) {
      throwsCode(() => wx.verifySign(params, DOC.key, ...missing), 'INVALID_ARGUMENT', PASS_SIGN_TYPE);
    }
  }
  // An unknown sign type keeps its own code.
  throwsCode(() => wx.verifySign({ ...DOC.params, sign: DOC.md5 }, DOC.key, 'SHA1'), 'SIGN_TYPE_UNKNOWN');
  throwsCode(() => wx.verifySign({ ...DOC.params, sign: DOC.md5 }, DOC.key, 'md5'), 'SIGN_TYPE_UNKNOWN');
});

test("the message's own sign_type never changes verifySign's verdict", () => {
  const key = DOC.key;
  // sign_type is a signed field like any other: each message is signed over it.
  const claimsMd5 = { ...DOC.params, sign_type: 'MD5' };
  const claimsHmac = { ...DOC.params, sign_type: 'HMAC-SHA256' };
  const hmacClaimingMd5 = { ...claimsMd5, sign: wx.sign(claimsMd5, key, 'HMAC-SHA256') };
  const md5ClaimingHmac = { ...claimsHmac, sign: wx.sign(claimsHmac, key, 'MD5') };
  const md5ClaimingMd5 = { ...claimsMd5, sign: wx.sign(claimsMd5, key, 'MD5') };

  assert.equal(wx.verifySign(hmacClaimingMd5, key, 'HMAC-SHA256'), true);
  assert.equal(wx.verifySign(hmacClaimingMd5, key, 'MD5'), false);
  assert.equal(wx.verifySign(md5ClaimingHmac, key, 'MD5'), true);
  assert.equal(wx.verifySign(md5ClaimingHmac, key, 'HMAC-SHA256'), false);
  // The downgrade: an HMAC-SHA256 merchant is not talked into MD5 by the sender.
  assert.equal(wx.verifySign(md5ClaimingMd5, key, 'HMAC-SHA256'), false);
  // And leaving the sign type out never lets the message decide instead.
  for (const m of [hmacClaimingMd5, md5ClaimingHmac, md5ClaimingMd5]) {
    throwsCode(() => wx.verifySign(m, key), 'INVALID_ARGUMENT', PASS_SIGN_TYPE);
  }
});

test('parseNotify without a sign type is a usage error', () => {
  const key = DOC.key;
  const fields = {
    return_code: 'SUCCESS', result_code: 'SUCCESS', appid: 'wxapp', mch_id: '1900000109', nonce_str: 'n',
    out_trade_no: 'o1', transaction_id: '4200', total_fee: '100', openid: 'oU', time_end: '20261125120000',
    sign_type: 'MD5',
  };
  const xml = wx.toXml({ ...fields, sign: wx.sign(fields, key, 'MD5') });
  assert.equal(wx.parseNotify(xml, key, 'MD5').total_fee, 100);
  for (const missing of [[], [undefined], [null], ['']]) {
    throwsCode(() => wx.parseNotify(xml, key, ...missing), 'INVALID_ARGUMENT', PASS_SIGN_TYPE);
  }
  // The notify says MD5 and is signed MD5; an HMAC-SHA256 merchant refuses it.
  throwsCode(() => wx.parseNotify(xml, key, 'HMAC-SHA256'), 'SIGN_MISMATCH');
  throwsCode(() => wx.parseNotify(xml, key, 'SHA1'), 'SIGN_TYPE_UNKNOWN');
});

// A payload encrypted the way WeChat does it, around JSON text written by hand (so that
// `1.0` stays `1.0` on the wire).
function encrypt(json) {
  const key = randomBytes(16);
  const iv = randomBytes(16);
  const c = createCipheriv('aes-128-cbc', key, iv);
  const enc = Buffer.concat([c.update(json, 'utf8'), c.final()]).toString('base64');
  return [key.toString('base64'), enc, iv.toString('base64')];
}

const decrypt = (json, appId = 'wxapp') => wx.decryptUserData(appId, ...encrypt(json));

test('decryptUserData refuses a watermark whose timestamp is missing or not an integer', () => {
  const refused = [
    '{"appid":"wxapp"}',
    '{"appid":"wxapp","timestamp":1.5}',
    '{"appid":"wxapp","timestamp":"123"}',
    '{"appid":"wxapp","timestamp":null}',
    '{"appid":"wxapp","timestamp":true}',
    '{"appid":"wxapp","timestamp":[1]}',
    '{"appid":"wxapp","timestamp":{"s":1}}',
    '{"appid":"wxapp","timestamp":1e20}',
    '{"appid":"wxapp","timestamp":9007199254740992}',
    '{"timestamp":1477314187}',
    '{"appid":7,"timestamp":1477314187}',
  ];
  for (const wm of refused) {
    throwsCode(() => decrypt(`{"nickName":"n","watermark":${wm}}`), 'MISSING_WATERMARK');
  }
  for (const wm of ['null', '"wxapp"', '[]']) {
    throwsCode(() => decrypt(`{"nickName":"n","watermark":${wm}}`), 'MISSING_WATERMARK');
  }
  throwsCode(() => decrypt('{"nickName":"n"}'), 'MISSING_WATERMARK');
  // A well-formed watermark for another mini-program.
  throwsCode(() => decrypt('{"watermark":{"appid":"wxother","timestamp":1}}'), 'WATERMARK_MISMATCH');
});

test('decryptUserData takes an integer timestamp by its value, as the core does', () => {
  for (const [ts, want] of [['1477314187', 1477314187], ['0', 0], ['1.0', 1], ['1e3', 1000], ['9007199254740991', 9007199254740991]]) {
    const u = decrypt(`{"nickName":"n","watermark":{"appid":"wxapp","timestamp":${ts}}}`);
    assert.deepEqual(u, { nickName: 'n', watermark: { appid: 'wxapp', timestamp: want } }, ts);
  }
});

test('a watermark field inherited from a polluted Object.prototype is not the payload\'s', () => {
  Object.prototype.timestamp = 1;
  try {
    throwsCode(() => decrypt('{"nickName":"n","watermark":{"appid":"wxapp"}}'), 'MISSING_WATERMARK');
  } finally {
    delete Object.prototype.timestamp;
  }
});

// explainV3 as a merchant debugging a v3 SIGN_ERROR uses it: the message signed against
// the sign_information WeChat answered with.
import test from 'node:test';
import assert from 'node:assert/strict';
import * as wx from '../index.mjs';

const TS = '1554208460';
const NONCE = '593BEC0C930BF1AFEB40B4A08C8FB242';
const SERIAL = '408B07E79B8269FEC3D5D3E6AB8ED163A6A380DB';
const BODY = '{"appid":"wxd678efh567hg6787","mchid":"1230000109","amount":{"total":100}}';
const SIG = Buffer.alloc(256, 7).toString('base64');

const message = (r) => `${r.method}\n${r.url}\n${r.timestamp}\n${r.nonceStr}\n${r.body ?? ''}\n`;

/** WeChat's SIGN_ERROR for what it received: body cut after 8 bytes, then "\n". */
export function answerTo(sent) {
  const body = sent.body ?? '';
  const head = `${sent.method}\n${sent.url}\n${sent.timestamp}\n${sent.nonceStr}\n`;
  return JSON.stringify({
    code: 'SIGN_ERROR',
    message: '错误的签名，验签失败',
    detail: {
      detail: { issue: 'sign not match' },
      field: 'signature',
      location: 'authorization',
      sign_information: {
        method: sent.method,
        url: sent.url,
        sign_message_length: Buffer.byteLength(message(sent)),
        truncated_sign_message: head + body.slice(0, 8) + '\n',
      },
    },
  });
}

const header = (r, serial = SERIAL) =>
  `WECHATPAY2-SHA256-RSA2048 mchid="1230000109",nonce_str="${r.nonceStr}",timestamp="${r.timestamp}",serial_no="${serial}",signature="${SIG}"`;

const post = { method: 'POST', url: '/v3/pay/transactions/jsapi', timestamp: TS, nonceStr: NONCE, body: BODY };
const codes = (e) => e.mistakes.map((m) => m.code);

test('explainV3: the right message means the key (or signature) is wrong', () => {
  const e = wx.explainV3({ ...post, authorization: header(post), certificateSerial: SERIAL }, answerTo(post));
  assert.deepEqual(codes(e), ['KEY_OR_SIGNATURE_WRONG']);
  assert.equal(e.messageMatches, true);
  assert.equal(e.ours, message(post));
  assert.equal(e.wechat.signMessageLength, Buffer.byteLength(message(post)));
  assert.equal(e.wechat.complete, false);
  assert.match(e.mistakes[0].message, /private key that signed/);
});

test('explainV3: a body left out of the signature', () => {
  const e = wx.explainV3({ ...post, body: '' }, answerTo(post));
  assert.deepEqual(codes(e), ['BODY_MISSING']);
  assert.equal(e.mistakes[0].wechatLength, BODY.length);
});

test('explainV3: a body sent re-serialized (JSON.stringify with indent)', () => {
  const sent = { ...post, body: JSON.stringify(JSON.parse(BODY), null, 2) };
  const e = wx.explainV3({ ...post, authorization: header(sent) }, answerTo(sent));
  assert.deepEqual(codes(e), ['BODY_RESERIALIZED']);
  assert.match(e.mistakes[0].how, /pretty-printed \(2 spaces/);
  // A Uint8Array body is the same bytes.
  const bytes = wx.explainV3({ ...post, body: new TextEncoder().encode(BODY) }, answerTo(sent));
  assert.deepEqual(codes(bytes), ['BODY_RESERIALIZED']);
});

test('explainV3: a dropped query, a full URL', () => {
  const sent = { method: 'GET', url: '/v3/pay/transactions/out-trade-no/T1?mchid=1230000109', timestamp: TS, nonceStr: NONCE };
  assert.deepEqual(codes(wx.explainV3({ ...sent, url: '/v3/pay/transactions/out-trade-no/T1' }, answerTo(sent))), ['QUERY_DROPPED']);
  assert.deepEqual(codes(wx.explainV3({ ...sent, url: 'https://api.mch.weixin.qq.com' + sent.url }, answerTo(sent))), ['FULL_URL_SIGNED']);
});

test('explainV3: a timestamp or nonce other than the header\'s', () => {
  const e = wx.explainV3({ ...post, timestamp: 1554208461, authorization: header(post) }, answerTo(post));
  assert.deepEqual(codes(e), ['TIMESTAMP_MISMATCH']);
  assert.deepEqual(codes(wx.explainV3({ ...post, nonceStr: 'x' }, answerTo(post))), ['NONCE_MISMATCH']);
});

test('explainV3: the exact message signed, without its final newline', () => {
  const e = wx.explainV3({ message: message(post).slice(0, -1) }, answerTo(post));
  assert.deepEqual(codes(e), ['FINAL_NEWLINE_MISSING']);
});

test("explainV3: another certificate's serial", () => {
  const e = wx.explainV3({ ...post, authorization: header(post, '5157F09EFDC096DE15EBE81A47057A7232F1B8E1'), certificateSerial: SERIAL }, answerTo(post));
  assert.deepEqual(codes(e), ['SERIAL_MISMATCH']);
  assert.equal(e.mistakes[0].expected, SERIAL);
});

test('explainV3: what it cannot explain throws a stable code', () => {
  const code = (f) => {
    try {
      f();
    } catch (e) {
      return e.code;
    }
    return 'no throw';
  };
  assert.equal(code(() => wx.explainV3(post, '<html>502</html>')), 'NOT_JSON');
  assert.equal(code(() => wx.explainV3(post, '{"code":"PARAM_ERROR","message":"x"}')), 'V3_NOT_SIGN_ERROR');
  assert.equal(code(() => wx.explainV3({ authorization: 'Bearer x' }, answerTo(post))), 'V3_BAD_AUTHORIZATION');
  assert.equal(code(() => wx.explainV3({}, answerTo(post))), 'V3_BAD_REQUEST');
  assert.equal(code(() => wx.explainV3({ method: 'POST' }, answerTo(post))), 'INVALID_ARGUMENT');
  assert.equal(code(() => wx.explainV3({ ...post, message: 'x' }, answerTo(post))), 'INVALID_ARGUMENT');
  assert.equal(code(() => wx.explainV3(null, answerTo(post))), 'INVALID_ARGUMENT');
  assert.equal(code(() => wx.explainV3(post, 42)), 'INVALID_ARGUMENT');
  for (const c of ['V3_NOT_SIGN_ERROR', 'V3_BAD_AUTHORIZATION', 'V3_BAD_REQUEST']) assert.ok(wx.errorCodes().includes(c));
});

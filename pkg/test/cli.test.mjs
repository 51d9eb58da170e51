// The CLI as someone debugging by hand uses it: real processes, stdin and args.
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEMO, DOC } from './vectors.mjs';

const bin = fileURLToPath(new URL('../bin/wxedge.mjs', import.meta.url));

function run(args, { input, env } = {}) {
  const r = spawnSync(process.execPath, [bin, ...args], { input, encoding: 'utf8', env: { ...process.env, ...env } });
  return { status: r.status, out: r.stdout, err: r.stderr };
}

test('sign prints the canonical string and the sign; key from the environment', () => {
  const r = run(['sign'], { input: JSON.stringify(DOC.params), env: { WXEDGE_KEY: DOC.key } });
  assert.equal(r.status, 0, r.err);
  assert.match(r.out, /appid=wxd930ea5d5a258f4f&body=test&device_info=1000&mch_id=10000100&nonce_str=ibuaiVcKdpRxkhJA/);
  assert.match(r.out, new RegExp(DOC.md5));
  const h = run(['sign', '--key', DOC.key, '--sign-type', 'HMAC-SHA256', JSON.stringify(DOC.params)]);
  assert.match(h.out, new RegExp(DOC.hmac));
});

test('sign --output xml prints a signed body that verifies', () => {
  const r = run(['sign', '--output', 'xml', '--key', DOC.key, JSON.stringify(DOC.params)]);
  assert.equal(r.status, 0, r.err);
  assert.match(r.out, new RegExp(`^<xml>.*<sign><!\\[CDATA\\[${DOC.md5}\\]\\]></sign>.*</xml>\n$`));
  const v = run(['verify', '--key', DOC.key, '--sign-type', 'MD5', r.out.trim()]);
  assert.equal(v.status, 0, v.out + v.err);
  assert.equal(run(['sign', '--output', 'json', '--key', DOC.key, '{}']).status, 2);
});

test('verify accepts XML, explains a mismatch and exits 1', () => {
  const xml = `<xml>${Object.entries(DOC.params).map(([k, v]) => `<${k}>${v}</${k}>`).join('')}<sign>${DOC.md5.toLowerCase()}</sign></xml>`;
  const r = run(['verify', '--key', DOC.key, '--sign-type', 'MD5'], { input: xml });
  assert.equal(r.status, 1);
  assert.match(r.out, /LOWERCASE_HEX/);
  const ok = run(['verify', '--key', DOC.key, '--sign-type', 'MD5'], { input: xml.replace(DOC.md5.toLowerCase(), DOC.md5) });
  assert.equal(ok.status, 0, ok.out + ok.err);
  assert.match(ok.out, /OK: the sign matches \(MD5\)/);
});

test("verify takes the sign type from --sign-type, never from the input's sign_type", () => {
  const signed = (claims, by) => {
    const p = { ...DOC.params, sign_type: claims };
    const s = run(['sign', '--output', 'xml', '--key', DOC.key, '--sign-type', by, JSON.stringify(p)]);
    assert.equal(s.status, 0, s.err);
    return s.out.trim();
  };
  // Without --sign-type: a usage error that says what to pass, even for a valid sign.
  const none = run(['verify', '--key', DOC.key], { input: signed('MD5', 'MD5') });
  assert.equal(none.status, 2);
  assert.match(none.err, /--sign-type: pass your merchant's sign type: 'MD5' or 'HMAC-SHA256'/);
  // An input that says MD5 and is signed MD5 does not pass for an HMAC-SHA256 merchant.
  const downgrade = run(['verify', '--key', DOC.key, '--sign-type', 'HMAC-SHA256'], { input: signed('MD5', 'MD5') });
  assert.equal(downgrade.status, 1, downgrade.out + downgrade.err);
  assert.match(downgrade.out, /MISMATCH: the sign is a valid MD5 sign \(the input's sign_type\), but your merchant signs with HMAC-SHA256/);
  // The verdict follows --sign-type whatever the input claims.
  const hmac = run(['verify', '--key', DOC.key, '--sign-type', 'HMAC-SHA256'], { input: signed('MD5', 'HMAC-SHA256') });
  assert.equal(hmac.status, 0, hmac.out + hmac.err);
  assert.match(hmac.out, /OK: the sign matches \(HMAC-SHA256\)/);
  const md5 = run(['verify', '--key', DOC.key, '--sign-type', 'MD5'], { input: signed('HMAC-SHA256', 'MD5') });
  assert.equal(md5.status, 0, md5.out + md5.err);
  const unknown = run(['verify', '--key', DOC.key, '--sign-type', 'SHA1'], { input: signed('MD5', 'MD5') });
  assert.equal(unknown.status, 1);
  assert.match(unknown.err, /\[SIGN_TYPE_UNKNOWN\]/);
});

test('explain names the other algorithm', () => {
  const r = run(['explain', '--key', DOC.key, '--sign', DOC.hmac, JSON.stringify(DOC.params)]);
  assert.equal(r.status, 1);
  assert.match(r.out, /\[OTHER_ALGORITHM\] signed with HMAC-SHA256, but the parameters say MD5/);
  assert.ok(!r.out.includes(DOC.key), 'the key is never printed');
});

test('decrypt the official vector', () => {
  const r = run(['decrypt', '--appid', DEMO.appId, '--session-key', DEMO.sessionKey, '--iv', DEMO.iv], { input: DEMO.encryptedData });
  assert.equal(r.status, 0, r.err);
  assert.equal(JSON.parse(r.out).nickName, 'Band');
  const stale = run(['decrypt', '--appid', DEMO.appId, '--session-key', 'AAAAAAAAAAAAAAAAAAAAAA==', '--iv', DEMO.iv, DEMO.encryptedData]);
  assert.equal(stale.status, 1);
  assert.match(stale.err, /\[BAD_PADDING\].*wx\.login again/);
});

test('xml2json and json2xml round-trip', () => {
  const x = run(['json2xml', '{"body":"学费 ]]>","total_fee":1}']);
  assert.equal(x.status, 0, x.err);
  const j = run(['xml2json'], { input: x.out });
  assert.deepEqual(JSON.parse(j.out), { body: '学费 ]]>', total_fee: '1' });
  const bad = run(['xml2json', '<xml><a>1</a><a>2</a></xml>']);
  assert.equal(bad.status, 1);
  assert.match(bad.err, /XML_DUPLICATE_KEY/);
});

test('usage errors exit 2 and say what is missing', () => {
  assert.equal(run(['bogus']).status, 2);
  const r = run(['sign', '{}'], { env: { WXEDGE_KEY: '' } });
  assert.equal(r.status, 2);
  assert.match(r.err, /API key is missing/);
  assert.match(run(['--help']).out, /usage:/);
});

// WeChat's 401 for a request whose body it received cut after 8 bytes (as it shows it).
function signError(sent) {
  const head = `${sent.method}\n${sent.url}\n${sent.timestamp}\n${sent.nonce}\n`;
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
        sign_message_length: Buffer.byteLength(`${head}${sent.body}\n`),
        truncated_sign_message: `${head}${sent.body.slice(0, 8)}\n`,
      },
    },
  });
}

test('explain-v3 names the difference between the request signed and the one WeChat verified', () => {
  const sent = { method: 'POST', url: '/v3/pay/transactions/jsapi', timestamp: '1554208460', nonce: '593BEC0C930BF1AFEB40B4A08C8FB242', body: '{"appid":"wxd678efh567hg6787","amount":{"total":100}}' };
  const flags = (r) => ['--method', r.method, '--url', r.url, '--timestamp', r.timestamp, '--nonce', r.nonce];
  // Signed without the query WeChat received.
  const q = run(['explain-v3', ...flags({ ...sent, url: '/v3/pay/transactions/out-trade-no/T1', method: 'GET' })], {
    input: signError({ ...sent, method: 'GET', url: '/v3/pay/transactions/out-trade-no/T1?mchid=1230000109', body: '' }),
  });
  assert.equal(q.status, 1, q.err);
  assert.match(q.out, /\[QUERY_DROPPED\]/);
  assert.match(q.out, /WeChat says: 错误的签名，验签失败/);
  // Signed one body, sent it pretty-printed; the body read from a file, byte for byte.
  const dir = mkdtempSync(join(tmpdir(), 'wxedge-cli-'));
  try {
    writeFileSync(join(dir, 'body.json'), sent.body);
    const pretty = JSON.stringify(JSON.parse(sent.body), null, 2);
    const b = run(['explain-v3', ...flags(sent), '--body-file', join(dir, 'body.json'), signError({ ...sent, body: pretty })]);
    assert.equal(b.status, 1, b.err);
    assert.match(b.out, /\[BODY_RESERIALIZED\]/);
    assert.match(b.out, /message you signed \(\d+ bytes\)/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  // The same message: then it is the key, or the serial.
  const k = run(['explain-v3', ...flags(sent), '--body', sent.body, '--serial', '408B07E79B8269FEC3D5D3E6AB8ED163A6A380DB'], { input: signError(sent) });
  assert.equal(k.status, 1);
  assert.match(k.out, /\[KEY_OR_SIGNATURE_WRONG\]/);
  assert.match(k.out, /the messages agree/);
  // Usage: the request is needed, and an answer that is not SIGN_ERROR is said so.
  const none = run(['explain-v3'], { input: signError(sent) });
  assert.equal(none.status, 2);
  assert.match(none.err, /needs the request you signed: --method, --url, --timestamp, --nonce/);
  const other = run(['explain-v3', ...flags(sent)], { input: '{"code":"PARAM_ERROR","message":"x"}' });
  assert.equal(other.status, 1);
  assert.match(other.err, /\[V3_NOT_SIGN_ERROR\]/);
  assert.match(run(['--help']).out, /explain-v3 --method M --url PATH/);
});

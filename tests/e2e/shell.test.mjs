// The worker's shell, through its HTTP interface: a chunked body is refused as soon as it
// passes 64 KiB (no waiting for its end); sessions are stored under a hash of the token,
// their stored expiry is checked, and a sliding refresh racing a logout never brings the
// session back; a strict configuration refuses to serve with wrangler.toml's placeholders
// or plain-http origins; and no text from a failed fetch (which can carry the URL, and
// jscode2session's URL carries the AppSecret) reaches a caller.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import http from 'node:http';
import { startStack, freePort, waitUntil, ROOT } from './harness.mjs';

const newToken = () => randomBytes(32).toString('base64url');
const sha256 = (s) => createHash('sha256').update(s).digest('hex');
const sessionKey = () => randomBytes(16).toString('base64');

/**
 * KV entries for a session planted under the key the worker before this change read
 * (`session:{token}`) and under the record key it reads now (`session:{sha256}`), in the
 * same JSON, so the test means the same on both.
 */
function planted(token, record, kvTtl, seenUntilMs) {
  const value = JSON.stringify(record);
  const entries = [
    { key: `session:${token}`, value, expiration_ttl: kvTtl },
    { key: `session:${sha256(token)}`, value, expiration_ttl: kvTtl },
  ];
  if (seenUntilMs !== undefined) {
    entries.push({ key: `seen:${sha256(token)}`, value: String(seenUntilMs), expiration_ttl: kvTtl });
  }
  return entries;
}

/**
 * A chunked POST (no Content-Length) that writes `bytes` and then, unless `end`, keeps the
 * request open for good. Resolves with the answer, or { hung: true } after `waitMs`.
 */
function chunkedPost(url, body, { end = false, waitMs = 5000 } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      res.on('end', () => {
        clearTimeout(timer);
        req.destroy();
        resolve({ status: res.statusCode, text, ms: Date.now() - start });
      });
    });
    const start = Date.now();
    const timer = setTimeout(() => {
      req.destroy();
      resolve({ hung: true });
    }, waitMs);
    req.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    // In 1 KiB chunks, as a slow client would send them.
    for (let i = 0; i < body.length; i += 1024) req.write(body.slice(i, i + 1024));
    if (end) req.end();
  });
}

describe('a local stack, fixed sessions, jscode2session unreachable', () => {
  let stack;
  const stale = newToken();
  const valid = newToken();
  before(async () => {
    // ftp:// makes the runtime's fetch error quote the whole URL, AppSecret included.
    const closed = await freePort();
    stack = await startStack({
      vars: { WECHAT_API_BASE: `ftp://127.0.0.1:${closed}` },
      beforeWorker: (s) => {
        const now = Date.now();
        s.kvPut([
          // Ended a minute ago by its stored expiry; KV would keep it another hour.
          ...planted(stale, { openid: 'oStale', session_key: sessionKey(), login_ms: now - 7_260_000, expires_ms: now - 60_000 }, 3600),
          // The control: the same shape, good for another hour.
          ...planted(valid, { openid: 'oValid', session_key: sessionKey(), login_ms: now, expires_ms: now + 3_600_000 }, 3600),
        ]);
      },
    });
  });
  after(() => stack?.stop());

  test('a chunked body over 64 KiB is refused at once, while the sender is still sending', async () => {
    const big = `{"code":"${'a'.repeat(70 * 1024)}`;
    const r = await chunkedPost(`${stack.api}/login/`, big);
    assert.ok(!r.hung, 'no answer within 5 s: the worker waited for the end of the body');
    assert.equal(r.status, 413, r.text);
    assert.equal(JSON.parse(r.text).code, 8);
    const n = await chunkedPost(`${stack.api}/notify/`, `<xml><a>${'b'.repeat(70 * 1024)}`);
    assert.ok(!n.hung, 'the notify waited for the end of the body');
    assert.equal(n.status, 413, n.text);
    assert.match(n.text, /<return_code><!\[CDATA\[FAIL\]\]><\/return_code>/);
  });

  test('a chunked body within the bound is read whole', async () => {
    const r = await chunkedPost(`${stack.api}/logout/`, `{"token":"${'x'.repeat(2000)}"}`, { end: true });
    assert.equal(r.status, 401, r.text);
    // Not "token missing": the body was read and parsed.
    assert.match(JSON.parse(r.text).msg, /not one this server issued/);
  });

  test('a session whose stored expiry has passed is refused, though KV still holds it', async () => {
    const ok = await stack.call('GET', '/orders/NOPE', { token: valid });
    assert.equal(ok.body.code, 5, `the planted control session should work: ${JSON.stringify(ok.body)}`);
    const r = await stack.call('GET', '/orders/NOPE', { token: stale });
    assert.equal(r.status, 401, JSON.stringify(r.body));
    assert.equal(r.body.code, 2);
    assert.match(r.body.msg, /expired/);
  });

  test('a fetch error that quotes the URL reaches no caller: a fixed message, the detail logged without the query', async () => {
    const { code } = (await stack.simCall('POST', '/sim/login', { appid: stack.vars.WECHAT_APPID })).body;
    const r = await stack.call('POST', '/login/', { json: { code } });
    assert.equal(r.status, 502, JSON.stringify(r.body));
    assert.equal(r.body.code, 9);
    const secret = stack.secrets.WECHAT_APP_SECRET;
    for (const leak of [secret, 'secret=', '127.0.0.1', 'ftp:', code]) {
      assert.ok(!r.body.msg.includes(leak), `the message carries ${leak}: ${r.body.msg}`);
    }
    assert.equal(r.body.msg, 'WeChat is unreachable for jscode2session; nothing was lost, try again');
    // wrangler dev writes the worker's console a moment after the answer.
    const log = await waitUntil(() => {
      const l = stack.logs().worker;
      return l.includes('WeChat call failed') && l;
    }, 'the failure in the worker log', 5000);
    assert.ok(log.includes('jscode2session"'), 'the log names the call by its path');
    for (const leak of [secret, 'secret=', code]) assert.ok(!log.includes(leak), `${leak} is in the worker log`);
  });
});

describe('a local stack, sliding sessions, unifiedorder unreachable', () => {
  let stack;
  const ROUNDS = 40;
  const racing = Array.from({ length: ROUNDS }, newToken);
  const control = newToken();
  before(async () => {
    stack = await startStack({
      sessionTtl: 600,
      vars: { SESSION_TTL_MODE: 'sliding', WECHAT_PAY_BASE: 'http://wxedge-nowhere.invalid' },
      beforeWorker: (s) => {
        // Sessions with under half of their 600 s idle TTL left, so the next use refreshes
        // them (before this change: rewrote the whole session; now: only the seen: key).
        const now = Date.now();
        const seenUntil = now + 200_000;
        const record = () => ({ openid: 'oRacer', session_key: sessionKey(), login_ms: now - 400_000, expires_ms: seenUntil, sliding: true });
        s.kvPut([control, ...racing].flatMap((t) => {
          const [oldKey, newKey, seen] = planted(t, record(), 3600, seenUntil);
          // The record's stored end is the absolute cap in sliding mode.
          newKey.value = JSON.stringify({ ...JSON.parse(newKey.value), expires_ms: now + 86_400_000 });
          return [oldKey, newKey, seen];
        }));
      },
    });
  });
  after(() => stack?.stop());

  test('after a login, no KV key contains the token', async () => {
    const { token } = await stack.login('oKeys');
    const keys = stack.kvKeys();
    assert.ok(keys.length > 0, 'KV was listed');
    assert.deepEqual(keys.filter((k) => k.includes(token)), [], 'a KV key carries the token');
    assert.ok(keys.includes(`session:${sha256(token)}`), `the session is stored under its hash: ${keys.join(', ')}`);
  });

  test('a sliding refresh racing a logout never leaves a working token behind', { timeout: 90000 }, async () => {
    const c = await stack.call('GET', '/orders/NOPE', { token: control });
    assert.equal(c.body.code, 5, `the planted control session should work: ${JSON.stringify(c.body)}`);
    const survivors = [];
    for (const token of racing) {
      const use = () => stack.call('GET', '/orders/NOPE', { token });
      const later = (ms, f) => new Promise((r) => setTimeout(r, ms)).then(f);
      // Refreshing uses before, with and after the logout, all in flight together.
      const answers = await Promise.all([use(), use(), stack.call('POST', '/logout/', { token }), later(1, use), later(3, use), later(6, use)]);
      assert.equal(answers[2].status, 200, JSON.stringify(answers[2].body));
      const after = await stack.call('GET', '/orders/NOPE', { token });
      if (after.body.code !== 2) survivors.push(after.body.code);
    }
    assert.deepEqual(survivors, [], `${survivors.length} of ${ROUNDS} logged-out sessions came back`);
  });

  test('an unreachable unifiedorder answers a fixed message, not the runtime\'s', async () => {
    const { token } = await stack.login('oPayer');
    const r = await stack.call('POST', '/pay/', { json: { token, money: 1 } });
    assert.equal(r.status, 502, JSON.stringify(r.body));
    assert.equal(r.body.code, 9);
    assert.equal(r.body.msg, 'WeChat is unreachable for unifiedorder; nothing was lost, try again');
    assert.ok(r.body.data.out_trade_no, 'the retry handle is still given');
  });
});

/** wrangler.toml's [vars] as they ship. */
function shippedVars() {
  const toml = readFileSync(join(ROOT, 'wrangler.toml'), 'utf8');
  const vars = toml.match(/^\[vars\]\n([\s\S]*?)^\[/m)[1];
  return Object.fromEntries([...vars.matchAll(/^(\w+) = "(.*)"$/gm)].map((m) => [m[1], m[2]]));
}

/** Routes that must all refuse a misconfigured worker. */
const EVERY_ROUTE = [
  ['POST', '/login/', { json: { code: 'x' } }],
  ['POST', '/logout/', { json: { token: newToken() } }],
  ['GET', '/orders/NOPE', { token: newToken() }],
  ['GET', '/merchant/balance', { headers: { authorization: `Bearer wxk_${newToken()}` } }],
  ['GET', '/no/such/route', {}],
];

async function refusesEverywhere(stack, setting) {
  for (const [method, path, opts] of EVERY_ROUTE) {
    const r = await stack.call(method, path, opts);
    assert.equal(r.status, 500, `${method} ${path}: ${JSON.stringify(r.body)}`);
    assert.equal(r.body.code, 9, `${method} ${path}`);
    assert.match(r.body.msg, new RegExp(setting), `${method} ${path}: ${r.body.msg}`);
  }
  const n = await stack.call('POST', '/notify/', { raw: '<xml></xml>' });
  assert.equal(n.status, 500);
  assert.match(n.body, /FAIL/);
}

describe('strict configuration (the default)', () => {
  test('wrangler.toml\'s placeholders: every route and /healthz answer code 9 naming them', { timeout: 90000 }, async (t) => {
    const v = shippedVars();
    assert.equal(v.WECHAT_MCH_ID, '1900000000', 'wrangler.toml keeps its placeholders');
    const stack = await startStack({
      refusesConfig: true,
      vars: {
        CONFIG_MODE: v.CONFIG_MODE,
        WECHAT_APPID: v.WECHAT_APPID,
        WECHAT_MCH_ID: v.WECHAT_MCH_ID,
        WECHAT_API_BASE: v.WECHAT_API_BASE,
        WECHAT_PAY_BASE: v.WECHAT_PAY_BASE,
        PUBLIC_BASE_URL: v.PUBLIC_BASE_URL,
      },
    });
    t.after(() => stack.stop());
    assert.equal(v.CONFIG_MODE, 'strict', 'wrangler.toml ships strict');
    await refusesEverywhere(stack, 'WECHAT_MCH_ID');
    const h = await stack.call('GET', '/healthz');
    assert.equal(h.status, 500);
    assert.equal(h.body.code, 9);
    assert.deepEqual(h.body.data.problems.map((p) => p.setting), ['WECHAT_APPID', 'WECHAT_MCH_ID', 'PUBLIC_BASE_URL']);
    assert.match(h.body.msg, /WECHAT_MCH_ID is wrangler\.toml's placeholder 1900000000: set your merchant's mch_id/);
  });

  test('http origins and a short admin token: named, and the token\'s value is not', { timeout: 90000 }, async (t) => {
    const adminToken = 'short-admin-token';
    // The harness's own stack (wxsim over http) without the local opt-out.
    const stack = await startStack({ refusesConfig: true, vars: { CONFIG_MODE: 'strict' }, secrets: { ADMIN_TOKEN: adminToken } });
    t.after(() => stack.stop());
    await refusesEverywhere(stack, 'WECHAT_API_BASE');
    const h = await stack.call('GET', '/healthz');
    assert.equal(h.body.code, 9);
    assert.deepEqual(h.body.data.problems.map((p) => p.setting), ['ADMIN_TOKEN', 'WECHAT_API_BASE', 'WECHAT_PAY_BASE', 'PUBLIC_BASE_URL']);
    assert.match(h.body.msg, /WECHAT_API_BASE is not an https URL/);
    assert.ok(!JSON.stringify(h.body).includes(adminToken), 'the admin token is shown');
  });
});

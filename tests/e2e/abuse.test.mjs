// Abuse: per-IP and per-openid limits on login and pay (code 10, HTTP 429, Retry-After),
// logout revoking a token, sliding sessions, and no secret in any log line.
import test, { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startStack } from './harness.mjs';

let stack;
before(async () => {
  stack = await startStack({
    sessionTtl: 60,
    vars: { SESSION_TTL_MODE: 'sliding' },
    limits: { LOGIN_IP_LIMITER: 5, LOGIN_OPENID_LIMITER: 3, PAY_IP_LIMITER: 1000000, PAY_OPENID_LIMITER: 4 },
  });
});
after(() => stack?.stop());

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
/** Limits count in wall-clock minutes: start a counted sequence early in one. */
async function freshWindow() {
  const into = Date.now() % 60000;
  if (into > 35000) await sleep(60000 - into + 200);
}
async function login(openid, ip) {
  const { body } = await stack.simCall('POST', '/sim/login', { appid: stack.vars.WECHAT_APPID, openid });
  return stack.call('POST', '/login/', { json: { code: body.code }, headers: { 'cf-connecting-ip': ip } });
}
function limited(r, what) {
  assert.equal(r.status, 429, JSON.stringify(r.body));
  assert.equal(r.body.code, 10);
  assert.match(r.body.msg, what);
  assert.equal(r.headers.get('retry-after'), '60');
}

test('logins per openid are limited; other users are not', async () => {
  await freshWindow();
  for (let i = 0; i < 3; i++) assert.equal((await login('oGreedy', '198.51.100.1')).status, 200);
  limited(await login('oGreedy', '198.51.100.2'), /logins of this WeChat user/);
  assert.equal((await login('oPatient', '198.51.100.3')).status, 200);
});

test('logins per IP are limited before WeChat is asked; other addresses are not', async () => {
  await freshWindow();
  for (let i = 0; i < 5; i++) assert.equal((await login(`oNat${i}`, '203.0.113.7')).status, 200);
  const r = await login('oNat9', '203.0.113.7');
  limited(r, /logins from this IP address/);
  assert.equal((await login('oNat9', '203.0.113.8')).status, 200);
});

test('payments per openid are limited, and a refused one writes no order', async () => {
  await freshWindow();
  const r = await login('oShopper', '192.0.2.10');
  const token = r.body.data.token;
  for (let i = 0; i < 4; i++) {
    const p = await stack.call('POST', '/pay/', { json: { token, money: 100 } });
    assert.equal(p.status, 200, JSON.stringify(p.body));
  }
  const before = stack.sql('SELECT COUNT(*) AS n FROM orders')[0].n;
  limited(await stack.call('POST', '/pay/', { json: { token, money: 100 } }), /payments by this WeChat user/);
  assert.equal(stack.sql('SELECT COUNT(*) AS n FROM orders')[0].n, before);
});

test('logout revokes the token at once; again is harmless; a malformed token is code 2', async () => {
  const r = await login('oLeaving', '192.0.2.20');
  const token = r.body.data.token;
  assert.equal((await stack.call('GET', '/orders/NOPE', { token })).body.code, 5, 'the token works');
  const out = await stack.call('POST', '/logout/', { json: { token } });
  assert.equal(out.status, 200, JSON.stringify(out.body));
  assert.equal(out.body.data.logged_out, true);
  const after = await stack.call('GET', '/orders/NOPE', { token });
  assert.equal(after.status, 401);
  assert.equal(after.body.code, 2);
  assert.equal((await stack.call('POST', '/logout', { token })).status, 200, 'logging out twice is fine');
  const bad = await stack.call('POST', '/logout/', { json: { token: 'not-a-token' } });
  assert.equal(bad.status, 401);
  assert.equal(bad.body.code, 2);
  const wrong = await stack.call('GET', '/logout/', { token });
  assert.equal(wrong.status, 405);
});

test('a sliding session in use outlives its TTL; the login says which mode', { timeout: 120000 }, async () => {
  const r = await login('oSlider', '192.0.2.30');
  assert.equal(r.body.data.ttl_mode, 'sliding');
  assert.equal(r.body.data.expires_in, 60);
  const token = r.body.data.token;
  const idle = (await login('oIdle', '192.0.2.31')).body.data.token;
  await sleep(32000);
  // Less than half its life left: this use extends it to a full TTL from now.
  assert.equal((await stack.call('GET', '/orders/NOPE', { token })).body.code, 5);
  await sleep(33000);
  // 65 s after login: the used session lives on, the idle one has expired.
  assert.equal((await stack.call('GET', '/orders/NOPE', { token })).body.code, 5, 'the sliding session expired');
  const gone = await stack.call('GET', '/orders/NOPE', { token: idle });
  assert.equal(gone.body.code, 2, 'the idle session should have expired');
});

test('no secret from the env file, no token and no API key in any log line', async () => {
  const r = await stack.call('POST', '/admin/merchants', { json: { name: 'logcheck' }, headers: { authorization: `Bearer ${stack.secrets.ADMIN_TOKEN}` } });
  const apiKey = r.body.data.api_key;
  await stack.call('GET', '/merchant/balance', { headers: { authorization: `Bearer ${apiKey}` } });
  const u = await login('oLogs', '192.0.2.40');
  const token = u.body.data.token;
  await stack.call('GET', `/orders/NOPE?token=${token}`);
  const { wxsim, worker } = stack.logs();
  assert.ok(worker.includes('/merchant/balance'), 'the worker log was read');
  for (const [name, value] of [...Object.entries(stack.secrets), ['api_key', apiKey], ['session token', token]]) {
    for (const [who, log] of [['wxsim', wxsim], ['worker', worker]]) {
      assert.ok(!log.includes(value), `${name} appears in the ${who} log`);
    }
  }
});

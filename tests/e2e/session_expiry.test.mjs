// An expired token is refused (code 2, log in again), and a fresh login works. KV's
// shortest expiry is 60 s, so this file waits a minute; it runs beside the others.
import test from 'node:test';
import assert from 'node:assert/strict';
import { startStack } from './harness.mjs';

test('a session expires after SESSION_TTL_SECS', async (t) => {
  const stack = await startStack({ sessionTtl: 60 });
  t.after(() => stack.stop());
  const { token } = await stack.login('oExpiring');
  const login = await stack.call('POST', '/pay/', { json: { token, money: 1 } });
  assert.equal(login.status, 200, JSON.stringify(login.body));
  const orders = stack.sql('SELECT COUNT(*) AS n FROM orders')[0].n;
  await new Promise((r) => setTimeout(r, 62_000));
  const r = await stack.call('POST', '/pay/', { json: { token, money: 1 } });
  assert.equal(r.status, 401, JSON.stringify(r.body));
  assert.equal(r.body.code, 2);
  assert.match(r.body.msg, /expired/);
  assert.equal(stack.sql('SELECT COUNT(*) AS n FROM orders')[0].n, orders);
  const again = await stack.login('oExpiring');
  assert.equal((await stack.call('POST', '/pay/', { json: { token: again.token, money: 1 } })).status, 200);
});

// The merchant ledger over real HTTP: admin and merchant credentials, balances,
// withdrawals (exact, idempotent, never of nothing), paging, isolation between merchants,
// and the seed tutorial's withdrawal bug reproduced against a naive implementation.
import test, { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { DatabaseSync } from 'node:sqlite';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, startStack, waitUntil } from './harness.mjs';
import { assertLedger } from './ledger_check.mjs';

let stack;
let user;
const merchants = {};

before(async () => {
  stack = await startStack();
  user = await stack.login('oLedgerUser');
});
after(() => stack?.stop());

const admin = () => ({ authorization: `Bearer ${stack.secrets.ADMIN_TOKEN}` });
const as = (m) => ({ authorization: `Bearer ${merchants[m].api_key}` });
const status = (no) => stack.sql('SELECT status FROM orders WHERE out_trade_no = ?', no)[0]?.status;
const counts = () => stack.sql(
  'SELECT (SELECT COUNT(*) FROM withdrawals) AS w, (SELECT COUNT(*) FROM orders WHERE status = \'WITHDRAWN\') AS o',
)[0];

async function newMerchant(name) {
  const r = await stack.call('POST', '/admin/merchants', { json: { name }, headers: admin() });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  merchants[name] = r.body.data;
  return r.body.data;
}

/** A paid order of `fen` for merchant `m`: pay/, the app pays, the notify lands. */
async function paidOrder(m, fen) {
  const r = await stack.call('POST', '/pay/', {
    json: { token: user.token, money: fen, merchant_id: merchants[m]?.merchant_id ?? m },
  });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  const paid = await stack.simCall('POST', '/sim/pay', { appId: stack.vars.WECHAT_APPID, ...r.body.data });
  assert.equal(paid.status, 200, JSON.stringify(paid.body));
  const no = r.body.data.out_trade_no;
  await waitUntil(() => status(no) === 'PAID', `order ${no} PAID`);
  return no;
}

test('admin routes take only the admin token (constant-time), code 7 otherwise', async () => {
  const cases = [
    [{}, /ADMIN_TOKEN/],
    [{ authorization: 'Bearer wrong' }, /wrong admin token/],
    [{ authorization: `Bearer ${stack.secrets.ADMIN_TOKEN}x` }, /wrong admin token/],
  ];
  for (const [headers, msg] of cases) {
    const r = await stack.call('POST', '/admin/merchants', { json: { name: 'x' }, headers });
    assert.equal(r.status, 403, JSON.stringify(r.body));
    assert.equal(r.body.code, 7);
    assert.match(r.body.msg, msg);
  }
  assert.equal(stack.sql('SELECT COUNT(*) AS n FROM merchants')[0].n, 1, 'only the default merchant');
  for (const name of [undefined, '', 'x'.repeat(65)]) {
    const r = await stack.call('POST', '/admin/merchants', { json: { name }, headers: admin() });
    assert.equal(r.status, 400, JSON.stringify(r.body));
    assert.equal(r.body.code, 1);
    assert.match(r.body.msg, /name/);
  }
});

test('a merchant gets an API key once; only its SHA-256 is stored', async () => {
  const m = await newMerchant('alpha');
  assert.match(m.merchant_id, /^m_[0-9A-Za-z]{16}$/);
  assert.match(m.api_key, /^wxk_[0-9A-Za-z_-]{43}$/);
  const row = stack.sql('SELECT * FROM merchants WHERE merchant_id = ?', m.merchant_id)[0];
  const { createHash } = await import('node:crypto');
  assert.equal(row.api_key_hash, createHash('sha256').update(m.api_key).digest('hex'));
  assert.ok(!JSON.stringify(row).includes(m.api_key), 'the key itself is not stored');
  await newMerchant('beta');
  await newMerchant('gamma');
});

test('merchant routes take only a merchant key; admin and session tokens are refused', async () => {
  for (const headers of [{}, admin(), { authorization: `Bearer ${user.token}` }, { authorization: 'Bearer wxk_' + 'A'.repeat(43) }]) {
    for (const [method, path] of [['GET', '/merchant/balance'], ['POST', '/merchant/withdrawals'], ['GET', '/merchant/withdrawals']]) {
      const r = await stack.call(method, path, { headers });
      assert.equal(r.status, 403, `${method} ${path} ${JSON.stringify(headers)}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.code, 7);
    }
  }
  // A merchant key does not open admin routes.
  const r = await stack.call('GET', '/admin/orders', { headers: as('alpha') });
  assert.equal(r.status, 403);
  assert.equal(r.body.code, 7);
});

test('nothing to withdraw: code 6 / 409 and nothing written', async () => {
  const r = await stack.call('POST', '/merchant/withdrawals', { headers: as('alpha') });
  assert.equal(r.status, 409, JSON.stringify(r.body));
  assert.equal(r.body.code, 6);
  assert.match(r.body.msg, /nothing to withdraw/);
  assert.deepEqual({ ...counts() }, { w: 0, o: 0 });
});

test('a withdrawal claims exactly the paid orders it sums; balances add up', async () => {
  const a1 = await paidOrder('alpha', 1234);
  const a2 = await paidOrder('alpha', 1);
  const b1 = await paidOrder('beta', 999);
  // An open (unpaid) order is not withdrawable.
  const open = await stack.call('POST', '/pay/', { json: { token: user.token, money: 50, merchant_id: merchants.alpha.merchant_id } });
  assert.equal(open.status, 200);
  let bal = await stack.call('GET', '/merchant/balance', { headers: as('alpha') });
  assert.equal(bal.status, 200, JSON.stringify(bal.body));
  assert.equal(bal.body.data.available_fen, 1235);
  assert.equal(bal.body.data.withdrawn_fen, 0);
  assert.equal(bal.body.data.counts.open_orders, 1);

  const w = await stack.call('POST', '/merchant/withdrawals', { headers: as('alpha') });
  assert.equal(w.status, 200, JSON.stringify(w.body));
  assert.equal(w.body.data.amount_fen, 1235);
  assert.deepEqual([...w.body.data.order_ids].sort(), [a1, a2].sort());
  assert.equal(w.body.data.idempotent_replay, false);
  assert.equal(status(a1), 'WITHDRAWN');
  assert.equal(status(b1), 'PAID', "another merchant's order is untouched");
  bal = await stack.call('GET', '/merchant/balance', { headers: as('alpha') });
  assert.equal(bal.body.data.available_fen, 0);
  assert.equal(bal.body.data.withdrawn_fen, 1235);
  assert.equal(bal.body.data.paid_fen, 1235);
  // Again: nothing left.
  const again = await stack.call('POST', '/merchant/withdrawals', { headers: as('alpha') });
  assert.equal(again.body.code, 6);

  // The withdrawal, to its merchant only.
  const id = w.body.data.withdrawal_id;
  const mine = await stack.call('GET', `/merchant/withdrawals/${id}`, { headers: as('alpha') });
  assert.equal(mine.status, 200);
  assert.equal(mine.body.data.orders.length, 2);
  assert.equal(mine.body.data.orders.reduce((s, o) => s + o.total_fee, 0), 1235);
  const theirs = await stack.call('GET', `/merchant/withdrawals/${id}`, { headers: as('beta') });
  assert.equal(theirs.status, 403);
  assert.equal(theirs.body.code, 7);
  const none = await stack.call('GET', '/merchant/withdrawals/wd_nope', { headers: as('beta') });
  assert.equal(none.status, 404);
  assert.equal(none.body.code, 5);
});

test('the same Idempotency-Key gives the first withdrawal back, even when fired concurrently', async () => {
  await paidOrder('gamma', 300);
  await paidOrder('gamma', 400);
  const key = `k-${Date.now()}`;
  const fire = () => stack.call('POST', '/merchant/withdrawals', { headers: { ...as('gamma'), 'idempotency-key': key } });
  const answers = await Promise.all([fire(), fire(), fire(), fire()]);
  for (const a of answers) assert.equal(a.status, 200, JSON.stringify(a.body));
  const ids = new Set(answers.map((a) => a.body.data.withdrawal_id));
  assert.equal(ids.size, 1, 'one withdrawal for one key');
  assert.equal(answers.filter((a) => !a.body.data.idempotent_replay).length, 1);
  for (const a of answers) assert.equal(a.body.data.amount_fen, 700);
  // A later payment and the same key: still the first withdrawal, nothing new claimed.
  const later = await paidOrder('gamma', 5);
  const replay = await fire();
  assert.equal(replay.body.data.withdrawal_id, [...ids][0]);
  assert.equal(replay.body.data.amount_fen, 700);
  assert.equal(status(later), 'PAID');
  assert.equal(stack.sql('SELECT COUNT(*) AS n FROM withdrawals WHERE merchant_id = ?', merchants.gamma.merchant_id)[0].n, 1);
  // A bad key is refused before anything happens.
  for (const bad of ['', 'a b', 'x'.repeat(129), 'ключ']) {
    const r = await stack.call('POST', '/merchant/withdrawals', { headers: { ...as('gamma'), 'idempotency-key': bad } }).catch((e) => ({ err: e }));
    if (r.err) continue; // fetch itself refuses non-ASCII header values
    if (bad === '') continue; // an empty header is the same as none to fetch
    assert.equal(r.status, 400, `${JSON.stringify(bad)}: ${JSON.stringify(r.body)}`);
    assert.equal(r.body.code, 1);
  }
  assert.equal(status(later), 'PAID');
});

test('withdrawals page newest first; admin lists orders by status', async () => {
  for (let i = 0; i < 3; i++) {
    await paidOrder('beta', 10 + i);
    const w = await stack.call('POST', '/merchant/withdrawals', { headers: as('beta') });
    assert.equal(w.status, 200, JSON.stringify(w.body));
  }
  const seen = [];
  let cursor;
  do {
    const r = await stack.call('GET', `/merchant/withdrawals?limit=2${cursor ? `&cursor=${cursor}` : ''}`, { headers: as('beta') });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.ok(r.body.data.items.length <= 2);
    seen.push(...r.body.data.items);
    cursor = r.body.data.next_cursor;
  } while (cursor);
  assert.equal(seen.length, 3);
  assert.equal(new Set(seen.map((w) => w.withdrawal_id)).size, 3);
  assert.ok(seen[0].created_ms >= seen[2].created_ms, 'newest first');
  // The first beta withdrawal took the 999 order with the 10 one.
  assert.deepEqual(seen.map((w) => w.amount_fen).sort((a, b) => a - b), [11, 12, 1009]);
  for (const bad of ['limit=0', 'limit=101', 'limit=x', 'cursor=abc']) {
    const r = await stack.call('GET', `/merchant/withdrawals?${bad}`, { headers: as('beta') });
    assert.equal(r.status, 400, bad);
    assert.equal(r.body.code, 1);
  }
  const paid = await stack.call('GET', '/admin/orders?status=PREPAID', { headers: admin() });
  assert.equal(paid.status, 200, JSON.stringify(paid.body));
  assert.ok(paid.body.data.items.length >= 1);
  assert.ok(paid.body.data.items.every((o) => o.status === 'PREPAID'));
  const bad = await stack.call('GET', '/admin/orders?status=paid', { headers: admin() });
  assert.equal(bad.status, 400);
  assert.match(bad.body.msg, /PAID/);
  const all = [];
  cursor = undefined;
  do {
    const r = await stack.call('GET', `/admin/orders?limit=3${cursor ? `&cursor=${cursor}` : ''}`, { headers: admin() });
    all.push(...r.body.data.items);
    cursor = r.body.data.next_cursor;
  } while (cursor);
  assert.equal(all.length, stack.sql('SELECT COUNT(*) AS n FROM orders')[0].n);
});

test('a rotated key replaces the old one; the default merchant can be given one', async () => {
  const old = merchants.alpha.api_key;
  const r = await stack.call('POST', `/admin/merchants/${merchants.alpha.merchant_id}/api_key`, { headers: admin() });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  merchants.alpha.api_key = r.body.data.api_key;
  const stale = await stack.call('GET', '/merchant/balance', { headers: { authorization: `Bearer ${old}` } });
  assert.equal(stale.status, 403);
  assert.equal((await stack.call('GET', '/merchant/balance', { headers: as('alpha') })).status, 200);
  const d = await stack.call('POST', '/admin/merchants/default/api_key', { headers: admin() });
  assert.equal(d.status, 200);
  const none = await stack.call('POST', '/admin/merchants/m_nope/api_key', { headers: admin() });
  assert.equal(none.status, 404);
  assert.equal(none.body.code, 5);
});

test('the admin ledger audit holds, and agrees with an independent SQL check', async () => {
  const r = await stack.call('GET', '/admin/ledger', { headers: admin() });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.data.ok, true, JSON.stringify(r.body.data.violations));
  assertLedger(stack.sql.bind(stack));
});

// The seed tutorial's 提现: read the sum of paid orders, then mark ALL paid orders withdrawn.
// Run against the same schema in a scratch SQLite, with a payment landing between the two
// steps, it loses money; the worker's withdrawal, under the same interleaving, does not.
test('regression: the seed read-then-update-all withdrawal loses a payment; ours does not', async () => {
  const db = new DatabaseSync(':memory:');
  for (const f of readdirSync(join(ROOT, 'migrations')).filter((f) => f.endsWith('.sql')).sort()) {
    db.exec(readFileSync(join(ROOT, 'migrations', f), 'utf8'));
  }
  db.exec("INSERT INTO users VALUES ('u', NULL, NULL, 0, 0, 0)");
  const insert = db.prepare(`INSERT INTO orders (out_trade_no, openid, merchant_id, total_fee, body, spbill_create_ip, status, paid_ms, created_ms, updated_ms)
    VALUES (?, 'u', 'default', ?, 'b', '127.0.0.1', ?, ?, 0, 0)`);
  insert.run('A', 10_000_000, 'PAID', 1);
  insert.run('B', 200_000, 'PREPAID', null);
  // Naive step 1: the sum.
  const sum = db.prepare("SELECT SUM(total_fee) AS s FROM orders WHERE merchant_id = 'default' AND status = 'PAID'").get().s;
  // Meanwhile B's notify lands.
  db.exec("UPDATE orders SET status = 'PAID', paid_ms = 2 WHERE out_trade_no = 'B'");
  // Naive step 2: record the withdrawal of the sum, mark every paid order.
  db.exec(`INSERT INTO withdrawals (withdrawal_id, merchant_id, amount_fen, order_count, created_ms) VALUES ('w1', 'default', ${sum}, 0, 0)`);
  db.exec("UPDATE orders SET status = 'WITHDRAWN', withdrawal_id = 'w1' WHERE merchant_id = 'default' AND status = 'PAID'");
  const lost = db.prepare("SELECT SUM(total_fee) AS s FROM orders WHERE withdrawal_id = 'w1'").get().s - sum;
  assert.equal(lost, 200_000, 'the naive withdrawal marks B withdrawn but never pays it out');
  assert.throws(() => assertLedger((q, ...p) => db.prepare(q).all(...p)), /drift|amount = its orders/);
  db.close();

  // Ours, same interleaving as it can happen: a withdrawal fired while payments land.
  const m = await newMerchant('seedcase');
  const first = await paidOrder('seedcase', 10_000_000);
  const pending = await stack.call('POST', '/pay/', { json: { token: user.token, money: 200_000, merchant_id: m.merchant_id } });
  const [w] = await Promise.all([
    stack.call('POST', '/merchant/withdrawals', { headers: as('seedcase') }),
    stack.simCall('POST', '/sim/pay', { appId: stack.vars.WECHAT_APPID, ...pending.body.data }),
  ]);
  assert.equal(w.status, 200, JSON.stringify(w.body));
  assert.ok(w.body.data.order_ids.includes(first));
  const second = pending.body.data.out_trade_no;
  await waitUntil(() => ['PAID', 'WITHDRAWN'].includes(status(second)), 'B paid');
  if (status(second) === 'PAID') {
    // B landed after the claim: it waits for the next withdrawal, fully counted.
    const w2 = await stack.call('POST', '/merchant/withdrawals', { headers: as('seedcase') });
    assert.equal(w2.body.data.amount_fen, 200_000);
  }
  const total = stack.sql('SELECT SUM(amount_fen) AS s FROM withdrawals WHERE merchant_id = ?', m.merchant_id)[0].s;
  assert.equal(total, 10_200_000, 'every paid fen withdrawn exactly once');
  assertLedger(stack.sql.bind(stack));
});

test('wrong methods, oversize bodies and unknown paths on the ledger routes get clear errors', async () => {
  for (const [method, path] of [['PUT', '/merchant/withdrawals'], ['POST', '/merchant/balance'], ['GET', '/admin/merchants'], ['GET', '/admin/reconcile'], ['DELETE', '/merchant/withdrawals/wd_x']]) {
    const r = await stack.call(method, path, { headers: admin() });
    assert.equal(r.status, 405, `${method} ${path}: ${JSON.stringify(r.body)}`);
    assert.equal(r.body.code, 5);
  }
  const big = await stack.call('POST', '/admin/merchants', { raw: JSON.stringify({ name: 'x'.repeat(70 * 1024) }), headers: { ...admin(), 'content-type': 'application/json' } });
  assert.equal(big.status, 413);
  assert.equal(big.body.code, 8);
  const bad = await stack.call('POST', '/admin/merchants', { raw: '{"name":', headers: { ...admin(), 'content-type': 'application/json' } });
  assert.equal(bad.status, 400);
  assert.equal(bad.body.code, 1);
  const nope = await stack.call('GET', '/merchant/nothing', { headers: as('beta') });
  assert.equal(nope.status, 404);
  assert.equal(nope.body.code, 5);
});

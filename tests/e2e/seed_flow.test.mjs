// The whole seed flow, run by the seed tutorial's own client code: wx.login → login/ →
// getinfo/ → pay/ → wx.requestPayment (wxsim) → notify → PAID.
import test, { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, waitUntil } from './harness.mjs';
import { loadSeedClient } from './wx.mjs';

for (const signType of ['MD5', 'HMAC-SHA256']) {
  test(`the seed client, unchanged, pays end to end (${signType})`, async (t) => {
    const stack = await startStack({ signType });
    t.after(() => stack.stop());

    const client = loadSeedClient(stack, `oSeed${signType.replace(/\W/g, '')}`);
    await client.settle();
    const token = client.storage.get('token');
    assert.match(token, /^[A-Za-z0-9_-]{43}$/, 'login/ gave the token the seed stores');

    client.page.user1({});
    await client.settle();
    const info = client.calls.find((c) => c.url.endsWith('getinfo/'));
    assert.equal(info.status, 200, JSON.stringify(info.body));
    assert.equal(info.body.code, 0);
    assert.equal(info.body.data.user.nickName, '微信用户🐼', 'a 4-byte emoji survives');
    assert.equal(info.body.data.user.watermark, undefined, 'the watermark is not returned');
    const [row] = stack.sql('SELECT profile FROM users WHERE openid = ?', `oSeed${signType.replace(/\W/g, '')}`);
    assert.equal(JSON.parse(row.profile).nickName, '微信用户🐼', 'and is stored in D1 intact');

    client.page.pay();
    await client.settle();
    const pay = client.calls.find((c) => c.url.endsWith('pay/'));
    assert.equal(pay.status, 200, JSON.stringify(pay.body));
    const { out_trade_no: no, signType: st, package: pkg } = pay.body.data;
    assert.equal(st, signType);
    assert.match(pkg, /^prepay_id=wx/);
    assert.deepEqual(client.payments.map((p) => p.errMsg), ['requestPayment:ok']);

    // WeChat's notify reaches the worker, which credits the order once.
    const order = await waitUntil(async () => {
      const r = await stack.call('GET', `/orders/${no}`, { token });
      return r.body.data?.status === 'PAID' && r.body.data;
    }, 'the order to be PAID');
    assert.equal(order.total_fee, 1);
    assert.equal(order.merchant_id, 'default');
    const notes = stack.sql('SELECT verdict FROM notifications WHERE out_trade_no = ?', no);
    assert.deepEqual(notes.map((n) => n.verdict), ['CREDITED']);
    const log = await stack.simCall('GET', `/sim/notifications?out_trade_no=${no}`);
    assert.equal(log.body.notifications.at(-1).success, true, 'the worker answered SUCCESS');
  });
}

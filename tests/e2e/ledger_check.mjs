// The ledger invariant checked from D1's rows by code independent of the worker's: per
// merchant, Σ PAID+WITHDRAWN fen = available + Σ withdrawals; each withdrawal's amount is
// the sum of its orders; no order in an unknown or another merchant's withdrawal.
import assert from 'node:assert/strict';

/** The invariant, computed here from the rows without the worker's code. */
export function assertLedger(sql) {
  const rows = sql('SELECT merchant_id, status, total_fee, withdrawal_id FROM orders');
  const ws = sql('SELECT withdrawal_id, merchant_id, amount_fen FROM withdrawals');
  const byW = new Map(ws.map((w) => [w.withdrawal_id, { ...w, sum: 0 }]));
  const per = new Map();
  const m = (id) => per.get(id) ?? per.set(id, { paid: 0, available: 0, withdrawn: 0 }).get(id);
  for (const o of rows) {
    if (o.status === 'PAID' || o.status === 'WITHDRAWN') m(o.merchant_id).paid += o.total_fee;
    if (o.status === 'PAID') {
      assert.equal(o.withdrawal_id, null);
      m(o.merchant_id).available += o.total_fee;
    }
    if (o.status === 'WITHDRAWN') {
      const w = byW.get(o.withdrawal_id);
      assert.ok(w, `order in unknown withdrawal ${o.withdrawal_id}`);
      assert.equal(w.merchant_id, o.merchant_id);
      w.sum += o.total_fee;
    }
  }
  for (const w of byW.values()) {
    assert.equal(w.amount_fen, w.sum, `withdrawal ${w.withdrawal_id} amount = its orders`);
    assert.ok(w.sum > 0);
    m(w.merchant_id).withdrawn += w.amount_fen;
  }
  for (const [id, t] of per) assert.equal(t.paid, t.available + t.withdrawn, `merchant ${id}: drift ${t.paid - t.available - t.withdrawn} fen`);
  return per;
}


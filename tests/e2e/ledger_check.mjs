// The ledger invariant checked from D1's rows by code independent of the worker's: per
// merchant, Σ PAID+WITHDRAWN fen + Σ ledger entries (refunds negative, refunds returned
// positive, fees negative) = available (unclaimed orders and entries) + Σ withdrawals; each
// withdrawal's amount is the sum of its orders and entries, and positive; no order or entry
// in an unknown or another merchant's withdrawal; each order's refunded_fen is the sum of
// its refunds that hold money, never above its fee.
import assert from 'node:assert/strict';

const HOLDING = new Set(['REQUESTED', 'PROCESSING', 'SUCCESS', 'ABNORMAL']);

/** The invariant, computed here from the rows without the worker's code. */
export function assertLedger(sql) {
  const rows = sql('SELECT out_trade_no, merchant_id, status, total_fee, withdrawal_id, refunded_fen FROM orders');
  const ws = sql('SELECT withdrawal_id, merchant_id, amount_fen FROM withdrawals');
  const entries = sql('SELECT merchant_id, kind, amount_fen, withdrawal_id FROM ledger_entries');
  const refunds = sql('SELECT out_trade_no, merchant_id, amount_fen, status FROM refunds');
  const byW = new Map(ws.map((w) => [w.withdrawal_id, { ...w, sum: 0 }]));
  const per = new Map();
  const m = (id) => per.get(id) ?? per.set(id, { paid: 0, entries: 0, available: 0, withdrawn: 0, held: 0, refundEntries: 0 }).get(id);
  const refundedBy = new Map();
  for (const r of refunds) {
    if (HOLDING.has(r.status)) {
      refundedBy.set(r.out_trade_no, (refundedBy.get(r.out_trade_no) ?? 0) + r.amount_fen);
      m(r.merchant_id).held += r.amount_fen;
    }
  }
  for (const o of rows) {
    if (o.status === 'PAID' || o.status === 'WITHDRAWN') m(o.merchant_id).paid += o.total_fee;
    assert.equal(o.refunded_fen, refundedBy.get(o.out_trade_no) ?? 0, `order ${o.out_trade_no}: refunded_fen = its refunds holding money`);
    assert.ok(o.refunded_fen <= o.total_fee, `order ${o.out_trade_no} refunded above its fee`);
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
  for (const e of entries) {
    const t = m(e.merchant_id);
    t.entries += e.amount_fen;
    if (e.kind === 'REFUND' || e.kind === 'REFUND_RETURNED') t.refundEntries += e.amount_fen;
    if (e.withdrawal_id === null) {
      t.available += e.amount_fen;
    } else {
      const w = byW.get(e.withdrawal_id);
      assert.ok(w, `entry in unknown withdrawal ${e.withdrawal_id}`);
      assert.equal(w.merchant_id, e.merchant_id);
      w.sum += e.amount_fen;
    }
  }
  for (const w of byW.values()) {
    assert.equal(w.amount_fen, w.sum, `withdrawal ${w.withdrawal_id} amount = its orders + its entries`);
    assert.ok(w.sum > 0);
    m(w.merchant_id).withdrawn += w.amount_fen;
  }
  for (const [id, t] of per) {
    assert.equal(t.paid + t.entries, t.available + t.withdrawn, `merchant ${id}: drift ${t.paid + t.entries - t.available - t.withdrawn} fen`);
    assert.equal(t.refundEntries + t.held, 0, `merchant ${id}: refund entries = −refunds holding money`);
  }
  return per;
}

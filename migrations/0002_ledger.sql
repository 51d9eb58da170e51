-- wxedge D1 schema, version 2: withdrawals (the merchant ledger) and the reconciler's marks.
--
-- A withdrawal is written by ONE batch that claims orders (PAID, withdrawal_id NULL →
-- WITHDRAWN, this withdrawal) and then sets its amount to the sum of exactly the rows it
-- claimed; a withdrawal that claimed nothing is deleted in the same batch. See
-- worker/src/ledger.rs and crates/core/src/ledger.rs.

CREATE TABLE withdrawals (
  -- The order of creation, for paging (newest first).
  seq              INTEGER PRIMARY KEY,
  withdrawal_id    TEXT NOT NULL UNIQUE,
  merchant_id      TEXT NOT NULL REFERENCES merchants(merchant_id),
  amount_fen       INTEGER NOT NULL CHECK (amount_fen >= 0),
  order_count      INTEGER NOT NULL CHECK (order_count >= 0),
  -- The merchant's Idempotency-Key header: the same key gives back this withdrawal.
  idempotency_key  TEXT,
  created_ms       INTEGER NOT NULL,
  UNIQUE (merchant_id, idempotency_key)
);
CREATE INDEX withdrawals_by_merchant ON withdrawals (merchant_id, seq);
CREATE INDEX orders_by_withdrawal ON orders (withdrawal_id);

-- How an order became PAID: 'notify' or 'reconciler' (orderquery), for operators.
ALTER TABLE orders ADD COLUMN paid_via TEXT;
-- When the reconciler last asked WeChat about an open order, and what it concluded.
ALTER TABLE orders ADD COLUMN reconciled_ms INTEGER;
ALTER TABLE orders ADD COLUMN reconcile_note TEXT;

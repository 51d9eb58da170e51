-- wxedge D1 schema, version 4: refunds, and a ledger that stays exact through them (issue 14).
--
-- A refund reserves its amount on the order (`orders.refunded_fen`, never above
-- total_fee; the write is guarded by the order's status and version) and takes it from the
-- merchant's money with a ledger entry (REFUND, negative). A refund that ends without
-- money leaving (WeChat refused it, or CLOSED it) gives it back with a second entry
-- (REFUND_RETURNED, positive). A withdrawal claims, in one batch, the merchant's paid
-- orders *and* entries that no withdrawal has claimed; its amount is their sum, and a
-- withdrawal whose sum is not positive (the merchant owes refunds: a debt) claims nothing
-- and is deleted in the same batch. Per merchant, at every instant:
--   Σ paid orders + Σ entries (refunds negative, returns positive) = available + Σ withdrawals
-- where available (unclaimed orders + unclaimed entries) may be negative: the debt the
-- next credits repay first. See crates/core/src/ledger.rs.

ALTER TABLE orders ADD COLUMN refunded_fen INTEGER NOT NULL DEFAULT 0 CHECK (refunded_fen >= 0);

CREATE TABLE refunds (
  id               INTEGER PRIMARY KEY,
  out_refund_no    TEXT NOT NULL UNIQUE,
  out_trade_no     TEXT NOT NULL REFERENCES orders(out_trade_no),
  merchant_id      TEXT NOT NULL REFERENCES merchants(merchant_id),
  amount_fen       INTEGER NOT NULL CHECK (amount_fen > 0),
  reason           TEXT,
  -- REQUESTED (recorded, WeChat has not answered), PROCESSING, SUCCESS, CLOSED, ABNORMAL,
  -- FAILED (WeChat refused the request: no refund ever existed).
  status           TEXT NOT NULL,
  -- API (through wxedge) or BY_HAND (made in the merchant platform; learned from a notify).
  source           TEXT NOT NULL,
  refund_id        TEXT,
  version          INTEGER NOT NULL DEFAULT 0,
  -- The merchant's Idempotency-Key and the SHA-256 of its request (a reused key with
  -- another body is refused).
  idempotency_key  TEXT,
  request_sha256   TEXT,
  failure          TEXT,
  created_ms       INTEGER NOT NULL,
  updated_ms       INTEGER NOT NULL,
  success_ms       INTEGER,
  -- The reconciler's refund query queue (NULL once final).
  next_check_ms    INTEGER,
  checks           INTEGER NOT NULL DEFAULT 0,
  UNIQUE (merchant_id, idempotency_key)
);
CREATE INDEX refunds_by_order ON refunds (out_trade_no);
CREATE INDEX refunds_by_merchant ON refunds (merchant_id, id);
CREATE INDEX refunds_due ON refunds (next_check_ms) WHERE next_check_ms IS NOT NULL;

CREATE TABLE ledger_entries (
  id             INTEGER PRIMARY KEY,
  merchant_id    TEXT NOT NULL REFERENCES merchants(merchant_id),
  -- REFUND (−amount), REFUND_RETURNED (+amount).
  kind           TEXT NOT NULL,
  amount_fen     INTEGER NOT NULL CHECK (amount_fen <> 0),
  out_refund_no  TEXT,
  out_trade_no   TEXT,
  withdrawal_id  TEXT,
  created_ms     INTEGER NOT NULL,
  -- One entry of each kind per refund: a duplicate decision cannot take money twice.
  UNIQUE (out_refund_no, kind)
);
CREATE INDEX ledger_entries_unclaimed ON ledger_entries (merchant_id) WHERE withdrawal_id IS NULL;
CREATE INDEX ledger_entries_by_withdrawal ON ledger_entries (withdrawal_id);

-- What a withdrawal's claimed entries summed to (signed; its amount_fen is orders + this).
ALTER TABLE withdrawals ADD COLUMN entries_fen INTEGER NOT NULL DEFAULT 0;
ALTER TABLE withdrawals ADD COLUMN entry_count INTEGER NOT NULL DEFAULT 0;

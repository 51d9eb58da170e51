-- wxedge D1 schema, version 5: the daily trade bill reconciled (issue 14).
--
-- The cron applies for the previous day's bill, streams it through wxedge_core::bill into
-- bill_rows (its SHA-1 checked against WeChat's hash_value), then one batch
-- (wxedge_core::store::bill_match) stores every difference between the bill and our orders
-- and refunds in reconciliation, listed by GET /admin/reconciliation?date=YYYY-MM-DD.
-- bill_rows of a day are kept until the next day's bill is matched: an order we learned of
-- just after midnight was paid (and billed) the day before.

CREATE TABLE bills (
  bill_date     TEXT PRIMARY KEY,
  -- LOADING, MATCHED, NO_BILL (no trade that day), FAILED (see note)
  status        TEXT NOT NULL,
  sha1          TEXT,
  row_count     INTEGER,
  paid_fen      INTEGER,
  refunded_fen  INTEGER,
  differences   INTEGER,
  note          TEXT,
  updated_ms    INTEGER NOT NULL
);

CREATE TABLE bill_rows (
  id             INTEGER PRIMARY KEY,
  bill_date      TEXT NOT NULL,
  -- PAYMENT or REFUND
  kind           TEXT NOT NULL,
  out_trade_no   TEXT NOT NULL,
  out_refund_no  TEXT,
  amount_fen     INTEGER NOT NULL,
  status         TEXT
);
CREATE INDEX bill_rows_by_trade ON bill_rows (out_trade_no);
CREATE INDEX bill_rows_by_refund ON bill_rows (out_refund_no) WHERE out_refund_no IS NOT NULL;
CREATE INDEX bill_rows_by_date ON bill_rows (bill_date);

CREATE TABLE reconciliation (
  id           INTEGER PRIMARY KEY,
  bill_date    TEXT NOT NULL,
  -- PAYMENT or REFUND
  kind         TEXT NOT NULL,
  -- out_trade_no (payments) or out_refund_no (refunds)
  reference    TEXT NOT NULL,
  -- MISSING_HERE (in the bill, not here), MISSING_IN_BILL, AMOUNT_DIFFERS, STATUS_DIFFERS
  difference   TEXT NOT NULL,
  ours_fen     INTEGER,
  bill_fen     INTEGER,
  ours_status  TEXT,
  bill_status  TEXT
);
CREATE INDEX reconciliation_by_date ON reconciliation (bill_date, id);

-- wxedge D1 schema, version 1: users, merchants, orders, notifications.
-- Applied with `wrangler d1 migrations apply DB --local` (scripts/dev and scripts/test do it).
-- Money is INTEGER fen everywhere; times are INTEGER Unix milliseconds.

CREATE TABLE users (
  openid      TEXT PRIMARY KEY,
  unionid     TEXT,
  -- The last decrypted profile (JSON, watermark removed), as /getinfo/ returned it.
  profile     TEXT,
  created_ms  INTEGER NOT NULL,
  login_ms    INTEGER NOT NULL,
  updated_ms  INTEGER NOT NULL
);

-- Whose sale an order is. Issue 6 gives merchants API keys; orders of the seed client,
-- which names no merchant, go to 'default'.
CREATE TABLE merchants (
  merchant_id   TEXT PRIMARY KEY,
  name          TEXT NOT NULL,
  -- SHA-256 (hex) of the merchant's API key; the key itself is never stored.
  api_key_hash  TEXT UNIQUE,
  created_ms    INTEGER NOT NULL
);
INSERT INTO merchants (merchant_id, name, api_key_hash, created_ms)
VALUES ('default', 'default merchant', NULL, 0);

CREATE TABLE orders (
  id               INTEGER PRIMARY KEY,
  out_trade_no     TEXT NOT NULL UNIQUE,
  openid           TEXT NOT NULL REFERENCES users(openid),
  merchant_id      TEXT NOT NULL REFERENCES merchants(merchant_id),
  total_fee        INTEGER NOT NULL CHECK (total_fee > 0),
  body             TEXT NOT NULL,
  -- Kept so a retried unifiedorder repeats the first exactly (WeChat's re-entry rule).
  spbill_create_ip TEXT NOT NULL,
  status           TEXT NOT NULL CHECK (status IN ('CREATED', 'PREPAID', 'PAID', 'WITHDRAWN', 'CLOSED', 'FAILED')),
  prepay_id        TEXT,
  prepay_ms        INTEGER,
  transaction_id   TEXT UNIQUE,
  paid_ms          INTEGER,
  -- Why an order is FAILED (WeChat's err_code), for operators.
  failure          TEXT,
  withdrawal_id    TEXT,
  created_ms       INTEGER NOT NULL,
  updated_ms       INTEGER NOT NULL,
  CHECK ((status IN ('PAID', 'WITHDRAWN')) = (paid_ms IS NOT NULL)),
  CHECK ((status = 'WITHDRAWN') = (withdrawal_id IS NOT NULL))
);
CREATE INDEX orders_by_openid ON orders (openid, created_ms);
CREATE INDEX orders_by_status ON orders (status, updated_ms);
CREATE INDEX orders_by_merchant ON orders (merchant_id, status);

-- Every notify as received, verified or not, and what we made of it.
CREATE TABLE notifications (
  id            INTEGER PRIMARY KEY,
  received_ms   INTEGER NOT NULL,
  body          TEXT NOT NULL,
  remote_ip     TEXT,
  -- The order it names; for a rejected notify, the one it claims (untrusted).
  out_trade_no  TEXT,
  -- CREDITED (moved the order to PAID), DUPLICATE, REJECTED, UNKNOWN_ORDER, PAYMENT_FAILED, CONFLICT;
  -- NULL while being processed (or if processing died: the body is kept regardless).
  verdict       TEXT,
  reason        TEXT
);
CREATE INDEX notifications_by_order ON notifications (out_trade_no);

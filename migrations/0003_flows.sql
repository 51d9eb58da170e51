-- wxedge D1 schema, version 3: the core owns every money flow (issue 12).
--
-- Every order write is guarded by the status AND the version it was decided on
-- (wxedge_core::store), and bumps the version. The reconciler's queue is ordered by each
-- order's next check time, which every look moves forward. Operator marks (late payments
-- and the like) live on the row. Notifies are kept whole only once verified; an
-- unverified one keeps at most a 512-byte prefix, its SHA-256 and its size.

ALTER TABLE orders ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
-- When the reconciler looks at an open order next (NULL once settled).
ALTER TABLE orders ADD COLUMN next_check_ms INTEGER;
-- How many looks settled nothing (the backoff doubles with each).
ALTER TABLE orders ADD COLUMN checks INTEGER NOT NULL DEFAULT 0;
-- Why an operator must look (LATE_PAYMENT, AMOUNT_MISMATCH, …) and the detail.
ALTER TABLE orders ADD COLUMN attention TEXT;
ALTER TABLE orders ADD COLUMN attention_note TEXT;

-- Open orders of earlier versions: due at their next grace period, as before.
UPDATE orders SET next_check_ms = MAX(updated_ms, COALESCE(reconciled_ms, 0)) + 600000
WHERE status IN ('CREATED', 'PREPAID');

CREATE INDEX orders_due ON orders (next_check_ms);
CREATE INDEX orders_attention ON orders (attention) WHERE attention IS NOT NULL;

ALTER TABLE notifications ADD COLUMN body_sha256 TEXT;
ALTER TABLE notifications ADD COLUMN body_bytes INTEGER;
-- 1 when the sign verified (the body is kept whole), 0 when not (a prefix only); NULL
-- for rows of earlier versions.
ALTER TABLE notifications ADD COLUMN verified INTEGER;
CREATE INDEX notifications_unverified ON notifications (received_ms) WHERE verified = 0;

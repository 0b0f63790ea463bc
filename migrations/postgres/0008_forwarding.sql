-- Forwarding: a patient's grant can issue referrer grants of its own (no longer
-- than itself); the practice decides whether its patients may.
ALTER TABLE grants ADD COLUMN parent_grant_id TEXT;
ALTER TABLE practices ADD COLUMN allow_forwarding BIGINT NOT NULL DEFAULT 1;

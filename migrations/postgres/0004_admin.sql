-- Terms of use accepted per user; per-practice upload limit.
ALTER TABLE staff_users ADD COLUMN terms_accepted_version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE practices ADD COLUMN max_upload_mb BIGINT NOT NULL DEFAULT 512;

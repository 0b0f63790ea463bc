-- Whether a grant may download images and the CD-like ZIP; the practice's default
-- for new grants.
ALTER TABLE grants ADD COLUMN allow_download INTEGER NOT NULL DEFAULT 1;
ALTER TABLE practices ADD COLUMN downloads_default INTEGER NOT NULL DEFAULT 1;

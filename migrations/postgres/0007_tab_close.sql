-- Patient tabs: the viewer's per-tab nonce, and when the tab said it was closing.
ALTER TABLE sessions ADD COLUMN tab_nonce TEXT;
ALTER TABLE sessions ADD COLUMN leaving_at BIGINT;

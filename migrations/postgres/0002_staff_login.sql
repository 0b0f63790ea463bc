-- Staff sign-in: a session is first half-authenticated (password), then full (TOTP);
-- state-changing forms carry the session's CSRF token.
ALTER TABLE sessions ADD COLUMN stage TEXT NOT NULL DEFAULT 'full';
ALTER TABLE sessions ADD COLUMN csrf_token TEXT NOT NULL DEFAULT '';
ALTER TABLE staff_users ADD COLUMN totp_enrolled BIGINT NOT NULL DEFAULT 0;
ALTER TABLE staff_users ADD COLUMN last_login_at BIGINT;
CREATE INDEX sessions_user ON sessions(user_id);

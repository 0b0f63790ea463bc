-- Lichtkasten schema v1 (PostgreSQL). Times are Unix seconds; ids are random hex.
-- Patient data lives only in rows, never in object names.

CREATE TABLE root_keys (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL CHECK (state IN ('current', 'retired')),
    created_at BIGINT NOT NULL
);

CREATE TABLE practices (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    address TEXT NOT NULL DEFAULT '',
    default_access_days BIGINT NOT NULL DEFAULT 90,
    findings_delay_hours BIGINT NOT NULL DEFAULT 0,
    dicom_ae_title TEXT,
    kek_id TEXT NOT NULL,
    audit_head TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL
);

-- One row per practice key; the practice row names the current one.
CREATE TABLE practice_keys (
    id TEXT PRIMARY KEY,
    practice_id TEXT NOT NULL REFERENCES practices(id) ON DELETE CASCADE,
    root_key_id TEXT NOT NULL REFERENCES root_keys(id),
    wrapped BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX practice_keys_practice ON practice_keys(practice_id);

CREATE TABLE staff_users (
    id TEXT PRIMARY KEY,
    practice_id TEXT NOT NULL REFERENCES practices(id) ON DELETE CASCADE,
    username TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('admin', 'staff')),
    password_hash TEXT NOT NULL,
    must_change_password BIGINT NOT NULL DEFAULT 1,
    totp_sealed BYTEA,
    totp_last_step BIGINT NOT NULL DEFAULT 0,
    failed_logins BIGINT NOT NULL DEFAULT 0,
    locked_at BIGINT,
    active BIGINT NOT NULL DEFAULT 1,
    created_at BIGINT NOT NULL
);
CREATE INDEX staff_users_practice ON staff_users(practice_id);

CREATE TABLE api_clients (
    id TEXT PRIMARY KEY,
    practice_id TEXT NOT NULL REFERENCES practices(id) ON DELETE CASCADE,
    client_id TEXT NOT NULL UNIQUE,
    secret_hash TEXT NOT NULL,
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    disabled_at BIGINT,
    last_used_at BIGINT
);

CREATE TABLE api_tokens (
    token_hash TEXT PRIMARY KEY,
    api_client_id TEXT NOT NULL REFERENCES api_clients(id) ON DELETE CASCADE,
    practice_id TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);

-- Patient details are sealed under the practice key; patient_key is a keyed hash
-- (blind index) of ID, name and birth date, so matching needs no plaintext.
CREATE TABLE patients (
    id TEXT PRIMARY KEY,
    practice_id TEXT NOT NULL REFERENCES practices(id) ON DELETE CASCADE,
    patient_key TEXT NOT NULL,
    kek_id TEXT NOT NULL REFERENCES practice_keys(id),
    sealed BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (practice_id, patient_key)
);

CREATE TABLE studies (
    id TEXT PRIMARY KEY,
    practice_id TEXT NOT NULL REFERENCES practices(id) ON DELETE CASCADE,
    patient_id TEXT NOT NULL REFERENCES patients(id),
    study_uid TEXT NOT NULL,
    study_date TEXT NOT NULL,
    modalities TEXT NOT NULL,
    -- Description, accession, referring physician: sealed under the study key, so
    -- deleting the key shreds them with the images.
    sealed BYTEA NOT NULL,
    kek_id TEXT NOT NULL REFERENCES practice_keys(id),
    wrapped_dek BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (practice_id, study_uid)
);
CREATE INDEX studies_practice ON studies(practice_id, created_at);

CREATE TABLE series (
    id TEXT PRIMARY KEY,
    study_id TEXT NOT NULL REFERENCES studies(id) ON DELETE CASCADE,
    series_uid TEXT NOT NULL,
    series_number BIGINT NOT NULL,
    modality TEXT NOT NULL,
    description TEXT NOT NULL,
    UNIQUE (study_id, series_uid)
);

CREATE TABLE blobs (
    id TEXT PRIMARY KEY,
    study_id TEXT NOT NULL REFERENCES studies(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    object_key TEXT NOT NULL,
    plain_size BIGINT NOT NULL,
    stored_size BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX blobs_study ON blobs(study_id);

CREATE TABLE instances (
    id TEXT PRIMARY KEY,
    study_id TEXT NOT NULL REFERENCES studies(id) ON DELETE CASCADE,
    series_id TEXT NOT NULL REFERENCES series(id) ON DELETE CASCADE,
    sop_uid TEXT NOT NULL,
    sop_class_uid TEXT NOT NULL,
    instance_number BIGINT NOT NULL,
    transfer_syntax TEXT NOT NULL,
    rows_count BIGINT NOT NULL,
    columns_count BIGINT NOT NULL,
    frames BIGINT NOT NULL,
    blob_id TEXT NOT NULL REFERENCES blobs(id),
    created_at BIGINT NOT NULL,
    UNIQUE (study_id, sop_uid)
);
CREATE INDEX instances_series ON instances(series_id, instance_number);

CREATE TABLE grants (
    id TEXT PRIMARY KEY,
    practice_id TEXT NOT NULL REFERENCES practices(id) ON DELETE CASCADE,
    study_id TEXT NOT NULL REFERENCES studies(id) ON DELETE CASCADE,
    audience TEXT NOT NULL CHECK (audience IN ('patient', 'referrer')),
    code_hash TEXT NOT NULL UNIQUE,
    link_hash TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT,
    failed_count BIGINT NOT NULL DEFAULT 0,
    failed_window_start BIGINT NOT NULL DEFAULT 0,
    last_failed_at BIGINT NOT NULL DEFAULT 0,
    locked_at BIGINT,
    first_opened_at BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX grants_study ON grants(study_id);

CREATE TABLE sessions (
    id_hash TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('patient', 'staff')),
    practice_id TEXT NOT NULL,
    grant_id TEXT REFERENCES grants(id) ON DELETE CASCADE,
    user_id TEXT REFERENCES staff_users(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    alive_until BIGINT NOT NULL,
    last_input_at BIGINT NOT NULL,
    ended_at BIGINT
);

CREATE TABLE audit_events (
    seq BIGSERIAL PRIMARY KEY,
    practice_id TEXT NOT NULL,
    at BIGINT NOT NULL,
    actor_kind TEXT NOT NULL,
    actor_id TEXT NOT NULL,
    action TEXT NOT NULL,
    study_id TEXT,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX audit_practice ON audit_events(practice_id, seq);
CREATE INDEX audit_study ON audit_events(study_id, seq);

-- Lichtkasten schema v1 (SQLite). Times are Unix seconds; ids are random hex.
-- Patient data lives only in rows, never in object names.

CREATE TABLE root_keys (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL CHECK (state IN ('current', 'retired')),
    created_at INTEGER NOT NULL
);

CREATE TABLE practices (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    address TEXT NOT NULL DEFAULT '',
    default_access_days INTEGER NOT NULL DEFAULT 90,
    findings_delay_hours INTEGER NOT NULL DEFAULT 0,
    dicom_ae_title TEXT,
    kek_id TEXT NOT NULL,
    audit_head TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL
);

-- One row per practice key; the practice row names the current one.
CREATE TABLE practice_keys (
    id TEXT PRIMARY KEY,
    practice_id TEXT NOT NULL REFERENCES practices(id) ON DELETE CASCADE,
    root_key_id TEXT NOT NULL REFERENCES root_keys(id),
    wrapped BLOB NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX practice_keys_practice ON practice_keys(practice_id);

CREATE TABLE staff_users (
    id TEXT PRIMARY KEY,
    practice_id TEXT NOT NULL REFERENCES practices(id) ON DELETE CASCADE,
    username TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('admin', 'staff')),
    password_hash TEXT NOT NULL,
    must_change_password INTEGER NOT NULL DEFAULT 1,
    totp_sealed BLOB,
    totp_last_step INTEGER NOT NULL DEFAULT 0,
    failed_logins INTEGER NOT NULL DEFAULT 0,
    locked_at INTEGER,
    active INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL
);
CREATE INDEX staff_users_practice ON staff_users(practice_id);

CREATE TABLE api_clients (
    id TEXT PRIMARY KEY,
    practice_id TEXT NOT NULL REFERENCES practices(id) ON DELETE CASCADE,
    client_id TEXT NOT NULL UNIQUE,
    secret_hash TEXT NOT NULL,
    name TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    disabled_at INTEGER,
    last_used_at INTEGER
);

CREATE TABLE api_tokens (
    token_hash TEXT PRIMARY KEY,
    api_client_id TEXT NOT NULL REFERENCES api_clients(id) ON DELETE CASCADE,
    practice_id TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);

-- Patient details are sealed under the practice key; patient_key is a keyed hash
-- (blind index) of ID, name and birth date, so matching needs no plaintext.
CREATE TABLE patients (
    id TEXT PRIMARY KEY,
    practice_id TEXT NOT NULL REFERENCES practices(id) ON DELETE CASCADE,
    patient_key TEXT NOT NULL,
    kek_id TEXT NOT NULL REFERENCES practice_keys(id),
    sealed BLOB NOT NULL,
    created_at INTEGER NOT NULL,
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
    sealed BLOB NOT NULL,
    kek_id TEXT NOT NULL REFERENCES practice_keys(id),
    wrapped_dek BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (practice_id, study_uid)
);
CREATE INDEX studies_practice ON studies(practice_id, created_at);

CREATE TABLE series (
    id TEXT PRIMARY KEY,
    study_id TEXT NOT NULL REFERENCES studies(id) ON DELETE CASCADE,
    series_uid TEXT NOT NULL,
    series_number INTEGER NOT NULL,
    modality TEXT NOT NULL,
    description TEXT NOT NULL,
    UNIQUE (study_id, series_uid)
);

CREATE TABLE blobs (
    id TEXT PRIMARY KEY,
    study_id TEXT NOT NULL REFERENCES studies(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    object_key TEXT NOT NULL,
    plain_size INTEGER NOT NULL,
    stored_size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX blobs_study ON blobs(study_id);

CREATE TABLE instances (
    id TEXT PRIMARY KEY,
    study_id TEXT NOT NULL REFERENCES studies(id) ON DELETE CASCADE,
    series_id TEXT NOT NULL REFERENCES series(id) ON DELETE CASCADE,
    sop_uid TEXT NOT NULL,
    sop_class_uid TEXT NOT NULL,
    instance_number INTEGER NOT NULL,
    transfer_syntax TEXT NOT NULL,
    rows_count INTEGER NOT NULL,
    columns_count INTEGER NOT NULL,
    frames INTEGER NOT NULL,
    blob_id TEXT NOT NULL REFERENCES blobs(id),
    created_at INTEGER NOT NULL,
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
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER,
    failed_count INTEGER NOT NULL DEFAULT 0,
    failed_window_start INTEGER NOT NULL DEFAULT 0,
    last_failed_at INTEGER NOT NULL DEFAULT 0,
    locked_at INTEGER,
    first_opened_at INTEGER,
    created_at INTEGER NOT NULL
);
CREATE INDEX grants_study ON grants(study_id);

CREATE TABLE sessions (
    id_hash TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('patient', 'staff')),
    practice_id TEXT NOT NULL,
    grant_id TEXT REFERENCES grants(id) ON DELETE CASCADE,
    user_id TEXT REFERENCES staff_users(id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    alive_until INTEGER NOT NULL,
    last_input_at INTEGER NOT NULL,
    ended_at INTEGER
);

CREATE TABLE audit_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    practice_id TEXT NOT NULL,
    at INTEGER NOT NULL,
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

-- Findings (PDF reports) of a study: the PDF is a stored object of the study, sealed
-- under its key; release_at says from when patients see it.
CREATE TABLE findings (
    id TEXT PRIMARY KEY,
    practice_id TEXT NOT NULL,
    study_id TEXT NOT NULL REFERENCES studies(id) ON DELETE CASCADE,
    blob_id TEXT NOT NULL REFERENCES blobs(id),
    release_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX findings_study ON findings(study_id);

-- What the viewer needs to draw an instance without opening it: pixel spacing,
-- the file's window, orientation, frame time (JSON, no patient data in it).
ALTER TABLE instances ADD COLUMN view_meta TEXT NOT NULL DEFAULT '{}';

-- Renders prepared at ingest (thumbnail, first view). A job is leased by one node
-- at a time: leased_until in the future means someone works on it, and a crashed
-- node's lease simply runs out.
CREATE TABLE render_jobs (
    instance_id TEXT PRIMARY KEY REFERENCES instances(id) ON DELETE CASCADE,
    study_id TEXT NOT NULL REFERENCES studies(id) ON DELETE CASCADE,
    leased_until INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT NOT NULL DEFAULT '',
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);
CREATE INDEX render_jobs_lease ON render_jobs (leased_until);

-- The render cache: each render is a blob of the study (encrypted under the study
-- key like the original, deleted with it).
CREATE TABLE renders (
    instance_id TEXT NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
    frame INTEGER NOT NULL,
    variant TEXT NOT NULL,
    blob_id TEXT NOT NULL REFERENCES blobs(id) ON DELETE CASCADE,
    media_type TEXT NOT NULL,
    PRIMARY KEY (instance_id, frame, variant)
);

-- The operator's storage quota per practice in MB (0: none), checked before an
-- upload is read where its length is known, and while it is read.
ALTER TABLE practices ADD COLUMN quota_mb INTEGER NOT NULL DEFAULT 0;

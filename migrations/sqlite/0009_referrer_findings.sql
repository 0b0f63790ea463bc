-- Whether referring doctors see findings before their release to the patient.
ALTER TABLE practices ADD COLUMN referrer_findings_early INTEGER NOT NULL DEFAULT 1;

-- A practice's logo for its letters (JPEG, small; not patient data).
ALTER TABLE practices ADD COLUMN logo_jpeg BLOB;

-- The practice's DICOM node: dicom_ae_title (from the first version) is the called AE
-- title its PACS sends to, now unique, plus the calling AE titles it accepts
-- (comma-separated, `*` accepts any).
ALTER TABLE practices ADD COLUMN dicom_calling_aes TEXT NOT NULL DEFAULT '';
CREATE UNIQUE INDEX practices_dicom_ae_title ON practices (dicom_ae_title);

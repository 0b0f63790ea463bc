-- What an access letter prints (code, password, link), sealed under the study key so
-- that a letter can be printed again; shredded with the study.
ALTER TABLE grants ADD COLUMN letter_sealed BLOB;

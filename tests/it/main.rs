//! One integration-test binary (one link step): the real app over HTTP on port 0.
//! Runs on SQLite + filesystem by default, and on PostgreSQL + S3 when
//! LICHTKASTEN_TEST_DATABASE_URL and LICHTKASTEN_TEST_S3_* are set (see .ci/run).

mod api_rate;
mod bad_input;
mod blob_store;
mod crash;
mod demo_binary;
mod dicom_door;
mod dicomweb;
mod downloads;
mod findings;
mod forwarding;
mod helpers;
mod isolation;
mod journey;
mod keys;
mod letters;
mod load;
mod malformed;
mod openapi;
mod practice_admin;
mod prepared;
mod refusals;
mod render_corpus;
mod render_reference;
mod staff;
mod storage_safety;
mod upload_limits;

//! Lichtkasten: secure sharing of medical images with patients and their doctors.
//! See README.md for the code map and the architecture invariants.

// The library has no unsafe code and may not get any; the one unsafe block of the
// crate (tuning the allocator) is in the binary, main.rs.
#![forbid(unsafe_code)]

pub mod access;
pub mod admin;
pub mod app;
pub mod audit;
pub mod auth;
pub mod bench;
pub mod blob;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod db;
pub mod demo;
pub mod dicom;
pub mod domain;
pub mod downloads;
pub mod keys;
pub mod letters;
pub mod metrics;
pub mod purge;
pub mod scp;
pub mod studies;
pub mod users;
pub mod verify;
pub mod web;

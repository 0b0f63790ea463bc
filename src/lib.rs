//! Lichtkasten: secure sharing of medical images with patients and their doctors.
//! See README.md for the code map and the architecture invariants.

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

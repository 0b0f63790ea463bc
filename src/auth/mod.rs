//! Who is calling: passwords, TOTP, API clients and session tokens.

pub mod api_clients;
pub mod passwords;
pub mod staff;
pub mod totp;

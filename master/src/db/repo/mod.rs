//! Repositories: every SQL statement of gpt-load lives in these modules.
//!
//! All SQL is written MySQL-style and passed through [`super::Db::sql`]; identifiers that are
//! reserved words somewhere (`groups`, `time`, `timestamp`) are always backtick-quoted.

pub mod access_keys;
pub mod groups;
pub mod keys;
pub mod logs;
pub mod settings;
pub mod stats;

pub use super::types::{DbI64, DbJson, DbTime};

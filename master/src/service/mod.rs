//! Business rules of the admin API: groups, keys, access keys, settings, tasks, validation.

pub mod access_keys;
pub mod error;
pub mod groups;
pub mod keys;
pub mod lenient;
pub mod settings;
pub mod tasks;
pub mod validation;

//! The gpt-load master: SQL storage and migrations, the admin REST API, services, scheduled jobs,
//! and the single-node server that embeds the worker's data plane.

pub mod api;
pub mod app;
pub mod cli;
pub mod cors;
pub mod ctl;
pub mod db;
pub mod grpc;
pub mod i18n;
pub mod jobs;
pub mod migrate_keys;
pub mod service;
pub mod snapshot;
pub mod state;
pub mod ui;

//! The `KeyStore` contract, run against the in-memory store and against the real Redis of this
//! machine (each test under its own random key prefix).

#![expect(clippy::unwrap_used, clippy::panic, reason = "test code")]

mod key_store;

//! Test support for cross-process tests of gpt-load: a mock upstream that speaks the
//! vendors' wire formats ([`mock_upstream`]). Harness helpers that spawn the real
//! binaries live beside it.

pub mod forward_proxy;
pub mod harness;
pub mod mock_upstream;
pub mod otlp;
pub mod tls;

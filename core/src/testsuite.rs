//! Helpers for tests and benchmarks (the `testsuite` feature): the load tool's building blocks,
//! so integration tests and the side-by-side benchmark drive a registry the way `netget bench`
//! does.

pub use crate::cli::bench::{open, payload, pipeline, register_many, rss_kib, LOAD_LIMITS};

//! netget-node: the native half of the npm package `netget`.
//!
//! # Layout
//!
//! - [`node`]: `JsNetget`, one `netget::embed::Node` behind the JS class `Netget`.
//! - [`filter`]: a JS function (sync or async) as the registry's conditional filter.
//! - [`stream`]: watches and channel subscriptions delivered to JS callbacks.
//! - [`args`]: arguments converted with netget's errors (a wrong type is `NETGET_INVALID_INPUT`).
//! - [`error`]: netget errors as JS `Error` objects with a `code`, mapped in one place.
//! - `run_cli`: the `netget` command line, for the package's `bin`.
//!
//! All behaviour is in the Rust core (`netget-core`): this crate converts values (JSON <-> JS),
//! errors, futures (Promises) and callbacks, nothing more. The module is private
//! (`bindings-node/native.js`); the public package is the small typed JS layer beside it.

mod args;
mod error;
mod filter;
mod node;
mod stream;

use napi_derive::napi;

/// Runs the `netget` command line with `args` (the first is the program name) and returns its
/// exit code. Blocks the calling thread until the command ends (a registry runs until a signal).
#[napi]
pub fn run_cli(args: Vec<String>) -> i32 {
    netget::cli::main_with_args(args)
}

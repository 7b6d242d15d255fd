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
//! - `error_codes`: the core's list of error codes (index.js builds `ErrorCode` from it).
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
///
/// Meant for the package's `bin`, a process that does nothing else: SIGINT and SIGTERM get their
/// default dispositions back first, as in the native `netget` binary. Node's own handlers for
/// them re-raise the signal, which loops once the core's handler (a registry stops gracefully on
/// either) is chained after them; and with the JS thread blocked here, no JS listener could run.
#[napi]
pub fn run_cli(args: Vec<String>) -> i32 {
    default_signal_dispositions();
    netget::cli::main_with_args(args)
}

/// Every stable error code of the core (`NETGET_*`), in the core's order.
#[napi]
pub fn error_codes() -> Vec<String> {
    netget::error::CODES
        .iter()
        .map(|c| c.code.to_string())
        .collect()
}

#[allow(unsafe_code)]
fn default_signal_dispositions() {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: installs the default disposition (no handler code runs); nothing in this
        // process relies on Node's handlers for these signals while the CLI runs.
        unsafe {
            libc::signal(signal, libc::SIG_DFL);
        }
    }
}

//! `netget._native`: the Python face of the netget core.
//!
//! Layout: [`error`] maps core errors to the exception classes of `netget.errors` (once);
//! [`convert`] turns JSON values into Python objects and back; [`node`] wraps
//! `netget::embed::Node`; [`stream`] turns watches and subscriptions into async iterators;
//! [`filter`] lets a Python function (sync or `async def`) be the registry's conditional filter.
//! Nothing here decides anything: every behaviour is the core's.

mod convert;
mod error;
mod filter;
mod node;
mod stream;

use pyo3::prelude::*;

/// Runs the `netget` command line with `args` (argv without the program name) and returns its
/// exit code. Blocks; the CLI has its own runtime.
#[pyfunction]
fn run_cli(py: Python<'_>, args: Vec<String>) -> i32 {
    let argv = std::iter::once("netget".to_string()).chain(args);
    py.detach(|| netget::cli::main_with_args(argv))
}

/// Lets the runtime's threads finish what they are doing in Python, releasing the GIL for up to
/// `seconds` (at most 2). Registered with `atexit` by `netget/__init__.py`: when an awaitable
/// resolves, the runtime thread that resolved it wakes the event loop (`call_soon_threadsafe`,
/// which releases the GIL while it writes to the loop's self-pipe) and still has to take the GIL
/// back. If the interpreter began finalizing in between, that thread would be killed inside
/// Python and the process would crash at exit. atexit handlers run before finalization starts.
#[pyfunction]
fn quiesce(py: Python<'_>, seconds: f64) {
    let pause = std::time::Duration::from_secs_f64(seconds.clamp(0.0, 2.0));
    py.detach(|| std::thread::sleep(pause));
}

/// The version of the core this module was built from.
#[pyfunction]
fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<node::PyNode>()?;
    m.add_class::<stream::PyWatch>()?;
    m.add_class::<stream::PySubscription>()?;
    m.add_function(wrap_pyfunction!(run_cli, m)?)?;
    m.add_function(wrap_pyfunction!(version, m)?)?;
    m.add_function(wrap_pyfunction!(quiesce, m)?)?;
    m.add_function(wrap_pyfunction!(error::error_codes, m)?)?;
    Ok(())
}

//! Core errors become the exceptions of `netget.errors`, chosen by the error's stable code; the
//! instance carries `.code`. This is the only place codes meet exception classes.

use pyo3::prelude::*;
use pyo3::types::PyTuple;

/// The exception class (in `netget.errors`) for a code.
fn class_for(code: &str) -> &'static str {
    match code {
        "NETGET_INVALID_INPUT"
        | "NETGET_MALFORMED_JSON"
        | "NETGET_UNKNOWN_MESSAGE"
        | "NETGET_TOO_LARGE"
        | "NETGET_PROTOCOL"
        | "NETGET_UNSUPPORTED_VERSION" => "InvalidInputError",
        "NETGET_UNAUTHORIZED" | "NETGET_CHALLENGE_REPLAYED" | "NETGET_CHALLENGE_EXPIRED" => {
            "UnauthorizedError"
        }
        "NETGET_FORBIDDEN" => "ForbiddenError",
        "NETGET_DENIED" => "DeniedError",
        "NETGET_NOT_FOUND" | "NETGET_UNKNOWN_NETWORK" => "NotFoundError",
        "NETGET_UNREACHABLE" | "NETGET_CLOSED" => "UnreachableError",
        "NETGET_TIMEOUT" => "TimeoutError",
        "NETGET_RATE_LIMITED" => "RateLimitedError",
        _ => "NetgetError",
    }
}

/// Turns a core error into the fitting Python exception.
pub fn to_py(e: netget::Error) -> PyErr {
    Python::attach(|py| match build(py, &e) {
        Ok(err) => err,
        // netget.errors missing would be a broken install: still say what failed.
        Err(import_err) => {
            import_err.set_cause(
                py,
                Some(pyo3::exceptions::PyRuntimeError::new_err(format!(
                    "[{}] {e}",
                    e.code()
                ))),
            );
            import_err
        }
    })
}

fn build(py: Python<'_>, e: &netget::Error) -> PyResult<PyErr> {
    let errors = py.import("netget.errors")?;
    let class = errors.getattr(class_for(e.code()))?;
    let args = PyTuple::new(py, [e.to_string()])?;
    let instance = class.call1(args)?;
    instance.setattr("code", e.code())?;
    Ok(PyErr::from_value(instance))
}

/// Extension for results from the core.
pub trait IntoPyResult<T> {
    /// Maps the error to its Python exception.
    fn py(self) -> PyResult<T>;
}

impl<T> IntoPyResult<T> for netget::Result<T> {
    fn py(self) -> PyResult<T> {
        self.map_err(to_py)
    }
}

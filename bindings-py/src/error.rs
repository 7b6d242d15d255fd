//! Core errors become the exceptions of `netget.errors`, chosen by the error's stable code; the
//! instance carries `.code`. This is the only place codes meet exception classes.

use netget::error::{Family, CODES};
use pyo3::prelude::*;
use pyo3::types::PyTuple;

/// The exception class (in `netget.errors`) of each family of the core's code table
/// ([`netget::error::CODES`]). Exhaustive: a new family does not compile until it has a class.
fn class_for(family: Family) -> &'static str {
    match family {
        Family::InvalidInput => "InvalidInputError",
        Family::Unauthorized => "UnauthorizedError",
        Family::Forbidden => "ForbiddenError",
        Family::Denied => "DeniedError",
        Family::NotFound => "NotFoundError",
        Family::Unreachable => "UnreachableError",
        Family::Timeout => "TimeoutError",
        Family::RateLimited => "RateLimitedError",
        Family::Other => "NetgetError",
    }
}

/// Every code of the core with the name of its exception class in `netget.errors`, in the
/// core's order: `[("NETGET_INVALID_INPUT", "InvalidInputError"), ...]`.
#[pyfunction]
pub fn error_codes() -> Vec<(&'static str, &'static str)> {
    CODES
        .iter()
        .map(|c| (c.code, class_for(c.family)))
        .collect()
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
    let class = errors.getattr(class_for(e.family()))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every class a code maps to is defined in `netget/errors.py` (the pytests check the
    /// module itself; this catches a typo without building the wheel).
    #[test]
    fn every_code_maps_to_a_class_of_netget_errors() {
        let source = include_str!("../python/netget/errors.py");
        for (code, class) in error_codes() {
            assert!(
                source.contains(&format!("\nclass {class}(")),
                "{code} maps to {class}, which netget/errors.py does not define"
            );
        }
    }
}

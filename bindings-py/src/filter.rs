//! A Python callable (plain or `async def`) as the registry's conditional filter.
//!
//! The filter is called from the registry's tasks. A plain function runs right there (holding the
//! GIL briefly); a coroutine is scheduled on the event loop the registry was started from and
//! awaited. Whatever it returns is read by the core (`Decision::from_value`); an exception
//! denies, with its message as the reason.

use std::sync::{Arc, OnceLock};

use netget::security::{filter_fn, Decision, Filter, FilterRequest};
use pyo3::prelude::*;
use pyo3_async_runtimes::TaskLocals;

use crate::convert;

/// The event loop to run `async def` filters on, known once the node is started.
pub type LoopSlot = Arc<OnceLock<TaskLocals>>;

enum Step {
    Done(serde_json::Value),
    Awaiting(std::pin::Pin<Box<dyn std::future::Future<Output = PyResult<Py<PyAny>>> + Send>>),
}

/// Wraps `callable` as a core filter.
pub fn make(callable: Py<PyAny>, event_loop: LoopSlot) -> Filter {
    let callable = Arc::new(callable);
    filter_fn(move |req: FilterRequest| {
        let callable = callable.clone();
        let event_loop = event_loop.clone();
        async move {
            let request = serde_json::to_value(&req).unwrap_or_default();
            let step = Python::attach(|py| -> PyResult<Step> {
                let arg = convert::to_py(py, &request)?;
                let out = callable.call1(py, (arg,))?;
                let out = out.bind(py);
                if out.hasattr("__await__")? {
                    let locals = event_loop.get().ok_or_else(|| {
                        pyo3::exceptions::PyRuntimeError::new_err(
                            "an async filter needs the registry started from a running event loop",
                        )
                    })?;
                    let fut = pyo3_async_runtimes::into_future_with_locals(locals, out.clone())?;
                    Ok(Step::Awaiting(Box::pin(fut)))
                } else {
                    Ok(Step::Done(convert::from_py(out)?))
                }
            });
            let answer = match step {
                Ok(Step::Done(v)) => Ok(v),
                Ok(Step::Awaiting(fut)) => match fut.await {
                    Ok(obj) => Python::attach(|py| convert::from_py(obj.bind(py))),
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            };
            match answer {
                Ok(v) => Decision::from_value(&v),
                Err(e) => Decision::Deny(format!("the filter raised {e}")),
            }
        }
    })
}

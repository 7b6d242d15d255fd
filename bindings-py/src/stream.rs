//! Watches and channel subscriptions as Python async iterators (`async for event in ...`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use pyo3::exceptions::PyStopAsyncIteration;
use pyo3::prelude::*;
use tokio::sync::{Mutex, Notify};

use crate::convert;

/// What both iterators share: the stream, and a way to end it from `close()` even while a
/// `__anext__` is waiting.
struct Shared<S> {
    stream: Mutex<Option<S>>,
    closed: AtomicBool,
    wake: Notify,
}

impl<S> Shared<S> {
    fn new(stream: S) -> Arc<Shared<S>> {
        Arc::new(Shared {
            stream: Mutex::new(Some(stream)),
            closed: AtomicBool::new(false),
            wake: Notify::new(),
        })
    }

    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.wake.notify_waiters();
        if let Ok(mut s) = self.stream.try_lock() {
            s.take();
        }
    }
}

/// A core stream the iterators wrap.
trait Source: Send + 'static {
    type Item: serde::Serialize;
    fn next_one(&mut self) -> impl std::future::Future<Output = Option<Self::Item>> + Send + '_;
}

impl Source for netget::Watch {
    type Item = netget::WatchEvent;
    fn next_one(&mut self) -> impl std::future::Future<Output = Option<Self::Item>> + Send + '_ {
        self.next()
    }
}

impl Source for netget::Subscription {
    type Item = netget::ChannelMessage;
    fn next_one(&mut self) -> impl std::future::Future<Output = Option<Self::Item>> + Send + '_ {
        self.next()
    }
}

/// Awaits the next item of a stream as a Python object, ending on close or when the stream
/// ends.
async fn next_item<S: Source>(shared: Arc<Shared<S>>) -> PyResult<Py<PyAny>> {
    let stop = || PyStopAsyncIteration::new_err(());
    if shared.closed.load(Ordering::SeqCst) {
        return Err(stop());
    }
    let mut guard = shared.stream.lock().await;
    if shared.closed.load(Ordering::SeqCst) {
        guard.take();
    }
    let Some(stream) = guard.as_mut() else {
        return Err(stop());
    };
    let item = tokio::select! {
        item = stream.next_one() => Some(item),
        _ = shared.wake.notified() => None,
    };
    match item {
        Some(Some(item)) => {
            let v = serde_json::to_value(&item).unwrap_or_default();
            Python::attach(|py| convert::to_py(py, &v))
        }
        Some(None) => Err(stop()),
        None => {
            guard.take();
            Err(stop())
        }
    }
}

/// `async for event in node.watch("web")`: `{"type": "up"|"down"|"changed", "instance": {...}}`.
#[pyclass(name = "Watch", module = "netget._native")]
pub struct PyWatch {
    shared: Arc<Shared<netget::Watch>>,
}

impl PyWatch {
    pub fn new(w: netget::Watch) -> PyWatch {
        PyWatch {
            shared: Shared::new(w),
        }
    }
}

#[pymethods]
impl PyWatch {
    fn __aiter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __anext__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let shared = self.shared.clone();
        pyo3_async_runtimes::tokio::future_into_py(py, next_item(shared))
    }

    /// Ends the watch; a pending `__anext__` raises `StopAsyncIteration`.
    fn close(&self) {
        self.shared.close();
    }
}

/// `async for message in node.subscribe("chat")`: `{"channel", "data", "from"}`.
#[pyclass(name = "Subscription", module = "netget._native")]
pub struct PySubscription {
    shared: Arc<Shared<netget::Subscription>>,
}

impl PySubscription {
    pub fn new(s: netget::Subscription) -> PySubscription {
        PySubscription {
            shared: Shared::new(s),
        }
    }
}

#[pymethods]
impl PySubscription {
    fn __aiter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __anext__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let shared = self.shared.clone();
        pyo3_async_runtimes::tokio::future_into_py(py, next_item(shared))
    }

    /// Ends the subscription; a pending `__anext__` raises `StopAsyncIteration`.
    fn close(&self) {
        self.shared.close();
    }
}

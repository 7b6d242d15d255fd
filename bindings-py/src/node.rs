//! `netget._native.Node`: the core's `embed::Node`, with awaitables for every network call.

use std::sync::{Arc, OnceLock};

use netget::embed::{discover_options, instance_value, Node};
use netget::DiscoverOptions;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::convert;
use crate::error::IntoPyResult;
use crate::filter::{self, LoopSlot};
use crate::stream::{PySubscription, PyWatch};

/// One netget node (registry, service or client), as `netget.Netget` holds it.
#[pyclass(name = "Node", module = "netget._native")]
pub struct PyNode {
    node: Arc<Node>,
    /// The event loop `start()` was awaited on, for `async def` filters.
    event_loop: LoopSlot,
}

fn options(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Option<serde_json::Value>> {
    obj.map(convert::from_py).transpose()
}

/// Runs `fut` as an awaitable whose result is converted from JSON on the way out.
fn awaitable<'py, F>(py: Python<'py>, fut: F) -> PyResult<Bound<'py, PyAny>>
where
    F: std::future::Future<Output = netget::Result<serde_json::Value>> + Send + 'static,
{
    pyo3_async_runtimes::tokio::future_into_py(py, async move {
        let v = fut.await.py()?;
        Python::attach(|py| convert::to_py(py, &v))
    })
}

#[pymethods]
impl PyNode {
    /// Builds a node from the options dict (keys in snake_case or camelCase) and an optional
    /// filter callable (registries only).
    #[new]
    #[pyo3(signature = (options, filter=None))]
    fn new(options: &Bound<'_, PyAny>, filter: Option<Py<PyAny>>) -> PyResult<PyNode> {
        let value = convert::from_py(options)?;
        let event_loop: LoopSlot = Arc::new(OnceLock::new());
        let filter = filter.map(|f| filter::make(f, event_loop.clone()));
        // Members start connecting at once, on the binding's runtime.
        let _runtime = pyo3_async_runtimes::tokio::get_runtime().enter();
        let node = Node::from_value(value, filter).py()?;
        Ok(PyNode {
            node: Arc::new(node),
            event_loop,
        })
    }

    /// `registry`, `service` or `client`.
    #[getter]
    fn node_type(&self) -> String {
        self.node.node_type().to_string()
    }

    /// The registry URL once started (registries) or connected to (members).
    #[getter]
    fn url(&self) -> Option<String> {
        self.node.url()
    }

    /// The node's public key.
    #[getter]
    fn public_key(&self) -> PyResult<String> {
        self.node.public_key().py()
    }

    /// The registry nodes of a member.
    #[getter]
    fn registry_nodes(&self) -> Vec<String> {
        self.node.registry_nodes()
    }

    fn start<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        if let Ok(locals) = pyo3_async_runtimes::tokio::get_current_locals(py) {
            let _ = self.event_loop.set(locals);
        }
        let node = self.node.clone();
        awaitable(py, async move {
            node.start().await.map(serde_json::Value::String)
        })
    }

    fn register_with_network<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let node = self.node.clone();
        awaitable(py, async move { node.register_with_network().await })
    }

    fn deregister<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let node = self.node.clone();
        awaitable(py, async move {
            node.deregister().await.map(|()| serde_json::Value::Null)
        })
    }

    #[pyo3(signature = (name, options=None))]
    fn discover_service_node<'py>(
        &self,
        py: Python<'py>,
        name: String,
        options: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let node = self.node.clone();
        let opts = self::options(options)?;
        awaitable(
            py,
            async move { node.discover_service_node(&name, opts).await },
        )
    }

    /// The cache-only fast path: `(True, instance_or_None)` when the service is cached,
    /// `(False, None)` when the registry must be asked.
    #[pyo3(signature = (name, options=None))]
    fn discover_cached<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        options: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let opts = match options {
            None => DiscoverOptions::default(),
            Some(o) => discover_options(Some(convert::from_py(o)?)).py()?,
        };
        match self.node.discover_cached(name, &opts) {
            Some(Some(inst)) => {
                let v = convert::to_py(py, &instance_value(&inst))?;
                PyTuple::new(
                    py,
                    [true.into_pyobject(py)?.to_owned().into_any().unbind(), v],
                )
            }
            Some(None) => PyTuple::new(
                py,
                [
                    true.into_pyobject(py)?.to_owned().into_any().unbind(),
                    py.None(),
                ],
            ),
            None => PyTuple::new(
                py,
                [
                    false.into_pyobject(py)?.to_owned().into_any().unbind(),
                    py.None(),
                ],
            ),
        }
    }

    #[pyo3(signature = (name, options=None))]
    fn discover_service_nodes<'py>(
        &self,
        py: Python<'py>,
        name: String,
        options: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let node = self.node.clone();
        let opts = self::options(options)?;
        awaitable(
            py,
            async move { node.discover_service_nodes(&name, opts).await },
        )
    }

    fn services<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let node = self.node.clone();
        awaitable(py, async move { node.services().await })
    }

    fn watch(&self, name: &str) -> PyResult<PyWatch> {
        let _runtime = pyo3_async_runtimes::tokio::get_runtime().enter();
        Ok(PyWatch::new(self.node.watch(name).py()?))
    }

    fn subscribe(&self, channel: &str) -> PyResult<PySubscription> {
        let _runtime = pyo3_async_runtimes::tokio::get_runtime().enter();
        Ok(PySubscription::new(self.node.subscribe(channel).py()?))
    }

    fn publish<'py>(
        &self,
        py: Python<'py>,
        channel: String,
        data: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let node = self.node.clone();
        let data = convert::from_py(data)?;
        awaitable(py, async move {
            node.publish(&channel, data)
                .await
                .map(serde_json::Value::from)
        })
    }

    fn add_registry_node(&self, url: &str) -> PyResult<()> {
        self.node.add_registry_node(url).py()
    }

    fn remove_registry_node(&self, url: &str) -> PyResult<()> {
        self.node.remove_registry_node(url).py()
    }

    fn stop<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let node = self.node.clone();
        awaitable(py, async move {
            node.stop().await.map(|()| serde_json::Value::Null)
        })
    }
}

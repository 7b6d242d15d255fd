//! `JsNetget`: one `netget::embed::Node` behind the JS class `Netget`.
//!
//! Each method converts its arguments, calls the core and converts the answer: async core calls
//! become Promises (settled on the JS thread, rejected with the core's error and code), JSON
//! values become plain JS objects. Options, validation and every decision are the core's.

use std::future::Future;
use std::sync::Arc;

use napi::bindgen_prelude::{
    within_runtime_if_available, Either, Null, PromiseRaw, ToNapiValue, Unknown,
};
use napi::Env;
use napi_derive::napi;
use netget::embed::{discover_options, instance_value, Node};
use serde_json::Value;

use crate::args::{self, Callback, Text};
use crate::error::{invalid_input, to_js, OrThrow};
use crate::filter::{self, JsFilterFn};
use crate::stream::{self, JsStream};

/// A netget node of any type (registry, service or client).
#[napi(js_name = "NativeNetget")]
pub struct JsNetget {
    /// The core node; shared with the futures of pending calls.
    node: Arc<Node>,
}

#[napi]
impl JsNetget {
    /// Builds the node from the options object and, for registries, the filter function.
    #[napi(
        constructor,
        ts_args_type = "options?: object, filter?: (request: object) => boolean | FilterAnswer | Promise<boolean | FilterAnswer>"
    )]
    pub fn new(
        env: Env,
        options: Option<Unknown<'_>>,
        filter: Option<Either<JsFilterFn<'_>, Unknown<'_>>>,
    ) -> napi::Result<Self> {
        let filter = match filter {
            None => None,
            Some(Either::A(function)) => Some(filter::from_js(function)?),
            Some(Either::B(other)) if args::is_nullish(&other) => None,
            Some(Either::B(_)) => return Err(invalid_input(&env, "filter must be a function")),
        };
        let options = match options {
            // Anything but an object is the core's to refuse, with the same message as Python.
            Some(o) if !args::is_nullish(&o) => args::to_value(&env, o).map_err(|e| {
                invalid_input(&env, format!("invalid Netget options: {}", e.reason))
            })?,
            _ => Value::Object(Default::default()),
        };
        // Members start connecting at once, on the binding's runtime.
        let node =
            within_runtime_if_available(|| Node::from_value(options, filter)).or_throw(&env)?;
        Ok(JsNetget {
            node: Arc::new(node),
        })
    }

    /// `registry`, `service` or `client`.
    #[napi(getter)]
    pub fn node_type(&self) -> String {
        self.node.node_type().to_string()
    }

    /// Registries: listens, resolves with the URL. Members: resolves once in session.
    #[napi(ts_return_type = "Promise<string>")]
    pub fn start<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, String>> {
        let node = self.node.clone();
        promise(env, async move { node.start().await })
    }

    /// The registry's URL (registries, once started) or the registry in session (members).
    #[napi(getter)]
    pub fn url(&self) -> Option<String> {
        self.node.url()
    }

    /// The node's public key (registries: once started).
    #[napi(getter)]
    pub fn public_key(&self, env: Env) -> napi::Result<String> {
        self.node.public_key().or_throw(&env)
    }

    /// Registers this service node; resolves with the stored instance.
    #[napi(ts_return_type = "Promise<object>")]
    pub fn register_with_network<'env>(
        &self,
        env: &'env Env,
    ) -> napi::Result<PromiseRaw<'env, Value>> {
        let node = self.node.clone();
        promise(env, async move { node.register_with_network().await })
    }

    /// Removes this node's registration.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn deregister<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, ()>> {
        let node = self.node.clone();
        promise(env, async move { node.deregister().await })
    }

    /// One instance or `null`.
    #[napi(
        ts_args_type = "name: string, options?: object",
        ts_return_type = "Promise<object | null>"
    )]
    pub fn discover_service_node<'env>(
        &self,
        env: &'env Env,
        name: Text<'_>,
        options: Option<Unknown<'_>>,
    ) -> napi::Result<PromiseRaw<'env, Value>> {
        let name = args::text(env, name, "the service name")?;
        let options = args::json(env, options, "discovery options")?;
        let node = self.node.clone();
        promise(env, async move {
            node.discover_service_node(&name, options).await
        })
    }

    /// The cache-only fast path: the instance, `null` (cached, none matches), or `undefined`
    /// when the registry must be asked (not cached, caching turned off, or arguments the async
    /// path will report as invalid).
    #[napi(
        ts_args_type = "name: string, options?: object",
        ts_return_type = "object | null | undefined"
    )]
    pub fn discover_cached<'env>(
        &self,
        env: &'env Env,
        name: Text<'_>,
        options: Option<Unknown<'_>>,
    ) -> napi::Result<Unknown<'env>> {
        let hit = match (name, args::json(env, options, "discovery options")) {
            // The core's fast path answers `None` itself when caching is turned off.
            (Either::A(name), Ok(options)) => match discover_options(options) {
                Ok(opts) => self.node.discover_cached(&name, &opts),
                Err(_) => None,
            },
            _ => None,
        };
        match hit {
            Some(Some(instance)) => instance_value(&instance).into_unknown(env),
            Some(None) => Null.into_unknown(env),
            None => ().into_unknown(env),
        }
    }

    /// Every matching instance.
    #[napi(
        ts_args_type = "name: string, options?: object",
        ts_return_type = "Promise<object[]>"
    )]
    pub fn discover_service_nodes<'env>(
        &self,
        env: &'env Env,
        name: Text<'_>,
        options: Option<Unknown<'_>>,
    ) -> napi::Result<PromiseRaw<'env, Value>> {
        let name = args::text(env, name, "the service name")?;
        let options = args::json(env, options, "discovery options")?;
        let node = self.node.clone();
        promise(env, async move {
            node.discover_service_nodes(&name, options).await
        })
    }

    /// Services of the network with instance counts.
    #[napi(ts_return_type = "Promise<object[]>")]
    pub fn services<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, Value>> {
        let node = self.node.clone();
        promise(env, async move { node.services().await })
    }

    /// Calls `callback` with every change to `name`: `{ type, instance }`.
    #[napi(ts_args_type = "name: string, callback: (event: object) => void")]
    pub fn watch(
        &self,
        env: Env,
        name: Text<'_>,
        callback: Callback<'_>,
    ) -> napi::Result<JsStream> {
        let name = args::text(&env, name, "the service name")?;
        let callback = args::callback(&env, callback, "the watch callback")?;
        let watch = self.node.watch(&name).or_throw(&env)?;
        stream::spawn(watch, callback)
    }

    /// Calls `callback` with every message on `channel`: `{ channel, data, from }`.
    #[napi(ts_args_type = "channel: string, callback: (message: object) => void")]
    pub fn subscribe(
        &self,
        env: Env,
        channel: Text<'_>,
        callback: Callback<'_>,
    ) -> napi::Result<JsStream> {
        let channel = args::text(&env, channel, "the channel")?;
        let callback = args::callback(&env, callback, "the subscription callback")?;
        let subscription = self.node.subscribe(&channel).or_throw(&env)?;
        stream::spawn(subscription, callback)
    }

    /// Publishes on a channel; resolves with the number of subscribers reached.
    #[napi(
        ts_args_type = "channel: string, data?: unknown",
        ts_return_type = "Promise<number>"
    )]
    pub fn publish<'env>(
        &self,
        env: &'env Env,
        channel: Text<'_>,
        data: Option<Unknown<'_>>,
    ) -> napi::Result<PromiseRaw<'env, u32>> {
        let channel = args::text(env, channel, "the channel")?;
        let data = args::json(env, data, "the published data")?.unwrap_or(Value::Null);
        let node = self.node.clone();
        promise(env, async move {
            let delivered = node.publish(&channel, data).await?;
            Ok(u32::try_from(delivered).unwrap_or(u32::MAX))
        })
    }

    /// Adds a registry node to fail over to.
    #[napi(ts_args_type = "url: string")]
    pub fn add_registry_node(&self, env: Env, url: Text<'_>) -> napi::Result<()> {
        let url = args::text(&env, url, "the registry URL")?;
        self.node.add_registry_node(&url).or_throw(&env)
    }

    /// Removes a registry node.
    #[napi(ts_args_type = "url: string")]
    pub fn remove_registry_node(&self, env: Env, url: Text<'_>) -> napi::Result<()> {
        let url = args::text(&env, url, "the registry URL")?;
        self.node.remove_registry_node(&url).or_throw(&env)
    }

    /// The registry nodes of a member, in order.
    #[napi(getter)]
    pub fn registry_nodes(&self) -> Vec<String> {
        self.node.registry_nodes()
    }

    /// Stops the node (deregisters and closes sessions; a registry stops listening). Idempotent.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn stop<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, ()>> {
        let node = self.node.clone();
        promise(env, async move { node.stop().await })
    }
}

/// A Promise of what `fut` resolves with, rejected with the core's error as a JS error.
fn promise<'env, T, F>(env: &'env Env, fut: F) -> napi::Result<PromiseRaw<'env, T>>
where
    T: ToNapiValue + Send + 'static,
    F: Future<Output = netget::Result<T>> + Send + 'static,
{
    env.spawn_future_with_callback(async move { Ok(fut.await) }, |env, result| {
        result.map_err(|e| to_js(env, e))
    })
}

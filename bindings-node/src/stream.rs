//! Watches and channel subscriptions delivered to JS callbacks.
//!
//! A task on the binding's runtime awaits the core's `Watch::next()` / `Subscription::next()` and
//! calls the JS callback with each item (`{ type, instance }` / `{ channel, data, from }`), one at
//! a time: the next item is taken once the callback has returned. The task ends when the core
//! ends the stream (the node stopped) or when `close()` aborts it; either way it drops the core's
//! handle (which unsubscribes) and the callback, so the callback keeps the process alive only
//! while the stream is open.
//!
//! A callback that throws is reported like a throwing listener anywhere in Node: as an uncaught
//! exception. The stream goes on if the process does.

use std::future::Future;
use std::sync::Mutex;

use napi::bindgen_prelude::{Function, Null};
use napi::threadsafe_function::ThreadsafeFunction;
use napi::Status;
use napi_derive::napi;
use serde::Serialize;
use serde_json::Value;
use tokio::task::AbortHandle;

/// The callback as a method receives it: called with one item, its return value ignored.
pub(crate) type JsCallback<'scope> = Function<'scope, Value, Null>;

/// The callback, callable from the runtime's threads; strong, so an open stream keeps the
/// process alive as a listening socket would.
type CallbackTsfn = ThreadsafeFunction<Value, Null, Value, Status, false>;

/// An open watch or subscription, as JS holds it.
#[napi]
pub struct JsStream {
    /// Aborts the task; `None` once closed. A std Mutex: it is never held across an await.
    abort: Mutex<Option<AbortHandle>>,
}

#[napi]
impl JsStream {
    /// Stops delivering: the core unsubscribes and the callback is released. Idempotent.
    #[napi]
    pub fn close(&self) {
        let taken = self.abort.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(abort) = taken {
            abort.abort();
        }
    }
}

/// What a stream delivers from: a core `Watch` or `Subscription`.
pub(crate) trait Source: Send + 'static {
    /// The next item as JSON; `None` when the core has ended the stream.
    fn next_item(&mut self) -> impl Future<Output = Option<Value>> + Send + '_;
}

impl Source for netget::Watch {
    async fn next_item(&mut self) -> Option<Value> {
        json(netget::Watch::next(self).await?)
    }
}

impl Source for netget::Subscription {
    async fn next_item(&mut self) -> Option<Value> {
        json(netget::Subscription::next(self).await?)
    }
}

/// An item as the JS object the callback receives (serializing these types cannot fail).
fn json(item: impl Serialize) -> Option<Value> {
    Some(serde_json::to_value(item).unwrap_or(Value::Null))
}

/// Starts delivering what `source` yields to `callback`, until the core ends it or the returned
/// stream is closed.
pub(crate) fn spawn(source: impl Source, callback: JsCallback<'_>) -> napi::Result<JsStream> {
    let tsfn: CallbackTsfn = callback
        .build_threadsafe_function::<Value>()
        .callee_handled::<false>()
        .build()?;
    let task = napi::bindgen_prelude::spawn(deliver(source, tsfn));
    Ok(JsStream {
        abort: Mutex::new(Some(task.abort_handle())),
    })
}

async fn deliver(mut source: impl Source, tsfn: CallbackTsfn) {
    while let Some(item) = source.next_item().await {
        // `call_async` (not `_catch`): a throw becomes an uncaught exception, as in any Node
        // listener. It fails for good only when the callback is gone (the process is exiting).
        if let Err(e) = tsfn.call_async(item).await {
            if e.status == Status::Closing {
                break;
            }
        }
    }
}

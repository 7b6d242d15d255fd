//! A JS function as the registry's conditional filter (`new Netget({ nodeType: 'registry',
//! filter })`).
//!
//! The core asks the filter about every handshake, registration and publication with a
//! `FilterRequest`; this module hands that request to JS as a plain object and turns the answer
//! back into a `Decision`. The function may be sync or async. It allows with `true` or
//! `{ allow: true }`; anything else denies: `false`, `{ allow: false, reason }`, a throw or a
//! rejection (the error's message is the reason), or an answer of another shape. The core bounds
//! how long it may take.

use std::sync::Arc;

use napi::bindgen_prelude::{Either3, Function, Promise};
use napi::threadsafe_function::ThreadsafeFunction;
use napi::Status;
use napi_derive::napi;
use netget::security::{filter_fn, Decision, Filter, FilterRequest};
use serde_json::Value;

/// What the JS function returns: a Promise of the answer, or the answer itself.
pub(crate) type Answer = Either3<Promise<Value>, bool, FilterAnswer>;

/// `{ allow, reason }`, as a filter may answer.
#[napi(object)]
pub struct FilterAnswer {
    /// Whether the request may go ahead.
    pub allow: bool,
    /// Why not (reaches the caller in a `NETGET_DENIED` error).
    pub reason: Option<String>,
}

/// The filter as the constructor receives it.
pub(crate) type JsFilterFn<'scope> = Function<'scope, Value, Answer>;

/// The JS function, callable from the registry's threads. Value-only (not error-first), and weak:
/// a registry's filter must not keep the process alive on its own.
type FilterTsfn = ThreadsafeFunction<Value, Answer, Value, Status, false, true>;

/// Wraps the JS function as the core's `Filter`.
pub(crate) fn from_js(function: JsFilterFn<'_>) -> napi::Result<Filter> {
    let tsfn: FilterTsfn = function
        .build_threadsafe_function::<Value>()
        .callee_handled::<false>()
        .weak::<true>()
        .build()?;
    let tsfn = Arc::new(tsfn);
    Ok(filter_fn(move |request: FilterRequest| {
        let tsfn = tsfn.clone();
        async move { ask(&tsfn, request).await }
    }))
}

/// Calls the JS function and waits for its answer (awaiting a returned Promise).
async fn ask(tsfn: &FilterTsfn, request: FilterRequest) -> Decision {
    let request = match serde_json::to_value(&request) {
        Ok(v) => v,
        Err(e) => return Decision::Deny(format!("the request could not be given to JS: {e}")),
    };
    // `call_async_catch`: a throw in the function comes back as an error (with `call_async` it
    // would be a fatal exception in the process).
    let answer = match tsfn.call_async_catch(request).await {
        Ok(Either3::A(promise)) => promise.await,
        Ok(Either3::B(allow)) => Ok(Value::Bool(allow)),
        Ok(Either3::C(FilterAnswer { allow, reason })) => {
            Ok(serde_json::json!({ "allow": allow, "reason": reason }))
        }
        Err(e) => Err(e),
    };
    match answer {
        // Read by the core, so Python and Node filters mean the same answers.
        Ok(value) => Decision::from_value(&value),
        // Thrown (pending exception) or rejected (generic failure): the error's message.
        Err(e) if matches!(e.status, Status::PendingException | Status::GenericFailure) => {
            Decision::Deny(thrown_reason(e))
        }
        // An answer napi could not read as any of the three.
        Err(_) => {
            Decision::Deny("the filter answered neither true, false nor { allow, reason }".into())
        }
    }
}

/// The message of what the function threw or rejected with. napi reads it as the string form
/// of the value (`"Error: message"` for an `Error`), so the class prefix is dropped.
fn thrown_reason(e: napi::Error) -> String {
    let reason = e.reason;
    match reason.split_once(": ") {
        Some((class, message)) if class.ends_with("Error") && !class.contains(' ') => {
            message.to_string()
        }
        _ if reason.is_empty() => "the filter failed".into(),
        _ => reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thrown_errors_keep_their_message() {
        let reason = |s: &str| thrown_reason(napi::Error::new(Status::GenericFailure, s));
        assert_eq!(reason("Error: not today"), "not today");
        assert_eq!(reason("TypeError: x is undefined"), "x is undefined");
        assert_eq!(
            reason("plain string: with colon"),
            "plain string: with colon"
        );
        assert_eq!(reason(""), "the filter failed");
    }
}

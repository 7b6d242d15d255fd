//! Arguments as JS passes them, converted with netget's errors.
//!
//! napi converts typed arguments itself, but reports a mismatch with its own code
//! (`InvalidArg`). Arguments a caller can plausibly get wrong are taken loosely here instead and
//! converted by these helpers, so a wrong type is a `NETGET_INVALID_INPUT` like any bad value.

use napi::bindgen_prelude::{Either, FromNapiValue, JsValue, Unknown};
use napi::{Env, ValueType};
use serde_json::Value;

use crate::error::invalid_input;
use crate::stream::JsCallback;

/// A string argument, or whatever was passed instead.
pub(crate) type Text<'scope> = Either<String, Unknown<'scope>>;

/// A function argument, or whatever was passed instead.
pub(crate) type Callback<'scope> = Either<JsCallback<'scope>, Unknown<'scope>>;

/// The string, or `NETGET_INVALID_INPUT` naming the argument.
pub(crate) fn text(env: &Env, value: Text<'_>, what: &str) -> napi::Result<String> {
    match value {
        Either::A(s) => Ok(s),
        Either::B(other) => Err(invalid_input(
            env,
            format!("{what} must be a string, got {}", type_name(&other)),
        )),
    }
}

/// The function, or `NETGET_INVALID_INPUT` naming the argument.
pub(crate) fn callback<'scope>(
    env: &Env,
    value: Callback<'scope>,
    what: &str,
) -> napi::Result<JsCallback<'scope>> {
    match value {
        Either::A(f) => Ok(f),
        Either::B(other) => Err(invalid_input(
            env,
            format!("{what} must be a function, got {}", type_name(&other)),
        )),
    }
}

/// A JSON-like value (`undefined` and `null` are `None`); a value JSON cannot hold (a function,
/// a symbol) is `NETGET_INVALID_INPUT` naming the argument.
pub(crate) fn json(
    env: &Env,
    value: Option<Unknown<'_>>,
    what: &str,
) -> napi::Result<Option<Value>> {
    let Some(value) = value else {
        return Ok(None);
    };
    if is_nullish(&value) {
        return Ok(None);
    }
    to_value(env, value)
        .map(Some)
        .map_err(|e| invalid_input(env, format!("{what} is not plain data: {}", e.reason)))
}

/// A JS value as JSON, the way napi converts a `serde_json::Value` argument: properties that are
/// `undefined` are left out (as `JSON.stringify` does), so `{ tags: undefined }` means no tags.
#[allow(unsafe_code)]
pub(crate) fn to_value(env: &Env, value: Unknown<'_>) -> napi::Result<Value> {
    // SAFETY: `value` is a live value of `env`, and this runs on `env`'s thread: napi handed both
    // to the method being called.
    unsafe { <Value as FromNapiValue>::from_napi_value(env.raw(), value.raw()) }
}

/// `null` or `undefined`.
pub(crate) fn is_nullish(value: &Unknown<'_>) -> bool {
    matches!(value.get_type(), Ok(ValueType::Null | ValueType::Undefined))
}

fn type_name(value: &Unknown<'_>) -> &'static str {
    match value.get_type() {
        Ok(ValueType::Undefined) => "undefined",
        Ok(ValueType::Null) => "null",
        Ok(ValueType::Boolean) => "a boolean",
        Ok(ValueType::Number) => "a number",
        Ok(ValueType::String) => "a string",
        Ok(ValueType::Symbol) => "a symbol",
        Ok(ValueType::Object) => "an object",
        Ok(ValueType::Function) => "a function",
        _ => "another kind of value",
    }
}

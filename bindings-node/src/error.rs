//! netget errors as JS errors: the one place where a `netget::Error` becomes what JS sees.
//!
//! Every failure reaches JS as a real `Error` whose `message` is the core's message and whose
//! `code` is the core's stable `NETGET_*` code, whether it is thrown by a sync method or rejects a
//! Promise. (napi's own conversion would set `code` to a napi status such as `GenericFailure`.)

use napi::bindgen_prelude::{JsObjectValue, JsValue};
use napi::{Env, Status};

/// Builds the JS error for `e` and wraps it so napi throws or rejects with that very object.
pub(crate) fn to_js(env: &Env, e: netget::Error) -> napi::Error {
    let message = e.to_string();
    let built = env
        .create_error(napi::Error::new(Status::GenericFailure, message.clone()))
        .and_then(|mut object| {
            object.set_named_property("code", e.code())?;
            Ok(napi::Error::from(object.to_unknown()))
        });
    // Only when the JS engine cannot make an object at all (e.g. while the process exits):
    // napi's own error still carries the message.
    built.unwrap_or_else(|_| napi::Error::new(Status::GenericFailure, message))
}

/// A JS value that is not what an argument must be: the same error as a bad option.
pub(crate) fn invalid_input(env: &Env, message: impl Into<String>) -> napi::Error {
    to_js(env, netget::Error::InvalidInput(message.into()))
}

/// Converts a core result for a sync method.
pub(crate) trait OrThrow<T> {
    /// `Ok` as is; `Err` as the JS error built by [`to_js`].
    fn or_throw(self, env: &Env) -> napi::Result<T>;
}

impl<T> OrThrow<T> for netget::Result<T> {
    fn or_throw(self, env: &Env) -> napi::Result<T> {
        self.map_err(|e| to_js(env, e))
    }
}

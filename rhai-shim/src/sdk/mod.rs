//! The SDK modules of a Rhai script, one file per WIT interface, each registered as a
//! static Rhai module under its Rhai-native name (`kv`, `docs`, `files`, `http`, `email`,
//! `secrets`, `users`, `pubsub`, `dead_letters`, `log`, `runtime`).
//!
//! A failing SDK call throws a Rhai runtime error `"<module>::<function>: <error>"`, for
//! example `kv::get: unavailable: kv is not available yet`; scripts can catch it with
//! `try`/`catch`. Lookups of something absent answer `()` instead of throwing.

mod dead_letters;
mod docs;
mod email;
mod files;
mod http;
mod kv;
mod log;
mod pubsub;
mod runtime;
mod secrets;
mod users;

use crate::convert;
use crate::host::{Host, SdkError};
use rhai::{
    Array, Dynamic, Engine, EvalAltResult, FuncRegistration, Map, Module, NativeCallContext,
    Position, RhaiFunc, RhaiNativeFunc, Shared, Variant,
};
use std::rc::Rc;

/// The result of a function callable from Rhai.
pub(crate) type RhaiResultOf<T> = Result<T, Box<EvalAltResult>>;

/// Fills one SDK module with its functions.
type Register = fn(&mut Module, &Rc<dyn Host>);

/// Registers every SDK module on `engine`, calling `host` for each operation.
pub(crate) fn register(engine: &mut Engine, host: &Rc<dyn Host>) {
    let modules: [(&str, Register); 11] = [
        ("kv", kv::register),
        ("docs", docs::register),
        ("files", files::register),
        ("http", http::register),
        ("email", email::register),
        ("secrets", secrets::register),
        ("users", users::register),
        ("pubsub", pubsub::register),
        ("dead_letters", dead_letters::register),
        ("log", log::register),
        ("runtime", runtime::register),
    ];
    for (name, register) in modules {
        let mut module = Module::new();
        register(&mut module, host);
        engine.register_static_module(name, Shared::new(module));
    }
}

/// Adds `func` to `module` as `name`.
///
/// Functions are marked volatile so the optimiser never evaluates them ahead of time
/// (they talk to the host, read clocks or draw random numbers). Their errors carry the
/// position of the call: rhai fills it in for plain calls but not for namespaced ones
/// (`kv::get(…)`), so the wrapper does.
pub(crate) fn add_fn<A: 'static, const N: usize, const X: bool, R, F>(
    module: &mut Module,
    name: &str,
    func: F,
) where
    R: Variant + Clone,
    F: RhaiNativeFunc<A, N, X, R, true> + 'static,
{
    let func = match func.into_rhai_function(true, true) {
        RhaiFunc::Pure {
            func,
            is_pure,
            is_volatile,
            ..
        } => RhaiFunc::Pure {
            func: Shared::new(
                move |context: Option<NativeCallContext<'_>>, args: &mut [&mut Dynamic]| {
                    let pos = context
                        .as_ref()
                        .map_or(Position::NONE, NativeCallContext::call_position);
                    func(context, args).map_err(|mut e| {
                        if e.position().is_none() {
                            e.set_position(pos);
                        }
                        e
                    })
                },
            ),
            has_context: true,
            is_pure,
            is_volatile,
        },
        other => other,
    };
    FuncRegistration::new(name).set_into_module_raw(module, F::param_types(), func);
}

/// A Rhai runtime error carrying `message`.
pub(crate) fn error(message: impl Into<String>) -> Box<EvalAltResult> {
    Box::new(EvalAltResult::ErrorRuntime(
        Dynamic::from(message.into()),
        Position::NONE,
    ))
}

/// The Rhai error of a failed SDK call of `function` (`"kv::get"`).
pub(crate) fn sdk_error(function: &str, e: SdkError) -> Box<EvalAltResult> {
    error(format!("{function}: {e}"))
}

/// The JSON text of an argument of `function`.
pub(crate) fn json_arg(function: &str, value: &Dynamic) -> RhaiResultOf<String> {
    convert::to_json_text(value).map_err(|e| error(format!("{function}: {e}")))
}

/// The Rhai value of JSON text the host answered to `function`.
pub(crate) fn json_value(function: &str, text: &str) -> RhaiResultOf<Dynamic> {
    convert::from_json_text(text).map_err(|e| error(format!("{function}: the host answered {e}")))
}

/// `Some(value)` as the value, `None` as `()`.
pub(crate) fn or_unit<T: Into<Dynamic>>(value: Option<T>) -> Dynamic {
    value.map_or(Dynamic::UNIT, Into::into)
}

/// A map argument of `function` (a copy of it), or an error naming what was given.
pub(crate) fn map_arg(function: &str, value: &Dynamic) -> RhaiResultOf<Map> {
    value.flatten_clone().try_cast::<Map>().ok_or_else(|| {
        error(format!(
            "{function}: expected an object map, got {}",
            value.type_name()
        ))
    })
}

/// Reads the fields of an options or record map argument, with errors naming the field.
pub(crate) struct Fields<'a> {
    function: &'a str,
    map: Map,
}

impl<'a> Fields<'a> {
    /// The fields of the map `value`, an argument of `function`.
    pub(crate) fn of(function: &'a str, value: &Dynamic) -> RhaiResultOf<Self> {
        Ok(Self {
            function,
            map: map_arg(function, value)?,
        })
    }

    /// The field `name`, if present and not `()`.
    pub(crate) fn get(&self, name: &str) -> Option<Dynamic> {
        self.map
            .get(name)
            .map(Dynamic::flatten_clone)
            .filter(|v| !v.is_unit())
    }

    fn wrong(&self, name: &str, expected: &str, got: &Dynamic) -> Box<EvalAltResult> {
        error(format!(
            "{}: `{name}` must be {expected}, got {}",
            self.function,
            got.type_name()
        ))
    }

    /// A string field (`()` or absent: `None`).
    pub(crate) fn string(&self, name: &str) -> RhaiResultOf<Option<String>> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => match v.clone().into_immutable_string() {
                Ok(s) => Ok(Some(s.to_string())),
                Err(_) => Err(self.wrong(name, "a string", &v)),
            },
        }
    }

    /// A string field that must be present.
    pub(crate) fn required_string(&self, name: &str) -> RhaiResultOf<String> {
        self.string(name)?
            .ok_or_else(|| error(format!("{}: `{name}` is required", self.function)))
    }

    /// A non-negative integer field that fits `u32`.
    pub(crate) fn u32(&self, name: &str) -> RhaiResultOf<Option<u32>> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => match v.as_int().ok().and_then(|i| u32::try_from(i).ok()) {
                Some(n) => Ok(Some(n)),
                None => Err(self.wrong(name, "a non-negative integer", &v)),
            },
        }
    }

    /// A string field or an array of strings (a single string is one element).
    pub(crate) fn strings(&self, name: &str) -> RhaiResultOf<Vec<String>> {
        match self.get(name) {
            None => Ok(Vec::new()),
            Some(v) => strings_arg(self.function, name, &v),
        }
    }

    /// A field holding any value, as JSON text.
    pub(crate) fn json(&self, name: &str) -> RhaiResultOf<Option<String>> {
        self.get(name)
            .map(|v| json_arg(self.function, &v))
            .transpose()
    }

    /// A map of header names to values (values of any type, turned into strings).
    pub(crate) fn pairs(&self, name: &str) -> RhaiResultOf<Vec<(String, String)>> {
        match self.get(name) {
            None => Ok(Vec::new()),
            Some(v) => pairs_arg(self.function, &v),
        }
    }
}

/// A string or an array of strings, as a list.
pub(crate) fn strings_arg(
    function: &str,
    what: &str,
    value: &Dynamic,
) -> RhaiResultOf<Vec<String>> {
    let value = value.flatten_clone();
    if let Ok(s) = value.clone().into_immutable_string() {
        return Ok(vec![s.to_string()]);
    }
    if let Some(items) = value.clone().try_cast::<Array>() {
        return items
            .into_iter()
            .map(|item| {
                item.flatten_clone()
                    .into_immutable_string()
                    .map(|s| s.to_string())
                    .map_err(|t| {
                        error(format!("{function}: `{what}` must hold strings, found {t}"))
                    })
            })
            .collect();
    }
    Err(error(format!(
        "{function}: `{what}` must be a string or an array of strings, got {}",
        value.type_name()
    )))
}

/// A map of names to values as pairs; values that are not strings are turned into text.
pub(crate) fn pairs_arg(function: &str, value: &Dynamic) -> RhaiResultOf<Vec<(String, String)>> {
    let map = map_arg(function, value)?;
    Ok(map
        .into_iter()
        .map(|(k, v)| (k.to_string(), display(&v)))
        .collect())
}

/// How a value reads as text: strings as they are, everything else as Rhai prints it.
pub(crate) fn display(value: &Dynamic) -> String {
    let value = value.flatten_clone();
    match value.clone().into_immutable_string() {
        Ok(s) => s.to_string(),
        Err(_) => value.to_string(),
    }
}

/// Pairs as a map; a repeated name joins its values with `", "`.
pub(crate) fn pairs_to_map(pairs: &[(String, String)], lower_case: bool) -> Map {
    let mut map = Map::new();
    for (name, value) in pairs {
        // Header names usually arrive in lower case already: copy them as they are.
        let name: rhai::Identifier = if lower_case && name.bytes().any(|b| b.is_ascii_uppercase()) {
            name.to_ascii_lowercase().into()
        } else {
            name.as_str().into()
        };
        match map.get_mut(name.as_str()) {
            Some(existing) => {
                let joined = format!("{}, {value}", display(existing));
                *existing = joined.into();
            }
            None => {
                map.insert(name, value.clone().into());
            }
        }
    }
    map
}

/// A list of strings as a Rhai array.
pub(crate) fn string_array(items: &[String]) -> Dynamic {
    Dynamic::from_array(items.iter().map(|s| Dynamic::from(s.clone())).collect())
}

/// A `u64` count or timestamp as a Rhai integer (saturating at `i64::MAX`).
pub(crate) fn int_of(n: u64) -> Dynamic {
    Dynamic::from_int(i64::try_from(n).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::pairs_to_map;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn header_names_are_lower_cased_and_repeated_headers_joined() {
        let map = pairs_to_map(
            &pairs(&[
                ("accept", "text/html"),
                ("X-Trace", "a"),
                ("x-trace", "b"),
                ("Accept", "application/json"),
            ]),
            true,
        );
        let got: Vec<(String, String)> = map
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(
            got,
            pairs(&[
                ("accept", "text/html, application/json"),
                ("x-trace", "a, b"),
            ])
        );
    }

    #[test]
    fn other_pairs_keep_their_names() {
        let map = pairs_to_map(&pairs(&[("Id", "7"), ("id", "8")]), false);
        assert_eq!(map.len(), 2);
        assert_eq!(map["Id"].to_string(), "7");
        assert_eq!(map["id"].to_string(), "8");
    }
}

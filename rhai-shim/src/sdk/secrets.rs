//! `secrets`: the app's encrypted secrets; values are strings.
//!
//! ```rhai
//! secrets::set("stripe_key", "sk_live_…");
//! let key = secrets::get("stripe_key");   // the string, or () when absent
//! let names = secrets::list();            // ["stripe_key"]
//! secrets::delete("stripe_key");          // true when it existed
//! ```

use super::{add_fn, or_unit, sdk_error, string_array};
use crate::host::Host;
use crate::sdk::RhaiResultOf;
use rhai::{Dynamic, Module};
use std::rc::Rc;

pub(super) fn register(module: &mut Module, host: &Rc<dyn Host>) {
    let h = host.clone();
    add_fn(module, "get", move |name: &str| -> RhaiResultOf<Dynamic> {
        h.secrets_get(name)
            .map(or_unit)
            .map_err(|e| sdk_error("secrets::get", e))
    });

    let h = host.clone();
    add_fn(module, "set", move |name: &str, value: &str| {
        h.secrets_set(name, value)
            .map_err(|e| sdk_error("secrets::set", e))
    });

    let h = host.clone();
    add_fn(module, "delete", move |name: &str| {
        h.secrets_delete(name)
            .map_err(|e| sdk_error("secrets::delete", e))
    });

    let h = host.clone();
    add_fn(module, "list", move || -> RhaiResultOf<Dynamic> {
        h.secrets_list()
            .map(|names| string_array(&names))
            .map_err(|e| sdk_error("secrets::list", e))
    });
}

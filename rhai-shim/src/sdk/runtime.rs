//! `runtime`: the invocation the script runs in.
//!
//! ```rhai
//! let info = runtime::info();   // #{ app, function, version, invocation_id, trigger }
//! let fuel = runtime::remaining_fuel();
//! let ms = runtime::now();      // milliseconds since the Unix epoch (same as time::now())
//! ```

use super::{add_fn, int_of};
use crate::host::Host;
use crate::sdk::RhaiResultOf;
use rhai::{Dynamic, Map, Module};
use std::rc::Rc;

pub(super) fn register(module: &mut Module, host: &Rc<dyn Host>) {
    let h = host.clone();
    add_fn(module, "info", move || -> RhaiResultOf<Map> {
        let info = h.runtime_info();
        let mut map = Map::new();
        map.insert("app".into(), info.app.into());
        map.insert("function".into(), info.function.into());
        map.insert("version".into(), Dynamic::from_int(info.version.into()));
        map.insert("invocation_id".into(), info.invocation_id.into());
        map.insert("trigger".into(), info.trigger.into());
        Ok(map)
    });

    let h = host.clone();
    add_fn(
        module,
        "remaining_fuel",
        move || -> RhaiResultOf<Dynamic> { Ok(int_of(h.remaining_fuel())) },
    );

    let h = host.clone();
    add_fn(module, "now", move || -> RhaiResultOf<Dynamic> {
        Ok(int_of(h.now_ms()))
    });
}

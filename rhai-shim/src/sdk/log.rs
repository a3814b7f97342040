//! `log`: log lines of the invocation, shown by `picloud logs` and the dashboard.
//! `print(x)` logs at info level and `debug(x)` at debug level too.
//!
//! ```rhai
//! log::info("order placed");
//! log::warn("slow upstream", #{ ms: 812 });     // with structured fields (an object map)
//! log::error(`failed: ${err}`);
//! log::debug(ctx.request);                      // any value; non-strings are printed
//! log::trace("detail");
//! ```

use super::{add_fn, display, json_arg};
use crate::host::{Host, LogLevel};
use crate::sdk::RhaiResultOf;
use rhai::{Dynamic, Module};
use std::rc::Rc;

pub(super) fn register(module: &mut Module, host: &Rc<dyn Host>) {
    for (name, level) in [
        ("trace", LogLevel::Trace),
        ("debug", LogLevel::Debug),
        ("info", LogLevel::Info),
        ("warn", LogLevel::Warn),
        ("error", LogLevel::Error),
    ] {
        let h = host.clone();
        add_fn(module, name, move |message: Dynamic| -> RhaiResultOf<()> {
            h.log(level, &display(&message), None);
            Ok(())
        });
        let h = host.clone();
        let function = format!("log::{name}");
        add_fn(
            module,
            name,
            move |message: Dynamic, fields: Dynamic| -> RhaiResultOf<()> {
                if !fields.is_map() {
                    return Err(super::error(format!(
                        "{function}: the fields must be an object map, got {}",
                        fields.type_name()
                    )));
                }
                let fields = json_arg(&function, &fields)?;
                h.log(level, &display(&message), Some(&fields));
                Ok(())
            },
        );
    }
}

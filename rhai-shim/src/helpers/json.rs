//! `json`: JSON text to Rhai values and back, types intact (an integer stays an integer,
//! `1.0` stays a float, `null` is `()`).
//!
//! ```rhai
//! let v = json::parse(`{"a": [1, 2.5, "x", null]}`);   // #{ a: [1, 2.5, "x", ()] }
//! json::stringify(#{ a: 1, b: [true, ()] })             // `{"a":1,"b":[true,null]}`
//! ```

use crate::convert;
use crate::sdk::RhaiResultOf;
use crate::sdk::{add_fn, error};
use rhai::{Dynamic, Module};

pub(super) fn module() -> Module {
    let mut module = Module::new();
    add_fn(
        &mut module,
        "parse",
        |text: &str| -> RhaiResultOf<Dynamic> {
            convert::from_json_text(text).map_err(|e| error(format!("json::parse: {e}")))
        },
    );
    add_fn(&mut module, "stringify", |value: Dynamic| {
        convert::to_json_text(&value).map_err(|e| error(format!("json::stringify: {e}")))
    });
    module
}

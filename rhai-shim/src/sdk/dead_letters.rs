//! `dead_letters`: act on events whose retries were exhausted.
//!
//! ```rhai
//! dead_letters::replay(ctx.event.dead_letter_id);    // run the event again
//! dead_letters::resolve(ctx.event.dead_letter_id);   // mark it handled
//! ```

use super::{add_fn, sdk_error};
use crate::host::Host;
use rhai::Module;
use std::rc::Rc;

pub(super) fn register(module: &mut Module, host: &Rc<dyn Host>) {
    let h = host.clone();
    add_fn(module, "replay", move |id: &str| {
        h.dead_letters_replay(id)
            .map_err(|e| sdk_error("dead_letters::replay", e))
    });

    let h = host.clone();
    add_fn(module, "resolve", move |id: &str| {
        h.dead_letters_resolve(id)
            .map_err(|e| sdk_error("dead_letters::resolve", e))
    });
}

//! `pubsub`: publish to topics; mint tokens for browser subscribers.
//!
//! ```rhai
//! pubsub::publish("prices", #{ sku: "a", price: 3 });          // realtime subscribers only
//! pubsub::publish_durable("orders", #{ id: 7 });               // also the app's pubsub triggers
//! let token = pubsub::subscriber_token(["prices"], 3600);      // topics (string or array), ttl in seconds
//! ```

use super::{add_fn, error, json_arg, sdk_error, strings_arg};
use crate::host::Host;
use rhai::{Dynamic, INT, Module};
use std::rc::Rc;

pub(super) fn register(module: &mut Module, host: &Rc<dyn Host>) {
    let h = host.clone();
    add_fn(module, "publish", move |topic: &str, message: Dynamic| {
        let json = json_arg("pubsub::publish", &message)?;
        h.pubsub_publish(topic, &json)
            .map_err(|e| sdk_error("pubsub::publish", e))
    });

    let h = host.clone();
    add_fn(
        module,
        "publish_durable",
        move |topic: &str, message: Dynamic| {
            let json = json_arg("pubsub::publish_durable", &message)?;
            h.pubsub_publish_durable(topic, &json)
                .map_err(|e| sdk_error("pubsub::publish_durable", e))
        },
    );

    let h = host.clone();
    add_fn(
        module,
        "subscriber_token",
        move |topics: Dynamic, ttl_secs: INT| {
            let topics = strings_arg("pubsub::subscriber_token", "topics", &topics)?;
            let ttl = u32::try_from(ttl_secs).map_err(|_| {
                error("pubsub::subscriber_token: the TTL must be a non-negative number of seconds")
            })?;
            h.pubsub_subscriber_token(&topics, ttl)
                .map_err(|e| sdk_error("pubsub::subscriber_token", e))
        },
    );
}

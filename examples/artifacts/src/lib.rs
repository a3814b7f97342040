//! Paths of the example guests, built for wasm32-wasip2 by this crate's `build.rs`.
//! Tests and benches use them to run real components.

include!(concat!(env!("OUT_DIR"), "/artifacts.rs"));

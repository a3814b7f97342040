//! Generated bindings of the `picloud:sdk/function` world, quarantined here.
//!
//! Everything else in the crate (and the host) uses the re-exports of `lib.rs`.

#![allow(missing_docs)]

wasmtime::component::bindgen!({
    world: "picloud:sdk/function",
    path: "../wit",
    imports: { default: async | trappable },
    exports: { default: async },
});

/// The `picloud:sdk/rhai-shim` world: the function world plus the `rhai-script` import
/// the Rhai shim uses to read its script and modules.
pub mod shim {
    wasmtime::component::bindgen!({
        world: "picloud:sdk/rhai-shim",
        path: "../wit",
        imports: { default: async | trappable },
        exports: { default: async },
    });
}

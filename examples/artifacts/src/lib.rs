//! Guests for tests and benches: paths of the example components (built for
//! wasm32-wasip2 by this crate's `build.rs`), and [`component_from_wat`], which turns a
//! core module written inline in WAT into a `picloud:sdk/function` component — the way
//! tests write hostile guests (infinite loops, memory bombs, deep recursion).

include!(concat!(env!("OUT_DIR"), "/artifacts.rs"));

use wit_component::{ComponentEncoder, StringEncoding, embed_component_metadata};
use wit_parser::Resolve;

/// The import/export names a core module uses to implement the function world.
pub const HANDLE_EXPORT: &str = "picloud:sdk/handler@0.1.0#handle";

/// The flat core signature of `handle`: the request record is 15 i32s, the result is a
/// pointer to the `result<response, error>` in linear memory.
pub const HANDLE_SIGNATURE: &str =
    "(param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)";

/// Wraps a core module (WAT text) into a component of the `picloud:sdk/function` world.
///
/// The module must export `memory`, `cabi_realloc` and `handle` under
/// [`HANDLE_EXPORT`] with [`HANDLE_SIGNATURE`]; it may import SDK functions by their
/// canonical names, e.g. `(import "picloud:sdk/runtime@0.1.0" "now" (func (result i64)))`.
pub fn component_from_wat(core_wat: &str) -> Vec<u8> {
    let mut module = wat::parse_str(core_wat).expect("the test's WAT parses");
    let mut resolve = Resolve::default();
    let wit = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../wit");
    let (package, _) = resolve.push_dir(&wit).expect("the WIT package parses");
    let world = resolve
        .select_world(&[package], Some("function"))
        .expect("the function world exists");
    embed_component_metadata(&mut module, &resolve, world, StringEncoding::UTF8)
        .expect("metadata embeds");
    ComponentEncoder::default()
        .module(&module)
        .expect("the module fits the world")
        .validate(true)
        .encode()
        .expect("the component encodes")
}

/// A core module whose `handle` runs `body` (WAT instructions), with a memory and a
/// bump `cabi_realloc`; `imports` are extra import declarations.
pub fn hostile_guest(imports: &str, body: &str) -> Vec<u8> {
    component_from_wat(&format!(
        r#"(module
            {imports}
            (memory (export "memory") 1)
            (global $heap (mut i32) (i32.const 1024))
            (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
                (local $at i32)
                ;; align up: (heap + align - 1) & -align
                (local.set $at (i32.and
                    (i32.add (global.get $heap) (i32.sub (local.get 2) (i32.const 1)))
                    (i32.sub (i32.const 0) (local.get 2))))
                (global.set $heap (i32.add (local.get $at) (local.get 3)))
                (local.get $at))
            (func $handle (export "{HANDLE_EXPORT}") {HANDLE_SIGNATURE}
                {body})
        )"#
    ))
}

/// `component` with `extra` more core instances (of an empty module, appended as two
/// sections at its end): a guest holding many more core instances than it needs, as a
/// hostile one may to fill the host's instance pool.
pub fn with_extra_core_instances(component: &[u8], extra: u32) -> Vec<u8> {
    use wasm_encoder::{InstanceSection, Module, ModuleArg, ModuleSection};
    // The module takes the next core-module index: the count of the component's module
    // sections (id 1), found by walking its top-level sections.
    let mut modules = 0;
    let mut at = 8;
    while at < component.len() {
        let id = component[at];
        let (mut size, mut shift) = (0usize, 0);
        loop {
            at += 1;
            size |= usize::from(component[at] & 0x7f) << shift;
            shift += 7;
            if component[at] < 0x80 {
                break;
            }
        }
        modules += u32::from(id == 1);
        at += 1 + size;
    }
    let mut sections = wasm_encoder::Component::new();
    sections.section(&ModuleSection(&Module::new()));
    let mut instances = InstanceSection::new();
    for _ in 0..extra {
        instances.instantiate(modules, Vec::<(&str, ModuleArg)>::new());
    }
    sections.section(&instances);
    let sections = sections.finish();
    // Without the preamble (magic and version) that `finish` puts first.
    [component, &sections[8..]].concat()
}

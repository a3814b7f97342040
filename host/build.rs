//! Builds the Rhai shim (`rhai-shim/`) for wasm32-wasip2; `src/rhai.rs` embeds it.

fn main() {
    let paths = picloud_guest_build::build(
        &[("picloud-rhai-shim", "picloud_rhai_shim")],
        &["rhai-shim"],
    );
    println!("cargo:rustc-env=PICLOUD_RHAI_SHIM={}", paths[0].display());
}

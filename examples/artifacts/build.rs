//! Builds the example guests for wasm32-wasip2 (release) in a target directory of their
//! own, next to the workspace's, and writes their paths into `$OUT_DIR/artifacts.rs`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// (constant name, package, file stem of the .wasm)
const GUESTS: &[(&str, &str, &str)] = &[
    ("HELLO", "example-hello", "example_hello"),
    ("KV_COUNTER", "example-kv-counter", "example_kv_counter"),
];

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let workspace = manifest_dir
        .parent()
        .and_then(Path::parent)
        .expect("examples/artifacts lives two levels below the workspace root");
    for watched in [
        "wit",
        "guest-sdk",
        "examples/hello",
        "examples/kv-counter",
        "Cargo.lock",
    ] {
        println!(
            "cargo:rerun-if-changed={}",
            workspace.join(watched).display()
        );
    }

    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    // OUT_DIR is <target>/<profile>/build/<pkg>-<hash>/out: share one guest target dir
    // across profiles, clippy and tests so guests are built once.
    let target_dir = out_dir
        .ancestors()
        .nth(4)
        .expect("OUT_DIR has the usual depth")
        .join("wasm-guests");

    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cargo
        .current_dir(workspace)
        .args(["build", "--release", "--target", "wasm32-wasip2"]);
    for (_, package, _) in GUESTS {
        cargo.args(["-p", package]);
    }
    cargo.env("CARGO_TARGET_DIR", &target_dir);
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_WRAPPER",
        "CARGO_BUILD_TARGET",
    ] {
        cargo.env_remove(var);
    }
    let status = cargo
        .status()
        .expect("running cargo to build the wasm guests");
    assert!(
        status.success(),
        "building the wasm guests failed (is the wasm32-wasip2 target installed? see rust-toolchain.toml)"
    );

    let mut consts = String::new();
    for (name, package, stem) in GUESTS {
        let path = target_dir
            .join("wasm32-wasip2/release")
            .join(format!("{stem}.wasm"));
        assert!(path.exists(), "{} was not built", path.display());
        consts.push_str(&format!(
            "/// Path of the `{package}` component.\npub const {name}: &str = {:?};\n",
            path.display().to_string()
        ));
    }
    std::fs::write(out_dir.join("artifacts.rs"), consts).unwrap();
}

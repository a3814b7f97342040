//! Used from `build.rs` files: builds workspace guest crates for wasm32-wasip2 (the
//! workspace's `guest` profile: release with fat LTO and one codegen unit, no debug info) in a target directory of their own beside the workspace's, so the
//! nested cargo never waits on the outer one's lock, and returns the `.wasm` paths.
//!
//! Lifecycle: call [`build`] once per build script run; it prints the
//! `cargo:rerun-if-changed` lines for the watched sources.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root: the first ancestor of `manifest_dir` holding `Cargo.lock`.
pub fn workspace_root(manifest_dir: &Path) -> PathBuf {
    manifest_dir
        .ancestors()
        .find(|dir| dir.join("Cargo.lock").exists())
        .expect("the crate lives inside the workspace")
        .to_owned()
}

/// Builds `packages` (package name, `.wasm` file stem) for wasm32-wasip2 and returns
/// the path of each component, in order. `watched` are paths relative to the workspace
/// root whose changes make the build script run again.
pub fn build(packages: &[(&str, &str)], watched: &[&str]) -> Vec<PathBuf> {
    let manifest_dir =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("run from a build script"));
    let workspace = workspace_root(&manifest_dir);
    for path in watched.iter().chain(&["wit", "Cargo.toml", "Cargo.lock"]) {
        println!("cargo:rerun-if-changed={}", workspace.join(path).display());
    }
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("run from a build script"));
    // OUT_DIR is <target>/<profile>/build/<pkg>-<hash>/out: one guest target dir for
    // every profile, clippy and tests, so guests are built once. One per checkout: cargo
    // names a path crate's artifacts the same in every checkout of the workspace, so two
    // checkouts sharing a target dir would otherwise take each other's guests as fresh.
    let checkout = {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        workspace.hash(&mut hasher);
        hasher.finish() & 0xffff_ffff
    };
    let target_dir = out_dir
        .ancestors()
        .nth(4)
        .expect("OUT_DIR has the usual depth")
        .join(format!("wasm-guests-{checkout:08x}"));

    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cargo.current_dir(&workspace).args([
        "build",
        "--profile",
        "guest",
        "--target",
        "wasm32-wasip2",
    ]);
    for (package, _) in packages {
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
    // A higher inlining threshold than opt-level 3's: every wasm call costs fuel
    // bookkeeping (a store before, a load after, a check on entry), so the Rhai shim's
    // interpreter gains from making fewer of them.
    cargo.env(
        "CARGO_TARGET_WASM32_WASIP2_RUSTFLAGS",
        "-Cllvm-args=-inline-threshold=1000",
    );
    let status = cargo
        .status()
        .expect("running cargo to build the wasm guests");
    assert!(
        status.success(),
        "building the wasm guests failed (is the wasm32-wasip2 target installed? see rust-toolchain.toml)"
    );

    packages
        .iter()
        .map(|(_, stem)| {
            let path = target_dir
                .join("wasm32-wasip2/guest")
                .join(format!("{stem}.wasm"));
            assert!(path.exists(), "{} was not built", path.display());
            path
        })
        .collect()
}

//! `picloud init [--template rhai|rust] NAME`: a new project directory with a
//! `picloud.toml` and a hello function that `picloud deploy` deploys as is.

use super::manifest::{FILE_NAME, check_app_name};
use super::print;
use anyhow::{Context, anyhow, bail};
use serde_json::json;
use std::path::{Path, PathBuf};

const RHAI_SCRIPT: &str = r#"// Answers "Hello, <name>!" with the `name` query parameter (default: world).
// ctx.request has method, path, query, params, headers, body and json.
let name = ctx.request.query.name;
if name == () {
    name = "world";
}
log::info(`greeting ${name}`);
`Hello, ${name}!`
"#;

const RUST_LIB: &str = r#"//! Answers `Hello, <name>!` with the `name` query parameter (default `world`).

use picloud_sdk::{Request, Response, Result};

picloud_sdk::handler!(handle);

fn handle(request: Request) -> Result<Response> {
    let name = request
        .query_param("name")
        .unwrap_or_else(|| "world".to_owned());
    Ok(Response::text(format!("Hello, {name}!")))
}
"#;

/// The guest SDK of the source tree this binary was built from, when it is still there.
fn built_from_sdk() -> Option<PathBuf> {
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-sdk");
    sdk.join("Cargo.toml")
        .is_file()
        .then(|| sdk.canonicalize().ok())
        .flatten()
}

/// A TOML string literal of `s`.
fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// The files of a new project.
fn files(
    template: &str,
    app: &str,
    sdk: Option<&Path>,
) -> anyhow::Result<Vec<(&'static str, String)>> {
    Ok(match template {
        "rhai" => vec![
            (
                FILE_NAME,
                format!(
                    r#"# PiCloud project: `picloud deploy` in this directory creates the app, uploads the
# functions that changed and binds their routes.
app = {app}

[[functions]]
name = "hello"
source = "hello.rhai"
routes = ["GET /hello"]

# More functions, triggers and limits:
# [[functions]]
# name = "jobs"
# source = "jobs.rhai"
# routes = [{{ route = "POST /jobs", async = true }}]
#
# [[triggers]]
# name = "nightly"
# kind = "cron"
# schedule = "0 3 * * *"
# function = "jobs"
#
# [limits]
# fuel = 100000000
# timeout_ms = 5000
"#,
                    app = toml_str(app)
                ),
            ),
            ("hello.rhai", RHAI_SCRIPT.to_owned()),
        ],
        "rust" => {
            let crate_name = app.replace('-', "_");
            let dependency = match sdk {
                Some(sdk) => format!(
                    "# picloud-sdk is not on crates.io: this is guest-sdk/ of a PiCloud source tree.\npicloud-sdk = {{ path = {} }}",
                    toml_str(&sdk.display().to_string())
                ),
                None => "# picloud-sdk is not on crates.io: point this at guest-sdk/ of a PiCloud source tree\n# (or `picloud init --sdk-path DIR`, or PICLOUD_SDK_PATH), or use its git repository:\n# picloud-sdk = { git = \"https://example.invalid/picloud.git\" }\npicloud-sdk = { path = \"../picloud/guest-sdk\" }".to_owned(),
            };
            vec![
                (
                    FILE_NAME,
                    format!(
                        r#"# PiCloud project: `picloud deploy` in this directory builds the component, creates
# the app, uploads it when it changed and binds its routes.
app = {app_str}

[[functions]]
name = "hello"
# Needs the wasm32-wasip2 target: rustup target add wasm32-wasip2
build = "cargo build --release --target wasm32-wasip2 --target-dir target"
artifact = "target/wasm32-wasip2/release/{crate_name}.wasm"
routes = ["GET /hello"]
"#,
                        app_str = toml_str(app)
                    ),
                ),
                (
                    "Cargo.toml",
                    format!(
                        r#"[package]
name = {name}
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib"]

[dependencies]
{dependency}

[profile.release]
opt-level = "s"
lto = true
strip = true

# A project of its own, not a member of an enclosing workspace.
[workspace]
"#,
                        name = toml_str(app)
                    ),
                ),
                ("src/lib.rs", RUST_LIB.to_owned()),
                (".gitignore", "/target\n".to_owned()),
            ]
        }
        other => bail!("--template must be rhai or rust, not {other:?}"),
    })
}

pub(super) fn run(
    json: bool,
    dir: &Path,
    template: &str,
    app: Option<String>,
    sdk_path: Option<PathBuf>,
) -> anyhow::Result<()> {
    let app = match app {
        Some(app) => app,
        None => dir
            .file_name()
            .and_then(|n| n.to_str())
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("cannot take an app name from {}; pass --app", dir.display()))?,
    };
    check_app_name(&app).context("pass --app NAME, or name the directory like an app")?;
    let sdk = if template == "rust" {
        match sdk_path {
            Some(path) => {
                if !path.join("Cargo.toml").is_file() {
                    bail!(
                        "--sdk-path {} has no Cargo.toml: give guest-sdk/ of a PiCloud source tree",
                        path.display()
                    );
                }
                Some(path.canonicalize()?)
            }
            None => built_from_sdk(),
        }
    } else {
        None
    };
    let files = files(template, &app, sdk.as_deref())?;
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                bail!(
                    "{} exists and is not empty: pick another NAME (nothing written)",
                    dir.display()
                );
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {
            bail!("{} exists and is a file: pick another NAME", dir.display())
        }
        Err(e) => bail!("cannot read {}: {e}", dir.display()),
    }
    for (name, text) in &files {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    if template == "rust" && sdk.is_none() {
        eprintln!(
            "warning: picloud-sdk not found: edit its path in {} (or run init with --sdk-path DIR)",
            dir.join("Cargo.toml").display()
        );
    }
    let names: Vec<&str> = files.iter().map(|(n, _)| *n).collect();
    let out = json!({ "dir": dir, "app": app, "template": template, "files": names, "sdk": sdk });
    print(json, &out, || {
        format!(
            "created {} ({template} project of app {app}): {}\nnext: cd {} && picloud deploy",
            dir.display(),
            names.join(", "),
            dir.display()
        )
    });
    Ok(())
}

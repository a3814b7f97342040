//! `picloud.toml`, a project's manifest, and `picloud deploy` without FILE: build, upload
//! what changed, reconcile routes and triggers, set limits.
//!
//! Paths in the manifest (`source`, `artifact`) are relative to its directory and must
//! stay inside it: absolute paths, `..` that climbs out and symlinks that lead out are
//! refused. `build` commands run with `sh -c` in that directory: a manifest is code, like
//! a Makefile; deploy only projects you trust.

use super::config::one_line;
use super::{Client, print};
use anyhow::{Context, anyhow, bail};
use picloud_runtime::LimitOverrides;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

/// The manifest `picloud deploy` reads when given no FILE.
pub(super) const FILE_NAME: &str = "picloud.toml";

/// A project: one app, its functions with their routes, its triggers and limits.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Manifest {
    /// The app (created by the first deploy).
    pub(super) app: String,
    #[serde(default)]
    pub(super) functions: Vec<FunctionSpec>,
    #[serde(default)]
    pub(super) triggers: Vec<TriggerSpec>,
    /// Overrides of the host's limits; when present, they replace the app's.
    pub(super) limits: Option<LimitOverrides>,
}

/// `[[functions]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FunctionSpec {
    pub(super) name: String,
    /// A .wasm component or .rhai script to upload as is.
    pub(super) source: Option<PathBuf>,
    /// A shell command run in the project directory before the upload…
    pub(super) build: Option<String>,
    /// …and the file it makes.
    pub(super) artifact: Option<PathBuf>,
    /// `component`, `rhai` or `module` (default: `rhai` for .rhai, else `component`).
    pub(super) kind: Option<String>,
    #[serde(default)]
    pub(super) routes: Vec<RouteSpec>,
}

/// A route: `"GET /x"`, or `{ route = "POST /jobs", async = true }`.
#[derive(Debug, Clone)]
pub(super) struct RouteSpec {
    pub(super) route: String,
    pub(super) is_async: bool,
}

impl<'de> Deserialize<'de> for RouteSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Table {
            route: String,
            #[serde(rename = "async", default)]
            is_async: bool,
        }
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = RouteSpec;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(r#"a route like "GET /path" or { route = "POST /path", async = true }"#)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RouteSpec, E> {
                Ok(RouteSpec {
                    route: v.to_owned(),
                    is_async: false,
                })
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<RouteSpec, A::Error> {
                let t = Table::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(RouteSpec {
                    route: t.route,
                    is_async: t.is_async,
                })
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// `[[triggers]]`: the fields `picloud triggers create` sends.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TriggerSpec {
    pub(super) name: String,
    /// `change` (default), `pubsub`, `cron` or `dead-letter`.
    #[serde(default = "change")]
    pub(super) kind: String,
    pub(super) function: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) collection: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) ops: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) schedule: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) topic: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) max_attempts: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) backoff_ms: Option<i64>,
}

fn change() -> String {
    "change".to_owned()
}

/// The server's rule for app names ([`crate::control::check_app_name`]), checked before
/// a name goes into a URL.
pub(super) fn check_app_name(name: &str) -> anyhow::Result<()> {
    crate::control::check_app_name(name).map_err(|e| anyhow::anyhow!("{e}"))
}

/// The server's rule for function names ([`crate::control::check_function_name`]),
/// checked before a name goes into a URL.
pub(super) fn check_function_name(name: &str) -> anyhow::Result<()> {
    crate::control::check_function_name(name).map_err(|e| anyhow::anyhow!("{e}"))
}

/// A function of the manifest, checked: what to upload and bind.
#[derive(Debug)]
pub(super) struct Planned {
    pub(super) name: String,
    pub(super) kind: &'static str,
    pub(super) build: Option<String>,
    /// Inside the project directory.
    pub(super) file: PathBuf,
    /// (method, path, dispatch)
    pub(super) routes: Vec<(String, String, &'static str)>,
}

/// The manifest at `path`, parsed; a bad one is a one-line error naming the line.
pub(super) fn read(path: &Path) -> anyhow::Result<Manifest> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "no {} here: run `picloud deploy FILE --app APP`, create a project with `picloud init NAME`, or pass --manifest PATH",
            path.display()
        ),
        Err(e) => bail!("cannot read {}: {e}", path.display()),
    };
    parse(&text).map_err(|e| anyhow!("{}: {e}", path.display()))
}

/// `text` as a manifest.
pub(super) fn parse(text: &str) -> anyhow::Result<Manifest> {
    toml::from_str(text).map_err(|e| {
        let line = e.span().map(|span| {
            text.get(..span.start)
                .map_or(0, |before| before.matches('\n').count())
                + 1
        });
        let message = one_line(e.message());
        match line {
            Some(line) => anyhow!("line {line}: {message}"),
            None => anyhow!("{message}"),
        }
    })
}

/// `relative` (from the manifest's `field`) under `root`, refused when it is absolute or
/// leads out of `root`, lexically or through a symlink.
fn inside(root: &Path, relative: &Path, field: &str) -> anyhow::Result<PathBuf> {
    let mut depth = 0usize;
    for component in relative.components() {
        match component {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir if depth > 0 => depth -= 1,
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => bail!(
                "{field} {:?} is outside the project: paths in {FILE_NAME} are relative to its directory and stay inside it",
                relative.display().to_string()
            ),
        }
    }
    if depth == 0 {
        bail!("{field} {:?} names no file", relative.display().to_string());
    }
    Ok(root.join(relative))
}

/// Once the file exists: refused when a symlink leads it out of `root`.
fn still_inside(root: &Path, file: &Path, field: &str) -> anyhow::Result<PathBuf> {
    let root = root
        .canonicalize()
        .with_context(|| format!("cannot open the project directory {}", root.display()))?;
    let real = file
        .canonicalize()
        .with_context(|| format!("{field}: cannot read {}", file.display()))?;
    if !real.starts_with(&root) {
        bail!(
            "{field} {} leads outside the project (to {}): paths in {FILE_NAME} stay inside its directory",
            file.display(),
            real.display()
        );
    }
    Ok(real)
}

/// Checks `manifest` (names, kinds, paths, routes, triggers) before anything is sent.
pub(super) fn plan(manifest: &Manifest, root: &Path) -> anyhow::Result<Vec<Planned>> {
    check_app_name(&manifest.app).context("app")?;
    let mut seen = BTreeSet::new();
    let mut planned = Vec::new();
    for (i, f) in manifest.functions.iter().enumerate() {
        let at = format!("functions[{i}]");
        check_function_name(&f.name).with_context(|| format!("{at}.name"))?;
        if !seen.insert(f.name.clone()) {
            bail!("{at}: function {:?} is listed twice", f.name);
        }
        let file = match (&f.source, &f.build, &f.artifact) {
            (Some(source), None, None) => inside(root, source, &format!("{at}.source"))?,
            (None, Some(_), Some(artifact)) => inside(root, artifact, &format!("{at}.artifact"))?,
            (None, Some(_), None) => bail!(
                "{at} ({}): `build` needs `artifact`, the file it makes",
                f.name
            ),
            (None, None, Some(_)) => bail!(
                "{at} ({}): `artifact` goes with `build`; a file as is is `source`",
                f.name
            ),
            (Some(_), _, _) => bail!(
                "{at} ({}): `source` or `build` + `artifact`, not both",
                f.name
            ),
            (None, None, None) => bail!(
                "{at} ({}): give `source` (a .wasm or .rhai file) or `build` + `artifact`",
                f.name
            ),
        };
        let is_rhai = file.extension().is_some_and(|e| e == "rhai");
        let kind = match f.kind.as_deref() {
            None if is_rhai => "rhai",
            None => "component",
            Some("component") => "component",
            Some("rhai") => "rhai",
            Some("module") => "module",
            Some(other) => bail!("{at}.kind must be component, rhai or module, not {other:?}"),
        };
        let mut routes = Vec::new();
        for (j, r) in f.routes.iter().enumerate() {
            let (method, path) = crate::routing::parse_route_spec(&r.route)
                .map_err(|e| anyhow!("{at}.routes[{j}]: {e}"))?;
            routes.push((method, path, if r.is_async { "async" } else { "sync" }));
        }
        planned.push(Planned {
            name: f.name.clone(),
            kind,
            build: f.build.clone(),
            file,
            routes,
        });
    }
    let mut routes_seen = BTreeSet::new();
    for p in &planned {
        for (method, path, _) in &p.routes {
            if !routes_seen.insert((method.clone(), path.clone())) {
                bail!("route {method} {path} is listed twice");
            }
        }
    }
    let mut names = BTreeSet::new();
    for (i, t) in manifest.triggers.iter().enumerate() {
        check_function_name(&t.function).with_context(|| format!("triggers[{i}].function"))?;
        let b = t.name.as_bytes();
        let valid = (1..=64).contains(&b.len())
            && b[0].is_ascii_alphanumeric()
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_'));
        if !valid {
            bail!(
                "triggers[{i}].name {:?} must be 1-64 of A-Z a-z 0-9 '-' '_', starting with a letter or digit",
                t.name
            );
        }
        if !names.insert(t.name.clone()) {
            bail!("triggers[{i}]: trigger {:?} is listed twice", t.name);
        }
    }
    Ok(planned)
}

/// Runs `command` with `sh -c` in `root`, its output on stderr (stdout stays for the
/// answer, JSON with --json).
fn build(root: &Path, function: &str, command: &str) -> anyhow::Result<()> {
    use std::os::fd::AsFd as _;
    eprintln!("building {function}: {command}");
    let stderr = std::io::stderr().as_fd().try_clone_to_owned()?;
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .current_dir(root)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::from(stderr))
        .status()
        .with_context(|| format!("cannot run the build of {function} (sh -c {command:?})"))?;
    if !status.success() {
        bail!("the build of {function} failed ({status}): {command}");
    }
    Ok(())
}

/// Runs the builds, then reads every file (checked to be inside `root`): each with its
/// bytes and their sha256.
fn prepare<'a>(
    planned: &'a [Planned],
    root: &Path,
) -> anyhow::Result<Vec<(&'a Planned, Vec<u8>, String)>> {
    for p in planned {
        if let Some(command) = &p.build {
            build(root, &p.name, command)?;
        }
    }
    let mut artifacts = Vec::new();
    for p in planned {
        let field = format!("function {}", p.name);
        if p.build.is_some() && !p.file.exists() {
            bail!(
                "{field}: its build made no {} (check `artifact`)",
                p.file.strip_prefix(root).unwrap_or(&p.file).display()
            );
        }
        let file = still_inside(root, &p.file, &field)?;
        let bytes = std::fs::read(&file)
            .with_context(|| format!("{field}: cannot read {}", p.file.display()))?;
        let sha256 = picloud_runtime::sha256_hex(&bytes);
        artifacts.push((p, bytes, sha256));
    }
    Ok(artifacts)
}

/// `path`, or `None` when the server answers 404.
async fn get_optional(client: &Client, path: &str) -> anyhow::Result<Option<Value>> {
    let response = client
        .raw(reqwest::Method::GET, path)
        .send()
        .await
        .map_err(|e| client.unreachable(e))?;
    if response.status() == reqwest::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    client.finish(response).await.map(Some)
}

/// Whether an existing trigger (as listed) is what `spec` asks for.
fn same_trigger(existing: &Value, spec: &TriggerSpec) -> bool {
    let (source, collection) = if spec.kind == "pubsub" {
        (Some("pubsub"), spec.topic.as_deref())
    } else {
        (spec.source.as_deref(), spec.collection.as_deref())
    };
    let ops: Option<Vec<&str>> = existing["ops"]
        .as_array()
        .map(|ops| ops.iter().filter_map(Value::as_str).collect());
    existing["kind"] == spec.kind.as_str()
        && existing["function"] == spec.function.as_str()
        && existing["source"].as_str() == source
        && existing["collection"].as_str() == collection
        && existing["schedule"].as_str() == spec.schedule.as_deref()
        && ops
            == spec
                .ops
                .as_ref()
                .map(|o| o.iter().map(String::as_str).collect())
        && spec
            .max_attempts
            .is_none_or(|m| existing["max_attempts"].as_i64() == Some(m))
        && spec
            .backoff_ms
            .is_none_or(|b| existing["backoff_ms"].as_i64() == Some(b))
}

/// `picloud deploy` of the project whose manifest is `manifest_path`.
pub(super) async fn deploy(
    client: &Client,
    json: bool,
    manifest_path: &Path,
) -> anyhow::Result<()> {
    let manifest = read(manifest_path)?;
    let root = match manifest_path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    };
    let planned =
        plan(&manifest, &root).map_err(|e| anyhow!("{}: {e:#}", manifest_path.display()))?;
    let app = manifest.app.as_str();
    let mut lines = Vec::new();

    // Builds, then every file read (and checked) before anything is sent.
    let artifacts =
        prepare(&planned, &root).map_err(|e| anyhow!("{}: {e:#}", manifest_path.display()))?;

    // The app.
    let existing_app = get_optional(client, &format!("/apps/{app}")).await?;
    let created_app = existing_app.is_none();
    if created_app {
        client
            .send(reqwest::Method::POST, "/apps", Some(json!({ "name": app })))
            .await?;
        lines.push(format!("created app {app}"));
    }

    // Uploads of what changed.
    let mut functions = Vec::new();
    for (p, bytes, sha256) in artifacts {
        let current = get_optional(client, &format!("/apps/{app}/functions/{}", p.name)).await?;
        let unchanged = current.as_ref().is_some_and(|c| {
            c["sha256"].as_str() == Some(sha256.as_str()) && c["kind"].as_str() == Some(p.kind)
        });
        if unchanged {
            let version = current
                .as_ref()
                .map_or(Value::Null, |c| c["active_version"].clone());
            lines.push(format!("{app}/{}: unchanged (version {version})", p.name));
            functions.push(json!({ "name": p.name, "status": "unchanged", "version": version, "sha256": sha256 }));
            continue;
        }
        let deployed = client
            .upload(
                &format!("/apps/{app}/functions/{}/versions?kind={}", p.name, p.kind),
                bytes,
                &format!("{app}/{}", p.name),
                !json,
            )
            .await?;
        lines.push(format!(
            "{app}/{}: deployed version {} ({}, sha256 {}, {} bytes)",
            p.name,
            deployed["version"],
            p.kind,
            &sha256[..12],
            deployed["size"]
        ));
        functions.push(json!({ "name": p.name, "status": "deployed", "version": deployed["version"], "sha256": sha256 }));
    }

    // Routes: add what is missing, rebind what points elsewhere, remove the routes of
    // these functions that the manifest no longer lists.
    let ours: BTreeSet<&str> = planned.iter().map(|p| p.name.as_str()).collect();
    let wanted: BTreeMap<(String, String), (&str, &str)> = planned
        .iter()
        .flat_map(|p| {
            p.routes
                .iter()
                .map(move |(m, path, d)| ((m.clone(), path.clone()), (p.name.as_str(), *d)))
        })
        .collect();
    let existing = client
        .send(reqwest::Method::GET, &format!("/apps/{app}/routes"), None)
        .await?;
    let existing: Vec<Value> = existing.as_array().cloned().unwrap_or_default();
    let (mut added, mut removed, mut kept) = (Vec::new(), Vec::new(), 0usize);
    let mut present = BTreeSet::new();
    for route in &existing {
        let key = (
            route["method"].as_str().unwrap_or("").to_owned(),
            route["path"].as_str().unwrap_or("").to_owned(),
        );
        let function = route["function"].as_str().unwrap_or("");
        let dispatch = route["dispatch"].as_str().unwrap_or("sync");
        let stale = match wanted.get(&key) {
            Some((f, d)) => *f != function || *d != dispatch,
            None => ours.contains(function),
        };
        if stale {
            let id = route["id"].as_str().unwrap_or("");
            client
                .send(
                    reqwest::Method::DELETE,
                    &format!("/apps/{app}/routes/{id}"),
                    None,
                )
                .await?;
            lines.push(format!("removed route {} {} → {function}", key.0, key.1));
            removed.push(json!({ "method": key.0, "path": key.1, "function": function }));
        } else if wanted.contains_key(&key) {
            kept += 1;
            present.insert(key);
        }
    }
    let base = client.base_url();
    for ((method, path), (function, dispatch)) in &wanted {
        if present.contains(&(method.clone(), path.clone())) {
            continue;
        }
        client
            .send(
                reqwest::Method::POST,
                &format!("/apps/{app}/routes"),
                Some(json!({ "method": method, "path": path, "function": function, "dispatch": dispatch })),
            )
            .await?;
        let how = if *dispatch == "async" { " (async)" } else { "" };
        lines.push(format!(
            "added route {method} {path} → {function}{how}  {base}/fn/{app}{path}"
        ));
        added.push(
            json!({ "method": method, "path": path, "function": function, "dispatch": dispatch }),
        );
    }

    // Triggers: create what is missing, replace what differs, delete the triggers of
    // these functions that the manifest no longer lists.
    let existing = client
        .send(reqwest::Method::GET, &format!("/apps/{app}/triggers"), None)
        .await?;
    let existing: Vec<Value> = existing.as_array().cloned().unwrap_or_default();
    let listed: BTreeMap<&str, &TriggerSpec> = manifest
        .triggers
        .iter()
        .map(|t| (t.name.as_str(), t))
        .collect();
    let (mut t_created, mut t_removed, mut t_kept) = (Vec::new(), Vec::new(), 0usize);
    let mut in_place = BTreeSet::new();
    for t in &existing {
        let name = t["name"].as_str().unwrap_or("");
        let function = t["function"].as_str().unwrap_or("");
        let stale = match listed.get(name) {
            Some(spec) => !same_trigger(t, spec),
            None => ours.contains(function),
        };
        if stale {
            client
                .send(
                    reqwest::Method::DELETE,
                    &format!("/apps/{app}/triggers/{name}"),
                    None,
                )
                .await?;
            lines.push(format!("removed trigger {name} → {function}"));
            t_removed.push(json!(name));
        } else if listed.contains_key(name) {
            t_kept += 1;
            in_place.insert(name.to_owned());
        }
    }
    for spec in &manifest.triggers {
        if in_place.contains(&spec.name) {
            continue;
        }
        client
            .send(
                reqwest::Method::POST,
                &format!("/apps/{app}/triggers"),
                Some(serde_json::to_value(spec)?),
            )
            .await?;
        lines.push(format!("created trigger {} → {}", spec.name, spec.function));
        t_created.push(json!(spec.name));
    }

    // Limits: the manifest's replace the app's.
    let mut limits_set = Value::Null;
    if let Some(limits) = &manifest.limits {
        let current = get_optional(client, &format!("/apps/{app}"))
            .await?
            .map_or(Value::Null, |a| a["limits"].clone());
        let wanted = serde_json::to_value(limits)?;
        let current_overrides: Option<LimitOverrides> = serde_json::from_value(current).ok();
        if current_overrides.as_ref() != Some(limits) {
            client
                .send(
                    reqwest::Method::PUT,
                    &format!("/apps/{app}/limits"),
                    Some(wanted.clone()),
                )
                .await?;
            lines.push(format!(
                "set limits {}",
                one_line(&toml::to_string(limits)?)
            ));
            limits_set = wanted;
        }
    }

    let out = json!({
        "app": app,
        "created_app": created_app,
        "functions": functions,
        "routes": { "added": added, "removed": removed, "unchanged": kept },
        "triggers": { "created": t_created, "removed": t_removed, "unchanged": t_kept },
        "limits": limits_set,
    });
    print(json, &out, || {
        if kept + t_kept > 0 {
            lines.push(format!("{kept} route(s) and {t_kept} trigger(s) unchanged"));
        }
        lines.join("\n")
    });
    Ok(())
}

//! Builds the example guests for wasm32-wasip2 and writes their paths into
//! `$OUT_DIR/artifacts.rs`.

/// (constant name, package, file stem of the .wasm)
const GUESTS: &[(&str, &str, &str)] = &[
    ("HELLO", "example-hello", "example_hello"),
    ("KV_COUNTER", "example-kv-counter", "example_kv_counter"),
    ("NOTES", "example-notes", "example_notes"),
    ("KV_LOOP", "example-kv-loop", "example_kv_loop"),
    ("HTTP_FETCH", "example-http-fetch", "example_http_fetch"),
    ("EMAIL_SEND", "example-email-send", "example_email_send"),
    ("SECRETS", "example-secrets", "example_secrets"),
    ("USERS", "example-users", "example_users"),
];

fn main() {
    let packages: Vec<(&str, &str)> = GUESTS
        .iter()
        .map(|(_, package, stem)| (*package, *stem))
        .collect();
    let paths = picloud_guest_build::build(
        &packages,
        &[
            "guest-sdk",
            "examples/hello",
            "examples/kv-counter",
            "examples/notes",
            "examples/kv-loop",
            "examples/http-fetch",
            "examples/email-send",
            "examples/secrets",
            "examples/users",
        ],
    );
    let mut consts = String::new();
    for ((name, package, _), path) in GUESTS.iter().zip(paths) {
        consts.push_str(&format!(
            "/// Path of the `{package}` component.\npub const {name}: &str = {:?};\n",
            path.display().to_string()
        ));
    }
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap());
    std::fs::write(out_dir.join("artifacts.rs"), consts).unwrap();
}

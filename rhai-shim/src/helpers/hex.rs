//! `hex`: lower-case hexadecimal. Decoding accepts either case.
//!
//! ```rhai
//! hex::encode("hi")          // "6869"
//! hex::decode("6869")        // "hi" (throws when the bytes are not UTF-8 text)
//! hex::decode_blob("00ff")   // a blob [0, 255]
//! ```

use super::{bytes_arg, text_of};
use crate::sdk::RhaiResultOf;
use crate::sdk::{add_fn, error};
use rhai::{Blob, Dynamic, Module};

pub(super) fn module() -> Module {
    let mut module = Module::new();
    add_fn(&mut module, "encode", |value: Dynamic| {
        Ok(::hex::encode(bytes_arg("hex::encode", &value)?))
    });
    add_fn(&mut module, "decode", |text: &str| {
        text_of("hex::decode", decode("hex::decode", text)?)
    });
    add_fn(
        &mut module,
        "decode_blob",
        |text: &str| -> RhaiResultOf<Blob> { decode("hex::decode_blob", text) },
    );
    module
}

fn decode(function: &str, text: &str) -> RhaiResultOf<Vec<u8>> {
    ::hex::decode(text.trim()).map_err(|e| error(format!("{function}: invalid hex: {e}")))
}

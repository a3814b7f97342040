//! `base64`: standard (padded) and URL-safe (unpadded) base64. Decoding accepts input
//! with or without padding.
//!
//! ```rhai
//! base64::encode("hi?")          // "aGk/"
//! base64::encode_url("hi?")      // "aGk_"
//! base64::decode("aGk/")         // "hi?" (throws when the bytes are not UTF-8 text)
//! base64::decode_blob("AAE=")    // a blob [0, 1]
//! base64::decode_url("aGk_")  base64::decode_url_blob("AAE")
//! ```

use super::{bytes_arg, text_of};
use crate::sdk::RhaiResultOf;
use crate::sdk::{add_fn, error};
use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use rhai::{Blob, Dynamic, Module};

static STANDARD: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);
static URL_SAFE: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

pub(super) fn module() -> Module {
    let mut module = Module::new();
    for (suffix, engine) in [("", &STANDARD), ("_url", &URL_SAFE)] {
        let encode = format!("base64::encode{suffix}");
        add_fn(
            &mut module,
            &format!("encode{suffix}"),
            move |value: Dynamic| Ok(engine.encode(bytes_arg(&encode, &value)?)),
        );
        let decode = format!("base64::decode{suffix}");
        add_fn(
            &mut module,
            &format!("decode{suffix}"),
            move |text: &str| text_of(&decode, decode_with(engine, &decode, text)?),
        );
        let decode_blob = format!("base64::decode{suffix}_blob");
        add_fn(
            &mut module,
            &format!("decode{suffix}_blob"),
            move |text: &str| -> RhaiResultOf<Blob> { decode_with(engine, &decode_blob, text) },
        );
    }
    module
}

fn decode_with(engine: &GeneralPurpose, function: &str, text: &str) -> RhaiResultOf<Vec<u8>> {
    engine
        .decode(text.trim())
        .map_err(|e| error(format!("{function}: invalid base64: {e}")))
}

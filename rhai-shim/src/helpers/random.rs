//! `random`: random values from the system's secure random source.
//!
//! ```rhai
//! random::int(1, 6)       // 1 ..= 6
//! random::float()         // 0.0 ..< 1.0
//! random::bool()
//! random::uuid()          // "3f0c…" (version 4)
//! random::string(16)      // 16 letters and digits
//! random::bytes(32)       // a blob of 32 bytes
//! ```

use crate::sdk::RhaiResultOf;
use crate::sdk::{add_fn, error};
use rand::Rng;
use rand::distr::Alphanumeric;
use rhai::{Blob, FLOAT, INT, Module};

/// Most characters or bytes one call makes: a guard against a typo allocating gigabytes.
const MAX_LEN: INT = 1 << 20;

pub(super) fn module() -> Module {
    let mut module = Module::new();
    add_fn(&mut module, "int", |min: INT, max: INT| {
        if min > max {
            return Err(error(format!("random::int: min {min} is above max {max}")));
        }
        Ok(rand::rng().random_range(min..=max))
    });
    add_fn(&mut module, "float", || -> RhaiResultOf<FLOAT> {
        Ok(rand::rng().random())
    });
    add_fn(&mut module, "bool", || -> RhaiResultOf<bool> {
        Ok(rand::rng().random())
    });
    add_fn(&mut module, "uuid", || -> RhaiResultOf<String> {
        let mut b: [u8; 16] = rand::rng().random();
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        let h = ::hex::encode(b);
        Ok(format!(
            "{}-{}-{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..]
        ))
    });
    add_fn(&mut module, "string", |len: INT| {
        let len = length("random::string", len)?;
        Ok(rand::rng()
            .sample_iter(Alphanumeric)
            .take(len)
            .map(char::from)
            .collect::<String>())
    });
    add_fn(&mut module, "bytes", |len: INT| -> RhaiResultOf<Blob> {
        let mut bytes = vec![0; length("random::bytes", len)?];
        rand::rng().fill(&mut bytes[..]);
        Ok(bytes)
    });
    module
}

fn length(function: &str, len: INT) -> RhaiResultOf<usize> {
    if !(0..=MAX_LEN).contains(&len) {
        return Err(error(format!(
            "{function}: the length must be 0 ..= {MAX_LEN}, got {len}"
        )));
    }
    Ok(len as usize)
}

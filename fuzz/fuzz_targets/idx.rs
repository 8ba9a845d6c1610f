#![no_main]
//! Fuzz target `idx`: see `checks::idx`.

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::idx(data));

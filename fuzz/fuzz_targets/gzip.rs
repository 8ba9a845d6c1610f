#![no_main]
//! Fuzz target `gzip`: see `checks::gzip`.

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::gzip(data));

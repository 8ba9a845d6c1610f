#![no_main]
//! Fuzz target `checkpoint`: see `checks::checkpoint`.

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::checkpoint(data));

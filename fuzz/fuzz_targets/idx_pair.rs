#![no_main]
//! Fuzz target `idx_pair`: see `checks::idx_pair`.

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::idx_pair(data));

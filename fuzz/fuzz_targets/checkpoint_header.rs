#![no_main]
//! Fuzz target `checkpoint_header`: see `checks::checkpoint_header`.

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::checkpoint_header(data));

#![no_main]
//! Fuzz target `dense`: see `checks::dense`.

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::dense(data));

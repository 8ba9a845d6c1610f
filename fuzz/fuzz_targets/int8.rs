#![no_main]
//! Fuzz target `int8`: see `checks::model_int8`.

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::model_int8(data));

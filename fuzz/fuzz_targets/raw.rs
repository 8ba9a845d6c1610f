#![no_main]
//! Fuzz target `raw`: see `checks::model_raw`.

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::model_raw(data));

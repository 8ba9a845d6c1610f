#![no_main]
//! Fuzz target `safetensors`: see `checks::model_safetensors`.

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::model_safetensors(data));

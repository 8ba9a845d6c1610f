#![no_main]
//! Fuzz target `image`: see `checks::image`.

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::image(data));

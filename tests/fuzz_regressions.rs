//! The fuzz properties on stable: every target's check runs over its generated seed corpus
//! (valid and near-valid inputs) and over every input a fuzzer found and that was saved in
//! `fuzz/regressions/<target>/`. A crash found by `cargo fuzz` becomes a file there, so it is
//! tested forever, without nightly.

#[path = "../fuzz/checks.rs"]
mod checks;

use std::path::Path;

#[test]
fn every_fuzz_property_holds_on_the_seeds_and_the_saved_regressions() {
    for &(target, check) in checks::TARGETS {
        let seeds = checks::seeds(target);
        assert!(seeds.len() >= 4, "{target}: too few seeds");
        for seed in &seeds {
            check(seed);
        }
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz")
            .join("regressions")
            .join(target);
        let mut found = 0;
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            if path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            {
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            let result = std::panic::catch_unwind(|| check(&bytes));
            assert!(
                result.is_ok(),
                "{target}: regression input {} fails again",
                path.display()
            );
            found += 1;
        }
        println!("{target}: {} seeds, {found} regression inputs", seeds.len());
    }
}

#[test]
fn the_seeds_reach_both_the_accepting_and_the_rejecting_paths() {
    // A property that only ever sees rejected inputs checks nothing: each parser must accept
    // some seeds (the valid ones) and reject others (the damaged ones).
    type Accepts = fn(&[u8]) -> bool;
    let accepts: [(&str, Accepts); 7] = [
        ("int8", |d| {
            constnet::quant::file::from_bytes::<2>(d, &checks::SMALL_DIMS).is_ok()
        }),
        ("idx", |d| {
            constnet::data::parse_images(d).is_ok() || constnet::data::parse_labels(d).is_ok()
        }),
        ("safetensors", |d| {
            constnet::format::safetensors::load_bytes_into(
                d,
                &mut *<checks::Small as constnet::Params>::zeroed_box(),
            )
            .is_ok()
        }),
        ("raw", |d| {
            constnet::format::raw::load_into(
                d,
                &mut *<checks::Small as constnet::Params>::zeroed_box(),
            )
            .is_ok()
        }),
        ("checkpoint", |d| {
            constnet::train::Run::<checks::Small>::resume_bytes(d, 100).is_ok()
        }),
        ("checkpoint_header", |d| {
            constnet::train::checkpoint::decode_header(&checks::header_lines(d)).is_ok()
        }),
        ("image", |d| {
            constnet::image::decode(d, constnet::image::Polarity::Auto).is_ok()
        }),
    ];
    for (target, accept) in accepts {
        let seeds = checks::seeds(target);
        let accepted = seeds.iter().filter(|s| accept(s)).count();
        assert!(
            accepted > 0 && accepted < seeds.len(),
            "{target}: {accepted} of {} seeds accepted",
            seeds.len()
        );
    }
}

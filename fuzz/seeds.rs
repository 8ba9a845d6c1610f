//! Writes the seed corpus: `cargo run --manifest-path fuzz/Cargo.toml --bin seeds [DIR]`
//! fills `DIR/<target>/` (default `fuzz/corpus`) with the generated seeds of every target.

#[path = "checks.rs"]
mod checks;

fn main() {
    let root = std::env::args()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus"));
    for (target, _) in checks::TARGETS {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).expect("create the corpus directory");
        let seeds = checks::seeds(target);
        for (i, seed) in seeds.iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i:02}")), seed).expect("write a seed");
        }
        println!("{target}: {} seeds in {}", seeds.len(), dir.display());
    }
}

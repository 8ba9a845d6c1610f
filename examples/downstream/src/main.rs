//! What a user's program sees of constnet's kernel paths: the path it runs, checked against
//! the CPU's own feature flags; with `--bench`, `constnet bench`'s figures from this build.

use constnet::kernels::{self, Isa};

/// The path the CPU's features call for, decided here independently of constnet.
fn expected() -> Isa {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") {
            Isa::Avx512
        } else if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            Isa::Avx2
        } else {
            Isa::Sse2
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        kernels::best()
    }
}

fn main() {
    let (selected, expected) = (kernels::selected(), expected());
    println!("downstream build runs the {selected} kernels; the CPU calls for {}", expected.name());
    if std::env::var_os("CONSTNET_SIMD").is_none() && selected != expected {
        eprintln!("downstream: wrong kernel path");
        std::process::exit(1);
    }
    if std::env::args().any(|a| a == "--bench") {
        let dir = constnet::data::mnist::data_dir(None).0;
        let (train, test) = match constnet::data::Mnist::open(&dir, Default::default()) {
            Ok(m) => (m.train, m.test),
            Err(_) => (
                constnet::bench::synthetic_split(60000),
                constnet::bench::synthetic_split(10000),
            ),
        };
        let budget = std::time::Duration::from_secs(1);
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        print!("{}", constnet::bench::run(&train, &test, true, threads, budget).table());
    }
}

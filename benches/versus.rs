//! The SIMD kernels against `matrixmultiply` and against the FMA peak, interleaved.
//!
//! The machines this runs on are shared: their speed changes from one minute to the next,
//! often for every kernel at once. Criterion times each function for seconds on its own, so two
//! functions of one group can see two different machines. Here every round times the FMA peak,
//! then for each shape the SIMD kernel and `matrixmultiply` back to back (a few milliseconds
//! apart); the figures are medians over rounds of each round's own ratios.
//!
//! Run: `cargo bench --bench versus` (prints a markdown table).

mod common;

use common::sgemm;
use constnet::bench::Product;
use constnet::kernels::{self, Backend, FmaPeak, Simd};
use std::hint::black_box;
use std::time::Instant;

const BATCH: usize = 64;
const ROUNDS: usize = 41;

/// Seconds per call of `f`, timed over enough calls to last about 2 ms.
fn time(mut f: impl FnMut()) -> f64 {
    f();
    let t = Instant::now();
    f();
    let once = t.elapsed().as_secs_f64().max(1e-7);
    let calls = ((2e-3 / once) as usize).clamp(1, 100_000);
    let t = Instant::now();
    for _ in 0..calls {
        f();
    }
    t.elapsed().as_secs_f64() / calls as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; any other run (`cargo test --benches`) only checks it runs.
    let rounds = if std::env::args().any(|a| a == "--bench") {
        ROUNDS
    } else {
        1
    };
    let mut products = Product::all(BATCH);
    let iters = 100_000;
    let (mut peaks, mut simd, mut peer) = (
        Vec::new(),
        vec![Vec::new(); products.len()],
        vec![Vec::new(); products.len()],
    );
    for _ in 0..rounds {
        let op = || FmaPeak {
            iters: black_box(iters),
            m: black_box(0.999),
            a: black_box(1e-3),
        };
        let peak = op().flops(kernels::selected().lanes()) as f64
            / time(|| {
                black_box(Simd::run(op()));
            });
        peaks.push(peak);
        for (i, product) in products.iter_mut().enumerate() {
            let flops = product.flops();
            let s = flops / time(|| product.run::<Simd>());
            let p = flops / time(|| sgemm(product.gemm()));
            simd[i].push((s, s / peak));
            peer[i].push((p, s / p));
        }
    }
    println!(
        "kernels {}, {rounds} interleaved rounds; medians over rounds\n",
        kernels::selected()
    );
    println!(
        "FMA peak (one core): {:.1} GFLOP/s\n",
        median(peaks.clone()) / 1e9
    );
    println!(
        "| product | simd GFLOP/s | % of peak | matrixmultiply GFLOP/s | simd ÷ matrixmultiply |"
    );
    println!("|---|---|---|---|---|");
    for (i, product) in products.iter().enumerate() {
        println!(
            "| {} | {:.1} | {:.0} % | {:.1} | {:.2}× |",
            product.name(),
            median(simd[i].iter().map(|s| s.0).collect()) / 1e9,
            100.0 * median(simd[i].iter().map(|s| s.1).collect()),
            median(peer[i].iter().map(|p| p.0).collect()) / 1e9,
            median(peer[i].iter().map(|p| p.1).collect()),
        );
    }
}

//! Kernel throughput in FLOP/s: the SIMD kernel, its scalar reference and `matrixmultiply`'s
//! `sgemm` on the same operands in the same run, for every product of one batch-64 training
//! step of the reference MLP (784→256→128→64→10), the single-sample GEMV shapes, and the
//! machine's FMA peak so each figure reads as a fraction of the physical limit.
//!
//! Run: `cargo bench --bench kernels`, then `python3 benches/table.py` for the table of medians.
//! Group names: `{product}/{IN}x{OUT}/b{B}`; functions `simd`, `reference`, `matrixmultiply`.

mod common;

use common::sgemm;
use constnet::bench::Product;
use constnet::kernels::{self, Backend, FmaPeak, Reference, Simd};
use criterion::{
    BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main, measurement::WallTime,
};
use std::hint::black_box;
use std::time::Duration;

fn group<'a>(c: &'a mut Criterion, name: String, flops: u64) -> BenchmarkGroup<'a, WallTime> {
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Elements(flops));
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(2));
    g.sample_size(30);
    g
}

fn fma_peak(c: &mut Criterion) {
    let isa = kernels::selected();
    eprintln!("kernels: {isa}");
    let peak = |iters| FmaPeak {
        iters,
        m: black_box(0.999),
        a: black_box(1e-3),
    };
    let iters = 100_000;
    let mut g = group(c, "fma_peak".into(), peak(iters).flops(isa.lanes()));
    g.bench_function("simd", |b| b.iter(|| Simd::run(peak(black_box(iters)))));
    g.finish();
}

/// Every product of a batch-64 step and the GEMVs, each a group of three functions.
fn products(c: &mut Criterion) {
    for mut product in Product::all(64) {
        let mut g = group(c, product.name(), product.flops() as u64);
        g.bench_function("simd", |b| b.iter(|| product.run::<Simd>()));
        g.bench_function("reference", |b| b.iter(|| product.run::<Reference>()));
        g.bench_function("matrixmultiply", |b| b.iter(|| sgemm(product.gemm())));
        g.finish();
    }
}

criterion_group!(benches, fma_peak, products);
criterion_main!(benches);

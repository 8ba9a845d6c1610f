//! Kernel throughput in FLOP/s: the SIMD kernel, its scalar reference and `matrixmultiply`'s
//! `sgemm` on the same operands in the same run, for every product of one batch-64 training
//! step of the reference MLP (784→256→128→64→10), the single-sample GEMV shapes, and the
//! machine's FMA peak so each figure reads as a fraction of the physical limit.
//!
//! Run: `cargo bench --bench kernels`, then `python3 benches/table.py` for the table of medians.
//! Group names: `{product}/{IN}x{OUT}/b{B}`; functions `simd`, `reference`, `matrixmultiply`.

mod common;

use common::{filled, sgemm};
use constnet::AlignedVec;
use constnet::kernels::{self, Activation, InputGrad, Mode, reference};
use criterion::{
    BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main, measurement::WallTime,
};
use std::hint::black_box;
use std::time::Duration;

/// The reference network's layer widths.
const WIDTHS: [usize; 5] = [784, 256, 128, 64, 10];
const BATCH: usize = 64;

fn group<'a>(c: &'a mut Criterion, name: String, flops: usize) -> BenchmarkGroup<'a, WallTime> {
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Elements(flops as u64));
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(2));
    g.sample_size(30);
    g
}

fn fma_peak(c: &mut Criterion) {
    eprintln!(
        "kernels compiled for: {} ({} f32 lanes)",
        kernels::simd_backend(),
        kernels::LANES
    );
    let iters = 100_000;
    let mut g = group(
        c,
        "fma_peak".into(),
        kernels::fma_peak_flops(iters) as usize,
    );
    g.bench_function("simd", |b| {
        b.iter(|| kernels::fma_peak(black_box(iters), black_box(0.999), black_box(1e-3)))
    });
    g.finish();
}

fn forward(c: &mut Criterion) {
    for l in 0..4 {
        let (inp, out) = (WIDTHS[l], WIDTHS[l + 1]);
        let act = if l < 3 {
            Activation::Relu
        } else {
            Activation::Identity
        };
        let (w, bias, x) = (filled(out * inp, 1), filled(out, 2), filled(inp * BATCH, 3));
        let mut y = AlignedVec::zeroed(out * BATCH);
        let mut g = group(
            c,
            format!("forward/{inp}x{out}/b{BATCH}"),
            2 * out * inp * BATCH,
        );
        g.bench_function("simd", |b| {
            b.iter(|| {
                kernels::dense_forward(
                    out,
                    inp,
                    BATCH,
                    black_box(&w),
                    &bias,
                    black_box(&x),
                    &mut y,
                    act,
                )
            })
        });
        g.bench_function("reference", |b| {
            b.iter(|| {
                reference::dense_forward(
                    out,
                    inp,
                    BATCH,
                    black_box(&w),
                    &bias,
                    black_box(&x),
                    &mut y,
                    act,
                )
            })
        });
        g.bench_function("matrixmultiply", |b| {
            b.iter(|| sgemm(out, BATCH, inp, black_box(&w), false, black_box(&x), &mut y))
        });
        g.finish();
    }
}

fn weight_grad(c: &mut Criterion) {
    for l in 0..4 {
        let (inp, out) = (WIDTHS[l], WIDTHS[l + 1]);
        let (dz, x_rows) = (filled(out * BATCH, 4), filled(BATCH * inp, 5));
        let (mut dw, mut db) = (AlignedVec::zeroed(out * inp), AlignedVec::zeroed(out));
        let mut g = group(
            c,
            format!("weight_grad/{inp}x{out}/b{BATCH}"),
            2 * out * inp * BATCH,
        );
        g.bench_function("simd", |b| {
            b.iter(|| {
                kernels::dense_backward_weights(
                    out,
                    inp,
                    BATCH,
                    black_box(&dz),
                    black_box(&x_rows),
                    &mut dw,
                    &mut db,
                    Mode::Overwrite,
                )
            })
        });
        g.bench_function("reference", |b| {
            b.iter(|| {
                reference::dense_backward_weights(
                    out,
                    inp,
                    BATCH,
                    black_box(&dz),
                    black_box(&x_rows),
                    &mut dw,
                    &mut db,
                    Mode::Overwrite,
                )
            })
        });
        g.bench_function("matrixmultiply", |b| {
            b.iter(|| {
                sgemm(
                    out,
                    inp,
                    BATCH,
                    black_box(&dz),
                    false,
                    black_box(&x_rows),
                    &mut dw,
                )
            })
        });
        g.finish();
    }
}

fn input_grad(c: &mut Criterion) {
    // The first layer's input gradient is never needed, so it is not benchmarked.
    for l in 1..4 {
        let (inp, out) = (WIDTHS[l], WIDTHS[l + 1]);
        let (w, dz, x) = (
            filled(out * inp, 6),
            filled(out * BATCH, 7),
            filled(inp * BATCH, 8),
        );
        let mut dx = AlignedVec::zeroed(inp * BATCH);
        let grad = InputGrad::Relu { x: &x, scale: 1.0 };
        let mut g = group(
            c,
            format!("input_grad/{inp}x{out}/b{BATCH}"),
            2 * out * inp * BATCH,
        );
        g.bench_function("simd", |b| {
            b.iter(|| {
                kernels::dense_backward_input(
                    out,
                    inp,
                    BATCH,
                    black_box(&w),
                    black_box(&dz),
                    grad,
                    &mut dx,
                )
            })
        });
        g.bench_function("reference", |b| {
            b.iter(|| {
                reference::dense_backward_input(
                    out,
                    inp,
                    BATCH,
                    black_box(&w),
                    black_box(&dz),
                    grad,
                    &mut dx,
                )
            })
        });
        g.bench_function("matrixmultiply", |b| {
            b.iter(|| {
                sgemm(
                    inp,
                    BATCH,
                    out,
                    black_box(&w),
                    true,
                    black_box(&dz),
                    &mut dx,
                )
            })
        });
        g.finish();
    }
}

fn gemv(c: &mut Criterion) {
    for l in 0..4 {
        let (inp, out) = (WIDTHS[l], WIDTHS[l + 1]);
        let act = if l < 3 {
            Activation::Relu
        } else {
            Activation::Identity
        };
        let (w, bias, x) = (filled(out * inp, 9), filled(out, 10), filled(inp, 11));
        let mut y = AlignedVec::zeroed(out);
        let mut g = group(c, format!("gemv/{inp}x{out}/b1"), 2 * out * inp);
        g.bench_function("simd", |b| {
            b.iter(|| {
                kernels::dense_forward_one(
                    out,
                    inp,
                    black_box(&w),
                    &bias,
                    black_box(&x),
                    &mut y,
                    act,
                )
            })
        });
        g.bench_function("reference", |b| {
            b.iter(|| {
                reference::dense_forward_one(
                    out,
                    inp,
                    black_box(&w),
                    &bias,
                    black_box(&x),
                    &mut y,
                    act,
                )
            })
        });
        g.bench_function("matrixmultiply", |b| {
            b.iter(|| sgemm(out, 1, inp, black_box(&w), false, black_box(&x), &mut y))
        });
        g.finish();
    }
}

criterion_group!(benches, fma_peak, forward, weight_grad, input_grad, gemv);
criterion_main!(benches);

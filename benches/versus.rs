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

use common::{filled, sgemm};
use constnet::AlignedVec;
use constnet::kernels::{self, Activation, InputGrad, Mode};
use std::hint::black_box;
use std::time::Instant;

const WIDTHS: [usize; 5] = [784, 256, 128, 64, 10];
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

struct Case {
    name: String,
    flops: f64,
    simd: Box<dyn FnMut()>,
    peer: Box<dyn FnMut()>,
}

fn cases() -> Vec<Case> {
    let mut all = Vec::new();
    for l in 0..4 {
        let (inp, out) = (WIDTHS[l], WIDTHS[l + 1]);
        let flops = (2 * out * inp * BATCH) as f64;
        let act = if l < 3 {
            Activation::Relu
        } else {
            Activation::Identity
        };
        let (w, bias, x) = (filled(out * inp, 1), filled(out, 2), filled(inp * BATCH, 3));
        let (w2, x2) = (w.clone(), x.clone());
        let (mut y, mut y2) = (
            AlignedVec::zeroed(out * BATCH),
            AlignedVec::zeroed(out * BATCH),
        );
        all.push(Case {
            name: format!("forward/{inp}x{out}/b{BATCH}"),
            flops,
            simd: Box::new(move || {
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
            }),
            peer: Box::new(move || {
                sgemm(
                    out,
                    BATCH,
                    inp,
                    black_box(&w2),
                    false,
                    black_box(&x2),
                    &mut y2,
                )
            }),
        });
        let (dz, x_rows) = (filled(out * BATCH, 4), filled(BATCH * inp, 5));
        let (dz2, x_rows2) = (dz.clone(), x_rows.clone());
        let (mut dw, mut db, mut dw2) = (
            AlignedVec::zeroed(out * inp),
            AlignedVec::zeroed(out),
            AlignedVec::zeroed(out * inp),
        );
        all.push(Case {
            name: format!("weight_grad/{inp}x{out}/b{BATCH}"),
            flops,
            simd: Box::new(move || {
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
            }),
            peer: Box::new(move || {
                sgemm(
                    out,
                    inp,
                    BATCH,
                    black_box(&dz2),
                    false,
                    black_box(&x_rows2),
                    &mut dw2,
                )
            }),
        });
        if l > 0 {
            let (w, dz, x) = (
                filled(out * inp, 6),
                filled(out * BATCH, 7),
                filled(inp * BATCH, 8),
            );
            let (w2, dz2) = (w.clone(), dz.clone());
            let (mut dx, mut dx2) = (
                AlignedVec::zeroed(inp * BATCH),
                AlignedVec::zeroed(inp * BATCH),
            );
            all.push(Case {
                name: format!("input_grad/{inp}x{out}/b{BATCH}"),
                flops,
                simd: Box::new(move || {
                    let grad = InputGrad::Relu { x: &x, scale: 1.0 };
                    kernels::dense_backward_input(
                        out,
                        inp,
                        BATCH,
                        black_box(&w),
                        black_box(&dz),
                        grad,
                        &mut dx,
                    )
                }),
                peer: Box::new(move || {
                    sgemm(
                        inp,
                        BATCH,
                        out,
                        black_box(&w2),
                        true,
                        black_box(&dz2),
                        &mut dx2,
                    )
                }),
            });
        }
        let (w, bias, x) = (filled(out * inp, 9), filled(out, 10), filled(inp, 11));
        let (w2, x2) = (w.clone(), x.clone());
        let (mut y, mut y2) = (AlignedVec::zeroed(out), AlignedVec::zeroed(out));
        all.push(Case {
            name: format!("gemv/{inp}x{out}/b1"),
            flops: (2 * out * inp) as f64,
            simd: Box::new(move || {
                kernels::dense_forward_one(
                    out,
                    inp,
                    black_box(&w),
                    &bias,
                    black_box(&x),
                    &mut y,
                    act,
                )
            }),
            peer: Box::new(move || {
                sgemm(out, 1, inp, black_box(&w2), false, black_box(&x2), &mut y2)
            }),
        });
    }
    all
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
    let mut cases = cases();
    let iters = 100_000;
    let (mut peaks, mut simd, mut peer) = (
        Vec::new(),
        vec![Vec::new(); cases.len()],
        vec![Vec::new(); cases.len()],
    );
    for _ in 0..rounds {
        let peak = kernels::fma_peak_flops(iters) as f64
            / time(|| {
                black_box(kernels::fma_peak(
                    black_box(iters),
                    black_box(0.999),
                    black_box(1e-3),
                ));
            });
        peaks.push(peak);
        for (i, case) in cases.iter_mut().enumerate() {
            let s = case.flops / time(&mut case.simd);
            let p = case.flops / time(&mut case.peer);
            simd[i].push((s, s / peak));
            peer[i].push((p, s / p));
        }
    }
    println!(
        "kernels {} ({} lanes), {rounds} interleaved rounds; medians over rounds\n",
        kernels::simd_backend(),
        kernels::LANES
    );
    println!(
        "FMA peak (one core): {:.1} GFLOP/s\n",
        median(peaks.clone()) / 1e9
    );
    println!(
        "| product | simd GFLOP/s | % of peak | matrixmultiply GFLOP/s | simd ÷ matrixmultiply |"
    );
    println!("|---|---|---|---|---|");
    for (i, case) in cases.iter().enumerate() {
        println!(
            "| {} | {:.1} | {:.0} % | {:.1} | {:.2}× |",
            case.name,
            median(simd[i].iter().map(|s| s.0).collect()) / 1e9,
            100.0 * median(simd[i].iter().map(|s| s.1).collect()),
            median(peer[i].iter().map(|p| p.0).collect()) / 1e9,
            median(peer[i].iter().map(|p| p.1).collect()),
        );
    }
}

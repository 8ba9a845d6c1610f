//! Every kernel path against the scalar reference, on a grid of edge shapes, the MLP's real
//! shapes and random shapes with m, n, k in 1..=300. Each test is a generic function run once
//! per path this CPU supports ([`on_every_path!`]): `avx512::gemm_matches_reference`,
//! `avx2::…`, `sse2::…`, `scalar::…`.
//!
//! Three kinds of check:
//! - random floats, compared within the summation error bound ([`common::dot_tolerance`]);
//! - small integers, where every sum is exact, so the fused epilogues (bias, ReLU, mask, scale)
//!   must match the reference bit for bit;
//! - edge-biased values (±0, ±1, subnormal, ±inf, NaN), where NaN and infinities must land in
//!   the same places.

mod common;

use common::*;
use constnet::kernels::{
    self, Activation, Backend, DenseBackwardInput, DenseBackwardWeights, DenseForward,
    DenseForwardOne, Dims, Gemm, Gemv, InputGrad, Isa, LoadU8Batch, Mode, Reference, Shard,
    Transpose, WARP_SIDE, Warp, WarpField, WarpScratch, WeightGradients,
};

on_every_path!(
    gemm_matches_reference,
    gemm_is_exact_on_small_integers,
    gemm_propagates_nan_and_inf_like_the_reference,
    dense_forward_matches_reference,
    dense_backward_input_matches_reference,
    dense_backward_weights_matches_reference,
    fused_epilogues_are_exact_on_small_integers,
    relu_propagates_nan_and_mask_zeroes_it,
    gemv_and_dense_forward_one_match_reference,
    transpose_matches_reference_exactly,
    load_u8_batch_matches_reference_exactly,
    warp_matches_reference_exactly,
    weight_gradients_over_shards_match_reference,
    shards_of_whole_vectors_give_the_bits_of_one,
);

/// `C (mode)= op(A)·B` on backend `K`.
#[allow(clippy::too_many_arguments)]
fn gemm<K: Backend>(
    a_transposed: bool,
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
    mode: Mode,
) {
    K::run(Gemm {
        m,
        n,
        k,
        a,
        a_transposed,
        b,
        c,
        mode,
    });
}

/// `gemm_nn` / `gemm_tn` on `K`, the two products the tests compare.
fn gemm_nn<K: Backend>(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
    mode: Mode,
) {
    gemm::<K>(false, m, n, k, a, b, c, mode)
}
fn gemm_tn<K: Backend>(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
    mode: Mode,
) {
    gemm::<K>(true, m, n, k, a, b, c, mode)
}

/// Backend `K`'s vector width and tile, the sizes whose neighbours are its edge cases.
fn widths<K: Backend>() -> (usize, usize, usize) {
    let isa = K::isa().expect("a kernel path");
    let (mr, nr) = isa.tile();
    (isa.lanes(), mr, nr)
}

/// (m, n, k) triples: tails around every blocking size, zeros, the reference MLP's products at
/// batch 64, 32 (the last partial batch of an MNIST epoch) and 1, and random shapes.
fn shapes<K: Backend>(seed: u64, random: usize) -> Vec<(usize, usize, usize)> {
    let (lanes, mr, nr) = widths::<K>();
    let edges = [
        1,
        lanes.max(2) - 1,
        lanes + 1,
        mr + 1,
        nr,
        nr + 1,
        2 * nr + 3,
    ];
    let mut all = Vec::new();
    for &m in &edges {
        for &n in &edges {
            for &k in &[1, 7, nr + 1] {
                all.push((m, n, k));
            }
        }
    }
    all.extend([(0, 5, 3), (5, 0, 3), (5, 3, 0), (mr, nr, 0)]);
    for b in [64, 32, 1] {
        // forward W·x, weight gradient dz·x_rows, input gradient Wᵀ·dz
        all.extend([(256, b, 784), (128, b, 256), (64, b, 128), (10, b, 64)]);
        all.extend([(256, 784, b), (128, 256, b), (64, 128, b), (10, 64, b)]);
        all.extend([(256, b, 128), (128, b, 64), (64, b, 10)]);
    }
    let mut r = rng(seed);
    for _ in 0..random {
        all.push((
            int(&mut r, 1, 300),
            int(&mut r, 1, 300),
            int(&mut r, 1, 300),
        ));
    }
    all
}

fn abs(v: &[f32]) -> Vec<f32> {
    v.iter().map(|x| x.abs()).collect()
}

type GemmFn = fn(usize, usize, usize, &[f32], &[f32], &mut [f32], Mode);

fn check_gemm<K: Backend>(name: &str, fast: GemmFn, slow: GemmFn) {
    let mut r = rng(1);
    for (case, &(m, n, k)) in shapes::<K>(2, 60).iter().enumerate() {
        let a = floats(&mut r, m * k);
        let b = floats(&mut r, k * n);
        let mut bound = vec![0.0; m * n];
        slow(m, n, k, &abs(&a), &abs(&b), &mut bound, Mode::Overwrite);

        // Overwrite: C starts as NaN and must not be read.
        let mut want = vec![0.0; m * n];
        slow(m, n, k, &a, &b, &mut want, Mode::Overwrite);
        let mut got = vec![f32::NAN; m * n];
        fast(m, n, k, &a, &b, &mut got, Mode::Overwrite);
        let label = format!("{name} overwrite case {case} m={m} n={n} k={k}");
        assert_close(&label, &got, &want, |i| dot_tolerance(k, bound[i], 0, 0.0));

        // Accumulate: C starts non-zero and must be added to.
        let c0 = floats(&mut r, m * n);
        let mut want = c0.clone();
        slow(m, n, k, &a, &b, &mut want, Mode::Accumulate);
        let mut got = c0.clone();
        fast(m, n, k, &a, &b, &mut got, Mode::Accumulate);
        let label = format!("{name} accumulate case {case} m={m} n={n} k={k}");
        assert_close(&label, &got, &want, |i| {
            dot_tolerance(k, bound[i], 1, c0[i].abs() + bound[i])
        });
    }
}

fn gemm_matches_reference<K: Backend>() {
    check_gemm::<K>("gemm_nn", gemm_nn::<K>, gemm_nn::<Reference>);
    check_gemm::<K>("gemm_tn", gemm_tn::<K>, gemm_tn::<Reference>);
}

fn gemm_is_exact_on_small_integers<K: Backend>() {
    let mut r = rng(3);
    for &(m, n, k) in &shapes::<K>(4, 20) {
        let a = small_ints(&mut r, m * k);
        let b = small_ints(&mut r, k * n);
        let c0 = small_ints(&mut r, m * n);
        for mode in [Mode::Overwrite, Mode::Accumulate] {
            for (name, fast, slow) in [
                (
                    "gemm_nn",
                    gemm_nn::<K> as GemmFn,
                    gemm_nn::<Reference> as GemmFn,
                ),
                ("gemm_tn", gemm_tn::<K>, gemm_tn::<Reference>),
            ] {
                let (mut got, mut want) = (c0.clone(), c0.clone());
                fast(m, n, k, &a, &b, &mut got, mode);
                slow(m, n, k, &a, &b, &mut want, mode);
                assert_exact(&format!("{name} {mode:?} m={m} n={n} k={k}"), &got, &want);
            }
        }
    }
}

fn gemm_propagates_nan_and_inf_like_the_reference<K: Backend>() {
    let mut r = rng(5);
    for &(m, n, k) in &shapes::<K>(6, 20) {
        let a = edge_biased(&mut r, m * k);
        let b = edge_biased(&mut r, k * n);
        for (name, fast, slow) in [
            (
                "gemm_nn",
                gemm_nn::<K> as GemmFn,
                gemm_nn::<Reference> as GemmFn,
            ),
            ("gemm_tn", gemm_tn::<K>, gemm_tn::<Reference>),
        ] {
            let mut bound = vec![0.0; m * n];
            slow(m, n, k, &abs(&a), &abs(&b), &mut bound, Mode::Overwrite);
            let mut want = vec![0.0; m * n];
            slow(m, n, k, &a, &b, &mut want, Mode::Overwrite);
            let mut got = vec![0.0; m * n];
            fast(m, n, k, &a, &b, &mut got, Mode::Overwrite);
            assert_close(
                &format!("{name} edge m={m} n={n} k={k}"),
                &got,
                &want,
                |i| dot_tolerance(k, bound[i], 0, 0.0),
            );
        }
    }
}

/// Layer shapes (out, inp, batch) drawn from the same grid: m ↔ out, k ↔ inp, n ↔ batch.
fn layer_shapes<K: Backend>() -> Vec<(usize, usize, usize)> {
    shapes::<K>(7, 40)
        .into_iter()
        .map(|(m, n, k)| (m, k, n))
        .collect()
}

/// `y = act(W·x + bias)` on `K`.
#[allow(clippy::too_many_arguments)]
fn dense_forward<K: Backend>(
    (out, inp, batch): (usize, usize, usize),
    w: &[f32],
    bias: &[f32],
    x: &[f32],
    y: &mut [f32],
    act: Activation,
) {
    let dims = Dims { out, inp, batch };
    K::run(DenseForward {
        dims,
        w,
        bias,
        x,
        y,
        act,
    });
}

/// `dx = Wᵀ·dz` through `grad` on `K`.
fn dense_backward_input<K: Backend>(
    (out, inp, batch): (usize, usize, usize),
    w: &[f32],
    dz: &[f32],
    grad: InputGrad<'_>,
    dx: &mut [f32],
) {
    let dims = Dims { out, inp, batch };
    K::run(DenseBackwardInput {
        dims,
        w,
        dz,
        grad,
        dx,
    });
}

/// `dw, db (mode)= …` on `K`.
fn dense_backward_weights<K: Backend>(
    (out, inp, batch): (usize, usize, usize),
    dz: &[f32],
    x_rows: &[f32],
    (dw, db): (&mut [f32], &mut [f32]),
    mode: Mode,
) {
    let dims = Dims { out, inp, batch };
    K::run(DenseBackwardWeights {
        dims,
        dz,
        x_rows,
        dw,
        db,
        mode,
    });
}

fn dense_forward_matches_reference<K: Backend>() {
    let mut r = rng(8);
    for &(out, inp, batch) in &layer_shapes::<K>() {
        let shape = (out, inp, batch);
        let w = floats(&mut r, out * inp);
        let bias = floats(&mut r, out);
        let x = floats(&mut r, inp * batch);
        let mut bound = vec![0.0; out * batch];
        gemm_nn::<Reference>(
            out,
            batch,
            inp,
            &abs(&w),
            &abs(&x),
            &mut bound,
            Mode::Overwrite,
        );
        for act in [Activation::Identity, Activation::Relu] {
            let mut want = vec![0.0; out * batch];
            dense_forward::<Reference>(shape, &w, &bias, &x, &mut want, act);
            let mut got = vec![f32::NAN; out * batch];
            dense_forward::<K>(shape, &w, &bias, &x, &mut got, act);
            let label = format!("dense_forward {act:?} out={out} inp={inp} batch={batch}");
            assert_close(&label, &got, &want, |i| {
                dot_tolerance(inp, bound[i], 1, bound[i] + bias[i / batch.max(1)].abs())
            });
        }
    }
}

/// A ReLU output to mask with: a third negative-or-zero entries are 0, some NaN, the rest > 0.
fn relu_output(r: &mut rand_xoshiro::Xoshiro256PlusPlus, n: usize) -> Vec<f32> {
    (0..n)
        .map(|_| match int(r, 0, 9) {
            0..=2 => 0.0,
            3 => -0.0,
            4 => f32::NAN,
            _ => uniform(r, 0.0, 2.0),
        })
        .collect()
}

fn dense_backward_input_matches_reference<K: Backend>() {
    let mut r = rng(9);
    for &(out, inp, batch) in &layer_shapes::<K>() {
        let shape = (out, inp, batch);
        let w = floats(&mut r, out * inp);
        let dz = floats(&mut r, out * batch);
        let x = relu_output(&mut r, inp * batch);
        let mut bound = vec![0.0; inp * batch];
        gemm_tn::<Reference>(
            inp,
            batch,
            out,
            &abs(&w),
            &abs(&dz),
            &mut bound,
            Mode::Overwrite,
        );
        for grad in [
            InputGrad::Linear,
            InputGrad::Relu { x: &x, scale: 1.0 },
            InputGrad::Relu { x: &x, scale: 1.25 },
        ] {
            let mut want = vec![0.0; inp * batch];
            dense_backward_input::<Reference>(shape, &w, &dz, grad, &mut want);
            let mut got = vec![f32::NAN; inp * batch];
            dense_backward_input::<K>(shape, &w, &dz, grad, &mut got);
            let label = format!("dense_backward_input {grad:?} out={out} inp={inp} batch={batch}")
                .chars()
                .take(200)
                .collect::<String>();
            assert_close(&label, &got, &want, |i| {
                1.25 * dot_tolerance(out, bound[i], 1, bound[i])
            });
        }
    }
}

fn dense_backward_weights_matches_reference<K: Backend>() {
    let mut r = rng(10);
    for &(out, inp, batch) in &layer_shapes::<K>() {
        let shape = (out, inp, batch);
        let dz = floats(&mut r, out * batch);
        let x_rows = floats(&mut r, batch * inp);
        let mut bound = vec![0.0; out * inp];
        gemm_nn::<Reference>(
            out,
            inp,
            batch,
            &abs(&dz),
            &abs(&x_rows),
            &mut bound,
            Mode::Overwrite,
        );
        let db_bound: Vec<f32> = (0..out)
            .map(|o| dz[o * batch..][..batch].iter().map(|v| v.abs()).sum())
            .collect();
        for mode in [Mode::Overwrite, Mode::Accumulate] {
            let dw0 = floats(&mut r, out * inp);
            let db0 = floats(&mut r, out);
            let (mut want_w, mut want_b) = (dw0.clone(), db0.clone());
            dense_backward_weights::<Reference>(
                shape,
                &dz,
                &x_rows,
                (&mut want_w, &mut want_b),
                mode,
            );
            let (mut got_w, mut got_b) = if mode == Mode::Overwrite {
                (vec![f32::NAN; out * inp], vec![f32::NAN; out])
            } else {
                (dw0.clone(), db0.clone())
            };
            dense_backward_weights::<K>(shape, &dz, &x_rows, (&mut got_w, &mut got_b), mode);
            let label =
                format!("dense_backward_weights {mode:?} out={out} inp={inp} batch={batch}");
            assert_close(&format!("{label} dw"), &got_w, &want_w, |i| {
                dot_tolerance(batch, bound[i], 1, bound[i] + dw0[i].abs())
            });
            assert_close(&format!("{label} db"), &got_b, &want_b, |i| {
                dot_tolerance(batch, db_bound[i], 1, db_bound[i] + db0[i].abs())
            });
        }
    }
}

fn fused_epilogues_are_exact_on_small_integers<K: Backend>() {
    let mut r = rng(11);
    for &(out, inp, batch) in &layer_shapes::<K>() {
        let dims = (out, inp, batch);
        let w = small_ints(&mut r, out * inp);
        let bias = small_ints(&mut r, out);
        let x = small_ints(&mut r, inp * batch);
        let dz = small_ints(&mut r, out * batch);
        let x_rows = small_ints(&mut r, batch * inp);
        let mask = relu_output(&mut r, inp * batch);
        let shape = format!("out={out} inp={inp} batch={batch}");
        for act in [Activation::Identity, Activation::Relu] {
            let (mut got, mut want) = (vec![0.0; out * batch], vec![0.0; out * batch]);
            dense_forward::<K>(dims, &w, &bias, &x, &mut got, act);
            dense_forward::<Reference>(dims, &w, &bias, &x, &mut want, act);
            assert_exact(&format!("dense_forward {act:?} {shape}"), &got, &want);
        }
        for grad in [
            InputGrad::Linear,
            InputGrad::Relu {
                x: &mask,
                scale: 0.5,
            },
        ] {
            let (mut got, mut want) = (vec![0.0; inp * batch], vec![0.0; inp * batch]);
            dense_backward_input::<K>(dims, &w, &dz, grad, &mut got);
            dense_backward_input::<Reference>(dims, &w, &dz, grad, &mut want);
            assert_exact(&format!("dense_backward_input {shape}"), &got, &want);
        }
        let (mut gw, mut gb) = (vec![0.0; out * inp], vec![0.0; out]);
        let (mut ww, mut wb) = (vec![0.0; out * inp], vec![0.0; out]);
        dense_backward_weights::<K>(dims, &dz, &x_rows, (&mut gw, &mut gb), Mode::Overwrite);
        dense_backward_weights::<Reference>(
            dims,
            &dz,
            &x_rows,
            (&mut ww, &mut wb),
            Mode::Overwrite,
        );
        assert_exact(&format!("dense_backward_weights dw {shape}"), &gw, &ww);
        assert_exact(&format!("dense_backward_weights db {shape}"), &gb, &wb);
    }
}

fn relu_propagates_nan_and_mask_zeroes_it<K: Backend>() {
    // One NaN bias poisons its whole output row under both activations.
    let (out, inp, batch) = (3, 5, 17);
    let w = vec![0.5; out * inp];
    let x = vec![1.0; inp * batch];
    let bias = [0.0, f32::NAN, -10.0];
    let mut y = vec![0.0; out * batch];
    dense_forward::<K>((out, inp, batch), &w, &bias, &x, &mut y, Activation::Relu);
    assert!(y[..batch].iter().all(|&v| v == 2.5));
    assert!(
        y[batch..2 * batch].iter().all(|v| v.is_nan()),
        "relu(NaN) must be NaN"
    );
    assert!(y[2 * batch..].iter().all(|&v| v == 0.0));
    // A NaN activation masks its gradient to zero; a NaN gradient survives an open mask.
    let dz = vec![f32::NAN; out * batch];
    let mut mask = vec![1.0; inp * batch];
    mask[0] = f32::NAN;
    mask[1] = 0.0;
    let mut dx = vec![0.0; inp * batch];
    let grad = InputGrad::Relu {
        x: &mask,
        scale: 1.0,
    };
    dense_backward_input::<K>((out, inp, batch), &w, &dz, grad, &mut dx);
    assert_eq!(dx[0], 0.0);
    assert_eq!(dx[1], 0.0);
    assert!(dx[2..].iter().all(|v| v.is_nan()));
}

fn gemv<K: Backend>(m: usize, k: usize, a: &[f32], x: &[f32], y: &mut [f32], mode: Mode) {
    K::run(Gemv {
        m,
        k,
        a,
        x,
        y,
        mode,
    });
}

fn dense_forward_one<K: Backend>(
    (out, inp): (usize, usize),
    w: &[f32],
    bias: &[f32],
    x: &[f32],
    y: &mut [f32],
    act: Activation,
) {
    K::run(DenseForwardOne {
        out,
        inp,
        w,
        bias,
        x,
        y,
        act,
    });
}

fn gemv_and_dense_forward_one_match_reference<K: Backend>() {
    let mut r = rng(12);
    let mut cases: Vec<(usize, usize)> = vec![
        (256, 784),
        (128, 256),
        (64, 128),
        (10, 64),
        (1, 1),
        (0, 4),
        (4, 0),
    ];
    for _ in 0..80 {
        cases.push((int(&mut r, 1, 300), int(&mut r, 1, 300)));
    }
    for &(m, k) in &cases {
        let a = floats(&mut r, m * k);
        let x = floats(&mut r, k);
        let bias = floats(&mut r, m);
        let mut bound = vec![0.0; m];
        gemv::<Reference>(m, k, &abs(&a), &abs(&x), &mut bound, Mode::Overwrite);
        let y0 = floats(&mut r, m);
        for mode in [Mode::Overwrite, Mode::Accumulate] {
            let (mut got, mut want) = (y0.clone(), y0.clone());
            if mode == Mode::Overwrite {
                got.fill(f32::NAN);
            }
            gemv::<K>(m, k, &a, &x, &mut got, mode);
            gemv::<Reference>(m, k, &a, &x, &mut want, mode);
            assert_close(&format!("gemv {mode:?} m={m} k={k}"), &got, &want, |i| {
                dot_tolerance(k, bound[i], 1, bound[i] + y0[i].abs())
            });
        }
        for act in [Activation::Identity, Activation::Relu] {
            let mut got = vec![f32::NAN; m];
            let mut want = vec![0.0; m];
            dense_forward_one::<K>((m, k), &a, &bias, &x, &mut got, act);
            dense_forward_one::<Reference>((m, k), &a, &bias, &x, &mut want, act);
            assert_close(
                &format!("dense_forward_one {act:?} m={m} k={k}"),
                &got,
                &want,
                |i| dot_tolerance(k, bound[i], 1, bound[i] + bias[i].abs()),
            );
        }
        // Exact on integers.
        let ai = small_ints(&mut r, m * k);
        let xi = small_ints(&mut r, k);
        let (mut got, mut want) = (vec![0.0; m], vec![0.0; m]);
        gemv::<K>(m, k, &ai, &xi, &mut got, Mode::Overwrite);
        gemv::<Reference>(m, k, &ai, &xi, &mut want, Mode::Overwrite);
        assert_exact(&format!("gemv ints m={m} k={k}"), &got, &want);
    }
}

fn transpose_matches_reference_exactly<K: Backend>() {
    let mut r = rng(13);
    let mut cases = vec![
        (0, 3),
        (3, 0),
        (1, 1),
        (784, 64),
        (64, 784),
        (256, 64),
        (10, 64),
        (64, 10),
    ];
    for _ in 0..50 {
        cases.push((int(&mut r, 1, 100), int(&mut r, 1, 100)));
    }
    for &(rows, cols) in &cases {
        let src = edge_biased(&mut r, rows * cols);
        let mut got = vec![f32::NAN; rows * cols];
        let mut want = vec![0.0; rows * cols];
        K::run(Transpose {
            rows,
            cols,
            src: &src,
            dst: &mut got,
        });
        Reference::run(Transpose {
            rows,
            cols,
            src: &src,
            dst: &mut want,
        });
        assert_exact(&format!("transpose {rows}x{cols}"), &got, &want);
    }
}

fn load_u8_batch_matches_reference_exactly<K: Backend>() {
    let mut r = rng(14);
    let lanes = widths::<K>().0;
    for &(batch, features) in &[
        (64, 784),
        (32, 784),
        (1, 784),
        (37, 13),
        (7, 1),
        (lanes + 1, lanes.max(2) - 1),
        (0, 5),
    ] {
        let images: Vec<Vec<u8>> = (0..batch)
            .map(|_| {
                (0..features + 3)
                    .map(|_| int(&mut r, 0, 255) as u8)
                    .collect()
            })
            .collect();
        let (mut rows, mut cols) = (
            vec![f32::NAN; batch * features],
            vec![f32::NAN; batch * features],
        );
        let (mut want_rows, mut want_cols) =
            (vec![0.0; batch * features], vec![0.0; batch * features]);
        let images_j = |j: usize| &images[j][..];
        K::run(LoadU8Batch {
            features,
            batch,
            images: images_j,
            rows: &mut rows,
            cols: &mut cols,
        });
        Reference::run(LoadU8Batch {
            features,
            batch,
            images: images_j,
            rows: &mut want_rows,
            cols: &mut want_cols,
        });
        assert_exact(
            &format!("load_u8_batch rows {batch}x{features}"),
            &rows,
            &want_rows,
        );
        assert_exact(
            &format!("load_u8_batch cols {batch}x{features}"),
            &cols,
            &want_cols,
        );
        if batch > 0 {
            assert_eq!(rows[0], f32::from(images[0][0]) / 255.0);
        }
    }
}

#[test]
#[should_panic(expected = "gemm: `b` holds 11 floats, its shape 3×4 needs 12")]
fn gemm_rejects_a_short_operand() {
    let mut c = vec![0.0; 8];
    gemm_nn::<kernels::Simd>(2, 4, 3, &[0.0; 6], &[0.0; 11], &mut c, Mode::Overwrite);
}

#[test]
#[should_panic(expected = "dense_forward: `bias` holds 3 floats, its shape 2×1 needs 2")]
fn dense_forward_rejects_a_wrong_bias() {
    let mut y = vec![0.0; 2 * 5];
    dense_forward::<kernels::Simd>(
        (2, 3, 5),
        &[0.0; 6],
        &[0.0; 3],
        &[0.0; 15],
        &mut y,
        Activation::Relu,
    );
}

#[test]
#[should_panic(expected = "dense_backward_input: `x` holds 14 floats, its shape 3×5 needs 15")]
fn dense_backward_input_rejects_a_wrong_mask() {
    let mut dx = vec![0.0; 15];
    let mask = [1.0; 14];
    let grad = InputGrad::Relu {
        x: &mask,
        scale: 1.0,
    };
    dense_backward_input::<kernels::Simd>((2, 3, 5), &[0.0; 6], &[0.0; 10], grad, &mut dx);
}

#[test]
#[should_panic(expected = "gemm: `b` holds 11 floats, its shape 3×4 needs 12")]
fn reference_rejects_a_short_operand_too() {
    let mut c = vec![0.0; 8];
    gemm_nn::<Reference>(2, 4, 3, &[0.0; 6], &[0.0; 11], &mut c, Mode::Overwrite);
}

#[test]
fn simd_runs_the_best_path_unless_told_otherwise() {
    let forced = std::env::var("CONSTNET_SIMD")
        .ok()
        .filter(|v| !v.is_empty());
    let want = match &forced {
        Some(name) => Isa::from_name(name).expect("CONSTNET_SIMD names a path"),
        None => kernels::best(),
    };
    assert_eq!(kernels::selected(), want);
    assert_eq!(kernels::simd_backend(), want.name());
    // The best path is the first supported one, and on x86-64 SSE2 always is.
    assert_eq!(kernels::best(), kernels::supported().next().unwrap());
    if cfg!(target_arch = "x86_64") {
        assert!(Isa::Sse2.is_supported() && !Isa::Portable.is_compiled());
    }
    assert!(Isa::Scalar.is_supported());
    for isa in Isa::ALL {
        assert_eq!(Isa::from_name(isa.name()), Some(isa));
        let (mr, nr) = isa.tile();
        assert_eq!(nr, 2 * isa.lanes());
        assert!(mr == 6 || mr == 8, "{isa}: tile rows {mr}");
    }
}

#[test]
fn a_path_the_cpu_lacks_is_refused_by_name() {
    for isa in Isa::ALL.into_iter().filter(|i| !i.is_supported()) {
        let e = kernels::select(isa).unwrap_err();
        assert!(e.to_string().contains(isa.name()), "{e}");
    }
    assert!(kernels::select(kernels::selected()).is_ok());
}

/// A batch of `sizes.iter().sum()` samples split into shards: each shard's dz `[out][n]` and
/// x_rows `[n][inp]`, drawn by `draw`.
fn shards_of(
    sizes: &[usize],
    out: usize,
    inp: usize,
    mut draw: impl FnMut(usize) -> Vec<f32>,
) -> Vec<(Vec<f32>, Vec<f32>, usize)> {
    sizes
        .iter()
        .map(|&n| (draw(out * n), draw(n * inp), n))
        .collect()
}

fn as_shards(owned: &[(Vec<f32>, Vec<f32>, usize)]) -> Vec<Shard<'_>> {
    owned
        .iter()
        .map(|(dz, x_rows, batch)| Shard {
            dz,
            x_rows,
            batch: *batch,
        })
        .collect()
}

/// Stores the gradients of `shards` into (dw, db) on backend `K`.
fn store_gradients<K: Backend>(
    (out, inp): (usize, usize),
    shards: &[Shard<'_>],
    (dw, db): (&mut [f32], &mut [f32]),
    mode: Mode,
) {
    K::run(WeightGradients {
        out,
        inp,
        shards,
        dw,
        db,
        mode,
    });
}

fn weight_gradients_over_shards_match_reference<K: Backend>() {
    let mut r = rng(15);
    let (lanes, _, nr) = widths::<K>();
    for case in 0..60 {
        let (out, inp) = (int(&mut r, 1, 70), int(&mut r, 1, 3 * nr + 5));
        let count = int(&mut r, 1, 4);
        let sizes: Vec<usize> = (0..count).map(|_| int(&mut r, 0, 2 * lanes + 3)).collect();
        let owned = shards_of(&sizes, out, inp, |n| floats(&mut r, n));
        let shards = as_shards(&owned);
        let abs_owned: Vec<_> = owned
            .iter()
            .map(|(dz, x, n)| (abs(dz), abs(x), *n))
            .collect();
        let (mut bound_w, mut bound_b) = (vec![0.0; out * inp], vec![0.0; out]);
        let dims = (out, inp);
        store_gradients::<Reference>(
            dims,
            &as_shards(&abs_owned),
            (&mut bound_w, &mut bound_b),
            Mode::Overwrite,
        );
        let k: usize = sizes.iter().sum();
        for mode in [Mode::Overwrite, Mode::Accumulate] {
            let (w0, b0) = (floats(&mut r, out * inp), floats(&mut r, out));
            let (mut want_w, mut want_b) = (w0.clone(), b0.clone());
            store_gradients::<Reference>(dims, &shards, (&mut want_w, &mut want_b), mode);
            let (mut got_w, mut got_b) = (w0.clone(), b0.clone());
            store_gradients::<K>(dims, &shards, (&mut got_w, &mut got_b), mode);
            let label = format!(
                "weight_gradients case {case} {mode:?} out={out} inp={inp} shards={sizes:?}"
            );
            assert_close(&format!("{label} dw"), &got_w, &want_w, |i| {
                dot_tolerance(k, bound_w[i], 1, bound_w[i] + w0[i].abs())
            });
            assert_close(&format!("{label} db"), &got_b, &want_b, |i| {
                dot_tolerance(k, bound_b[i], 1, bound_b[i] + b0[i].abs())
            });
        }
    }
}

fn shards_of_whole_vectors_give_the_bits_of_one<K: Backend>() {
    let mut r = rng(17);
    let lanes = widths::<K>().0;
    for &(out, inp, pieces) in &[(256, 784, 2), (10, 64, 4), (37, 29, 3)] {
        let n = lanes * 2;
        let owned = shards_of(&vec![n; pieces], out, inp, |len| floats(&mut r, len));
        // The same samples as one shard: dz rows side by side, x_rows one after another.
        let mut dz = vec![0.0; out * n * pieces];
        for o in 0..out {
            for (s, (sdz, _, _)) in owned.iter().enumerate() {
                dz[o * n * pieces + s * n..][..n].copy_from_slice(&sdz[o * n..][..n]);
            }
        }
        let x_rows: Vec<f32> = owned.iter().flat_map(|(_, x, _)| x.clone()).collect();
        let one = [Shard {
            dz: &dz,
            x_rows: &x_rows,
            batch: n * pieces,
        }];
        let (mut w1, mut b1, mut w2, mut b2) = (
            vec![0.0; out * inp],
            vec![0.0; out],
            vec![0.0; out * inp],
            vec![0.0; out],
        );
        store_gradients::<K>((out, inp), &one, (&mut w1, &mut b1), Mode::Overwrite);
        store_gradients::<K>(
            (out, inp),
            &as_shards(&owned),
            (&mut w2, &mut b2),
            Mode::Overwrite,
        );
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert!(
            bits(&w1) == bits(&w2) && bits(&b1) == bits(&b2),
            "{out}x{inp} in {pieces} shards"
        );
    }
}

/// Warps on `K` and on the reference: the same bytes, for every image size from 1 to 32 a
/// side (odd ones, the MNIST one, the largest), affine maps from the identity to ones that
/// send most points outside, fields from none to grids of every size with displacements of
/// tens of pixels, and maps that make the sample points infinite or NaN.
fn warp_matches_reference_exactly<K: Backend>() {
    let mut r = rng(41);
    let sides = [1, 2, 5, 15, 16, 17, 28, 31, WARP_SIDE];
    // One scratch for every case, sizes and all: what it holds must never matter.
    let mut scratch = WarpScratch::new();
    for case in 0..300 {
        let (rows, cols) = (sides[case % sides.len()], sides[case / 7 % sides.len()]);
        let src: Vec<u8> = (0..rows * cols)
            .map(|_| int(&mut r, 0, 255) as u8)
            .collect();
        let spread = [0.0, 0.3, 1.5, 40.0][case % 4];
        let mut inverse = [1.0, 0.0, 0.0, 1.0];
        for v in &mut inverse {
            *v += uniform(&mut r, -spread, spread);
        }
        if case % 50 == 7 {
            inverse[1] = f32::INFINITY; // points at ±inf and NaN
        }
        let shift = [
            uniform(&mut r, -spread, spread),
            uniform(&mut r, -spread, spread),
        ];
        let (ky, kx) = (int(&mut r, 1, WARP_SIDE), int(&mut r, 1, WARP_SIDE));
        let noise: Vec<f32> = (0..2 * ky * kx)
            .map(|_| uniform(&mut r, -1.0, 1.0))
            .collect();
        let weights = |r: &mut _, k: usize| -> Vec<f32> {
            (0..k * WARP_SIDE)
                .map(|_| uniform(r, 0.0, spread))
                .collect()
        };
        let (wy, wx) = (weights(&mut r, ky), weights(&mut r, kx));
        let field = (case % 3 != 0).then(|| WarpField {
            ky,
            kx,
            noise: &noise,
            wy: &wy,
            wx: &wx,
        });
        let (mut got, mut want) = (vec![7u8; rows * cols], vec![9u8; rows * cols]);
        K::run(Warp {
            rows,
            cols,
            src: &src,
            dst: &mut got,
            inverse,
            shift,
            field,
            scratch: &mut scratch,
        });
        Reference::run(Warp {
            rows,
            cols,
            src: &src,
            dst: &mut want,
            inverse,
            shift,
            field,
            scratch: &mut WarpScratch::new(),
        });
        if let Some(p) = (0..got.len()).find(|&p| got[p] != want[p]) {
            panic!(
                "warp case {case} ({rows}×{cols}, spread {spread}, field {}): pixel ({}, {}) \
                 is {}, the reference says {}",
                field.is_some(),
                p % cols,
                p / cols,
                got[p],
                want[p]
            );
        }
    }
}

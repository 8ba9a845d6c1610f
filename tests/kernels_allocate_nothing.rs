//! A counting global allocator proves that no kernel allocates, at every shape the networks
//! use and at tails that take the padded edge paths.

mod common;

use common::alloc_counter::{Counting, count};
use constnet::kernels::{
    Activation, Backend, DenseBackwardInput, DenseBackwardWeights, DenseForward, DenseForwardOne,
    Dims, Gemm, Gemv, InputGrad, Mode, Reference, Simd, Transpose, WARP_SIDE, Warp, WarpField,
    WarpScratch,
};

#[global_allocator]
static ALLOCATOR: Counting = Counting;

on_every_path!(kernels_allocate_nothing);

#[test]
fn dispatched_and_reference_kernels_allocate_nothing() {
    // Choosing the path reads CONSTNET_SIMD once per process; do that before counting.
    constnet::kernels::selected();
    kernels_allocate_nothing::<Simd>();
    kernels_allocate_nothing::<Reference>();
}

fn kernels_allocate_nothing<K: Backend>() {
    // (out, inp, batch): the reference MLP at batch 64 and a partial batch, plus odd tails.
    for (out, inp, batch) in [(256, 784, 64), (10, 64, 37), (7, 13, 1), (33, 29, 19)] {
        let w = vec![0.5f32; out * inp];
        let bias = vec![0.1f32; out];
        let x = vec![1.0f32; inp * batch];
        let x_rows = vec![1.0f32; batch * inp];
        let mut y = vec![0.0f32; out * batch];
        let dz = vec![0.25f32; out * batch];
        let mut dx = vec![0.0f32; inp * batch];
        let mut dw = vec![0.0f32; out * inp];
        let mut db = vec![0.0f32; out];
        let mut y1 = vec![0.0f32; out];
        let mut t = vec![0.0f32; inp * batch];
        let dims = Dims { out, inp, batch };
        let (_, allocations) = count(|| {
            let act = Activation::Relu;
            K::run(DenseForward {
                dims,
                w: &w,
                bias: &bias,
                x: &x,
                y: &mut y,
                act,
            });
            let grad = InputGrad::Relu { x: &x, scale: 1.0 };
            K::run(DenseBackwardInput {
                dims,
                w: &w,
                dz: &dz,
                grad,
                dx: &mut dx,
            });
            let (dw, db, mode) = (&mut dw[..], &mut db[..], Mode::Accumulate);
            K::run(DenseBackwardWeights {
                dims,
                dz: &dz,
                x_rows: &x_rows,
                dw,
                db,
                mode,
            });
            let (a, b) = (&w[..], &x[..]);
            let mode = Mode::Overwrite;
            K::run(Gemm {
                m: out,
                n: batch,
                k: inp,
                a,
                a_transposed: false,
                b,
                c: &mut y,
                mode,
            });
            let (b, mode) = (&dz[..], Mode::Accumulate);
            K::run(Gemm {
                m: inp,
                n: batch,
                k: out,
                a,
                a_transposed: true,
                b,
                c: &mut dx,
                mode,
            });
            let (x1, mode) = (&x[..inp], Mode::Overwrite);
            K::run(Gemv {
                m: out,
                k: inp,
                a,
                x: x1,
                y: &mut y1,
                mode,
            });
            K::run(DenseForwardOne {
                out,
                inp,
                w: a,
                bias: &bias,
                x: x1,
                y: &mut y1,
                act,
            });
            K::run(Transpose {
                rows: inp,
                cols: batch,
                src: &x,
                dst: &mut t,
            });
        });
        assert_eq!(
            allocations, 0,
            "{out}x{inp}x{batch}: the kernels allocated {allocations} times"
        );
        // The warp of an augmented MNIST image: its scratch is the caller's.
        let (src, mut dst) = ([9u8; 784], [0u8; 784]);
        let mut scratch = WarpScratch::new();
        let (noise, wy, wx) = (
            [0.5f32; 98],
            [0.1f32; 7 * WARP_SIDE],
            [0.1f32; 7 * WARP_SIDE],
        );
        let (_, allocations) = count(|| {
            let field = Some(WarpField {
                ky: 7,
                kx: 7,
                noise: &noise,
                wy: &wy,
                wx: &wx,
            });
            let (inverse, shift) = ([0.9, 0.1, -0.1, 1.1], [1.5, -0.5]);
            K::run(Warp {
                rows: 28,
                cols: 28,
                src: &src,
                dst: &mut dst,
                inverse,
                shift,
                field,
                scratch: &mut scratch,
            });
        });
        assert_eq!(
            allocations, 0,
            "kernels allocated at out={out} inp={inp} batch={batch}"
        );
    }
}

#[test]
fn the_counter_sees_an_allocation() {
    // The check above must be able to fail: a Vec made under the counter is counted.
    let (v, allocations) = count(|| vec![1.0f32; 100]);
    assert_eq!(v.len(), 100);
    assert_eq!(allocations, 1);
}

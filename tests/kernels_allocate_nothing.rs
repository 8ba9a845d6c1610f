//! A counting global allocator proves that no kernel allocates, at every shape the networks
//! use and at tails that take the padded edge paths.

mod common;

use common::alloc_counter::{Counting, count};
use constnet::kernels::{self, Activation, InputGrad, Mode, reference};

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[test]
fn kernels_allocate_nothing() {
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
        let (_, allocations) = count(|| {
            kernels::dense_forward(out, inp, batch, &w, &bias, &x, &mut y, Activation::Relu);
            kernels::dense_backward_input(
                out,
                inp,
                batch,
                &w,
                &dz,
                InputGrad::Relu { x: &x, scale: 1.0 },
                &mut dx,
            );
            kernels::dense_backward_weights(
                out,
                inp,
                batch,
                &dz,
                &x_rows,
                &mut dw,
                &mut db,
                Mode::Accumulate,
            );
            kernels::gemm_nn(out, batch, inp, &w, &x, &mut y, Mode::Overwrite);
            kernels::gemm_tn(inp, batch, out, &w, &dz, &mut dx, Mode::Accumulate);
            kernels::gemv(out, inp, &w, &x[..inp], &mut y1, Mode::Overwrite);
            kernels::dense_forward_one(out, inp, &w, &bias, &x[..inp], &mut y1, Activation::Relu);
            kernels::transpose(inp, batch, &x, &mut t);
            reference::dense_forward(out, inp, batch, &w, &bias, &x, &mut y, Activation::Relu);
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

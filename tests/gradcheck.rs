//! Gradient checks by central finite differences.
//!
//! The finite differences run in f64 through an independent forward pass written here (plain
//! loops over the same tensors); its value is first checked against the crate's reference
//! forward pass. Then the analytic gradients of both backends (f32) must match the f64 finite
//! differences: with h = 1e-5 in f64 the truncation error (~h²) and rounding (~1e-16/h) are
//! below 1e-9, so what remains is the f32 analytic gradient's own rounding, ~1e-6 relative.
//! The tolerance `1e-4 + 1e-3·|g|` leaves a wide margin for that and none for a wrong formula
//! (a missing mask or transpose is off by O(|g|)). The fixed seeds keep every pre-activation
//! far from ReLU's kink relative to h.

// Index loops mirror the formulas they check.
#![allow(clippy::needless_range_loop, clippy::too_many_arguments)]

mod common;

use common::*;
use constnet::Params;
use constnet::kernels::{
    Activation, DenseBackwardInput, DenseBackwardWeights, DenseForward, Dims, InputGrad, Mode,
    SoftmaxXent, Transpose,
};
use constnet::{Backend, Network, Reference, Workspace};

// The checks below run on the reference and on every kernel path this CPU supports.
on_every_path!(
    dense_layer_gradients_match_finite_differences,
    softmax_xent_gradient_matches_finite_differences,
    whole_network_gradients_match_finite_differences,
);

#[test]
fn reference_gradients_match_finite_differences() {
    dense_layer_gradients_match_finite_differences::<Reference>();
    softmax_xent_gradient_matches_finite_differences::<Reference>();
    whole_network_gradients_match_finite_differences::<Reference>();
}

fn close(what: &str, analytic: f32, numeric: f64) {
    let tol = 1e-4 + 1e-3 * numeric.abs();
    assert!(
        (analytic as f64 - numeric).abs() <= tol,
        "{what}: analytic {analytic:e} vs finite difference {numeric:e}"
    );
}

/// f64 dense layer: y = act(W·x + b), feature-major x [inp][batch].
fn dense64(
    out: usize,
    inp: usize,
    batch: usize,
    w: &[f64],
    b: &[f64],
    x: &[f64],
    relu: bool,
) -> Vec<f64> {
    let mut y = vec![0.0; out * batch];
    for o in 0..out {
        for j in 0..batch {
            let mut z = b[o];
            for i in 0..inp {
                z += w[o * inp + i] * x[i * batch + j];
            }
            y[o * batch + j] = if relu { z.max(0.0) } else { z };
        }
    }
    y
}

/// One dense layer with ReLU, fed by a ReLU: L = Σ c ⊙ relu(W·relu(u) + b).
fn check_layer<K: Backend>(seed: u64) {
    let (out, inp, batch) = (7, 9, 5);
    let mut r = rng(seed);
    let w = floats(&mut r, out * inp);
    let b = floats(&mut r, out);
    let u = floats(&mut r, inp * batch);
    let c = floats(&mut r, out * batch);
    let x: Vec<f32> = u.iter().map(|&v| v.max(0.0)).collect();
    let loss64 = |w: &[f64], b: &[f64], u: &[f64]| {
        let x: Vec<f64> = u.iter().map(|v| v.max(0.0)).collect();
        let y = dense64(out, inp, batch, w, b, &x, true);
        y.iter().zip(&c).map(|(y, &c)| y * c as f64).sum::<f64>()
    };
    // Analytic: y = relu(z), dz = c ⊙ [y > 0], then the layer's backward.
    let mut y = vec![0.0; out * batch];
    let dims = Dims { out, inp, batch };
    let act = Activation::Relu;
    K::run(DenseForward {
        dims,
        w: &w,
        bias: &b,
        x: &x,
        y: &mut y,
        act,
    });
    let dz: Vec<f32> = y
        .iter()
        .zip(&c)
        .map(|(&y, &c)| if y > 0.0 { c } else { 0.0 })
        .collect();
    let mut x_rows = vec![0.0; batch * inp];
    K::run(Transpose {
        rows: inp,
        cols: batch,
        src: &x,
        dst: &mut x_rows,
    });
    let (mut dw, mut db, mut du) = (vec![0.0; out * inp], vec![0.0; out], vec![0.0; inp * batch]);
    let mode = Mode::Overwrite;
    K::run(DenseBackwardWeights {
        dims,
        dz: &dz,
        x_rows: &x_rows,
        dw: &mut dw,
        db: &mut db,
        mode,
    });
    let grad = InputGrad::Relu { x: &x, scale: 1.0 };
    K::run(DenseBackwardInput {
        dims,
        w: &w,
        dz: &dz,
        grad,
        dx: &mut du,
    });

    let (mut w64, mut b64, mut u64) = (to64(&w), to64(&b), to64(&u));
    for i in 0..w.len() {
        let (b_, u_) = (b64.clone(), u64.clone());
        close(
            &format!("dW[{i}]"),
            dw[i],
            central_difference(&mut w64, i, |w| loss64(w, &b_, &u_)),
        );
    }
    for i in 0..b.len() {
        let (w_, u_) = (w64.clone(), u64.clone());
        close(
            &format!("db[{i}]"),
            db[i],
            central_difference(&mut b64, i, |b| loss64(&w_, b, &u_)),
        );
    }
    for i in 0..u.len() {
        let (w_, b_) = (w64.clone(), b64.clone());
        close(
            &format!("du[{i}]"),
            du[i],
            central_difference(&mut u64, i, |u| loss64(&w_, &b_, u)),
        );
    }
}

fn dense_layer_gradients_match_finite_differences<K: Backend>() {
    check_layer::<K>(30);
}

/// Mean softmax cross-entropy in f64 over feature-major logits.
fn softmax_xent_gradient_matches_finite_differences<K: Backend>() {
    let (classes, batch) = (10, 19);
    let mut r = rng(31);
    let z: Vec<f32> = floats(&mut r, classes * batch)
        .iter()
        .map(|v| 4.0 * v)
        .collect();
    let labels: Vec<u32> = (0..batch)
        .map(|_| int(&mut r, 0, classes - 1) as u32)
        .collect();
    let mut z64 = to64(&z);
    let want_loss = xent64(classes, batch, &z64, &labels);
    {
        let name = K::isa().map_or("reference", |isa| isa.name());
        let mut dz = vec![f32::NAN; classes * batch];
        let (logits, dlogits) = (&z[..], &mut dz[..]);
        let loss = K::run(SoftmaxXent {
            whole_batch: batch,
            classes,
            batch,
            logits,
            labels: &labels,
            dlogits,
        });
        assert!(
            (loss as f64 - want_loss).abs() <= 1e-5 * want_loss.abs(),
            "{name} loss {loss} vs {want_loss}"
        );
        for i in 0..z.len() {
            close(
                &format!("{name} dlogits[{i}]"),
                dz[i],
                central_difference(&mut z64, i, |z| xent64(classes, batch, z, &labels)),
            );
        }
    }
}

constnet::network! {
    /// A small three-layer network for whole-network checks.
    struct Small { fc1: Dense<6, 5>, fc2: Dense<5, 4>, fc3: Dense<4, 3> }
}

/// The whole network's mean loss in f64, from flat tensors and batch-major inputs.
fn network_loss64(tensors: &[Vec<f64>], rows: &[f32], labels: &[u32], batch: usize) -> f64 {
    let widths = [6, 5, 4, 3];
    let mut x: Vec<f64> = vec![0.0; 6 * batch];
    for j in 0..batch {
        for i in 0..6 {
            x[i * batch + j] = rows[j * 6 + i] as f64;
        }
    }
    for l in 0..3 {
        x = dense64(
            widths[l + 1],
            widths[l],
            batch,
            &tensors[2 * l],
            &tensors[2 * l + 1],
            &x,
            l < 2,
        );
    }
    xent64(3, batch, &x, labels)
}

fn check_network<K: Backend>(seed: u64) {
    const B: usize = 8;
    let batch = 5;
    let mut r = rng(seed);
    let net = Small::new_boxed(constnet::Init::PyTorch, &mut r);
    let rows = floats(&mut r, batch * 6);
    let labels: Vec<u32> = (0..batch).map(|_| int(&mut r, 0, 2) as u32).collect();
    let mut ws = <Small as Network>::Workspace::<B>::zeroed_box();
    constnet::set_input::<_, K>(&mut *ws, &rows, batch);
    ws.labels_mut(batch).copy_from_slice(&labels);
    let mut grads = Small::zeroed_box();
    let loss = constnet::forward_backward::<K, Small, B>(&net, &mut grads, &mut ws, batch, None);

    let mut tensors: Vec<Vec<f64>> = (0..Small::TENSORS).map(|i| to64(net.tensor(i))).collect();
    let want = network_loss64(&tensors, &rows, &labels, batch);
    assert!(
        (loss as f64 - want).abs() <= 1e-5,
        "forward: {loss} vs f64 {want}"
    );
    for t in 0..Small::TENSORS {
        for i in 0..tensors[t].len() {
            let keep = tensors[t][i];
            tensors[t][i] = keep + H;
            let up = network_loss64(&tensors, &rows, &labels, batch);
            tensors[t][i] = keep - H;
            let down = network_loss64(&tensors, &rows, &labels, batch);
            tensors[t][i] = keep;
            let name = Small::tensor_info(t).name;
            close(
                &format!("{name}[{i}]"),
                grads.tensor(t)[i],
                (up - down) / (2.0 * H),
            );
        }
    }
}

fn whole_network_gradients_match_finite_differences<K: Backend>() {
    check_network::<K>(32);
    check_network::<K>(33);
}

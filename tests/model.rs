//! Whole networks: a training step through every kernel path against the same step through
//! the scalar reference, determinism, single-sample against batch inference, zero-copy views, and
//! training to 100 % on synthetic separable problems at two other shapes.

// Index loops mirror the formulas they check.
#![allow(clippy::needless_range_loop, clippy::too_many_arguments)]

mod common;

use common::*;
use constnet::Params;
use constnet::{
    Adam, AdamConfig, Backend, Dropout, Init, MnistMlp, Network, NetworkView, Optimizer, Reference,
    Sgd, SgdConfig, Simd, Workspace, forward_backward, set_input, train_step,
};
use rand_xoshiro::Xoshiro256PlusPlus;

fn copy<N: Network>(net: &N) -> Box<N> {
    let mut out = N::zeroed_box();
    for i in 0..N::TENSORS {
        out.tensor_mut(i).copy_from_slice(net.tensor(i));
    }
    out
}

/// A batch of MNIST-like inputs in [0, 1) with random labels.
fn random_batch(
    r: &mut Xoshiro256PlusPlus,
    batch: usize,
    inputs: usize,
    classes: usize,
) -> (Vec<f32>, Vec<u32>) {
    let rows = (0..batch * inputs).map(|_| uniform(r, 0.0, 1.0)).collect();
    let labels = (0..batch).map(|_| int(r, 0, classes - 1) as u32).collect();
    (rows, labels)
}

fn load<N: Network, K: Backend, const B: usize>(
    ws: &mut N::Workspace<B>,
    rows: &[f32],
    labels: &[u32],
) {
    let batch = labels.len();
    set_input::<_, K>(ws, rows, batch);
    ws.labels_mut(batch).copy_from_slice(labels);
}

/// One step (forward, loss, backward, Adam) of the reference network through both backends.
fn step_matches_reference_step<K: Backend>(batch: usize) {
    const B: usize = 64;
    let lr = 1e-3;
    let mut r = rng(40);
    let net = MnistMlp::new_boxed(Init::PyTorch, &mut r);
    let (rows, labels) = random_batch(&mut r, batch, 784, 10);
    let (mut fast, mut slow) = (copy(&*net), copy(&*net));
    let (mut g_fast, mut g_slow) = (MnistMlp::zeroed_box(), MnistMlp::zeroed_box());
    let mut ws_fast = <MnistMlp as Network>::Workspace::<B>::zeroed_box();
    let mut ws_slow = <MnistMlp as Network>::Workspace::<B>::zeroed_box();
    load::<MnistMlp, K, B>(&mut ws_fast, &rows, &labels);
    load::<MnistMlp, Reference, B>(&mut ws_slow, &rows, &labels);
    let loss_fast = forward_backward::<K, _, B>(&*fast, &mut g_fast, &mut ws_fast, batch, None);
    let loss_slow =
        forward_backward::<Reference, _, B>(&*slow, &mut g_slow, &mut ws_slow, batch, None);
    assert!(
        (loss_fast - loss_slow).abs() <= 1e-5 * loss_slow.abs(),
        "batch {batch}: loss {loss_fast} vs {loss_slow}"
    );

    // Gradients: each is a sum over at most 256·64 products of O(1) terms, computed in f32 in
    // different orders; relative to the tensor's largest gradient they agree to ~1e-5.
    let mut grad_tol = Vec::new();
    for i in 0..MnistMlp::TENSORS {
        let scale = g_slow.tensor(i).iter().fold(0.0f32, |m, g| m.max(g.abs()));
        let tol = 1e-4 * scale + 1e-12;
        let name = format!("batch {batch} grad {}", MnistMlp::tensor_info(i).name);
        assert_close(&name, g_fast.tensor(i), g_slow.tensor(i), |_| tol);
        grad_tol.push(tol);
    }

    // The update. Adam's first step moves each parameter by lr·g/(|g| + ε), essentially
    // ±lr: it amplifies the gradients' sign. Where |g| clears the gradient tolerance the sign
    // is certain and the two parameters must agree to rounding; where it does not, they may
    // legitimately differ by up to 2·lr.
    let (mut adam_fast, mut adam_slow) = (
        Adam::<MnistMlp>::new_boxed(AdamConfig::DEFAULT),
        Adam::<MnistMlp>::new_boxed(AdamConfig::DEFAULT),
    );
    adam_fast.step::<K>(&mut fast, &g_fast, lr);
    adam_slow.step::<Reference>(&mut slow, &g_slow, lr);
    for i in 0..MnistMlp::TENSORS {
        let (gs, tol) = (g_slow.tensor(i), grad_tol[i]);
        let name = format!("batch {batch} param {}", MnistMlp::tensor_info(i).name);
        assert_close(&name, fast.tensor(i), slow.tensor(i), |k| {
            if gs[k].abs() > 2.0 * tol {
                1e-6
            } else {
                2.01 * lr
            }
        });
        let moved = fast
            .tensor(i)
            .iter()
            .zip(net.tensor(i))
            .filter(|(a, b)| a != b)
            .count();
        assert!(moved > 0, "{name}: the step changed nothing");
    }
}

on_every_path!(
    step_matches_reference_step_at_batch_64,
    step_matches_reference_step_on_a_partial_batch,
);

fn step_matches_reference_step_at_batch_64<K: Backend>() {
    step_matches_reference_step::<K>(64);
}

fn step_matches_reference_step_on_a_partial_batch<K: Backend>() {
    step_matches_reference_step::<K>(37);
    step_matches_reference_step::<K>(1);
}

#[test]
fn simd_step_matches_reference_step() {
    step_matches_reference_step::<Simd>(64);
    step_matches_reference_step::<Simd>(37);
}

/// 100 steps of Adam with dropout from one seed, returning the parameters.
fn train_100_steps(seed: u64) -> Box<MnistMlp> {
    const B: usize = 64;
    let mut r = rng(seed);
    let mut net = MnistMlp::new_boxed(Init::PyTorch, &mut r);
    let mut grads = MnistMlp::zeroed_box();
    let mut adam = Adam::<MnistMlp>::new_boxed(AdamConfig::DEFAULT);
    let mut ws = <MnistMlp as Network>::Workspace::<B>::zeroed_box();
    let mut dropout_rng = rng(seed + 1);
    for step in 0..100 {
        let batch = if step % 10 == 9 { 17 } else { B };
        let (rows, labels) = random_batch(&mut r, batch, 784, 10);
        load::<MnistMlp, Simd, B>(&mut ws, &rows, &labels);
        let mut dropout = Dropout::new(0.1, &mut dropout_rng).unwrap();
        train_step::<Simd, MnistMlp, _, B>(
            &mut net,
            &mut grads,
            &mut *adam,
            &mut ws,
            batch,
            1e-3,
            Some(&mut dropout),
        );
    }
    net
}

#[test]
fn same_seed_gives_bit_identical_parameters_after_100_steps() {
    let (a, b, c) = (train_100_steps(7), train_100_steps(7), train_100_steps(8));
    let bits = |n: &MnistMlp| param_bits(n);
    assert!(bits(&a) == bits(&b), "two runs from seed 7 differ");
    assert!(
        bits(&a) != bits(&c),
        "seeds 7 and 8 gave the same parameters: the check cannot fail"
    );
}

#[test]
fn single_sample_inference_matches_the_batch_pass() {
    const B: usize = 64;
    let mut r = rng(41);
    let net = MnistMlp::new_boxed(Init::PyTorch, &mut r);
    let batch = 23;
    let (rows, labels) = random_batch(&mut r, batch, 784, 10);
    let mut ws = <MnistMlp as Network>::Workspace::<B>::zeroed_box();
    load::<MnistMlp, Simd, B>(&mut ws, &rows, &labels);
    net.forward::<Simd, B>(&mut ws, batch, None);
    // The same parameters seen through a zero-copy view of separate slices.
    let tensors: Vec<&[f32]> = (0..MnistMlp::TENSORS).map(|i| net.tensor(i)).collect();
    let view = MnistMlp::view_from_tensors(&tensors).expect("tensor lengths fit");
    for j in 0..batch {
        let x = &rows[j * 784..][..784];
        let (mut one, mut one_ref, mut one_view) = ([0.0; 10], [0.0; 10], [0.0; 10]);
        net.forward_one::<Simd>(x, &mut one);
        net.forward_one::<Reference>(x, &mut one_ref);
        view.forward_one::<Simd>(x, &mut one_view);
        let column: Vec<f32> = (0..10).map(|c| ws.logits(batch)[c * batch + j]).collect();
        assert_close(&format!("sample {j} gemv vs batch"), &one, &column, |_| {
            1e-4
        });
        assert_close(
            &format!("sample {j} simd vs reference"),
            &one,
            &one_ref,
            |_| 1e-4,
        );
        assert_exact(&format!("sample {j} view vs owned"), &one_view, &one);
    }
    assert!(MnistMlp::view_from_tensors(&tensors[..7]).is_none());
    let mut short = tensors.clone();
    short[2] = &short[2][1..];
    assert!(MnistMlp::view_from_tensors(&short).is_none());
}

#[test]
fn tensor_names_and_shapes_follow_pytorch() {
    let names: Vec<_> = (0..MnistMlp::TENSORS)
        .map(|i| {
            (
                MnistMlp::tensor_info(i).name,
                MnistMlp::tensor_info(i).shape,
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            ("fc1.weight", &[256, 784][..]),
            ("fc1.bias", &[256][..]),
            ("fc2.weight", &[128, 256][..]),
            ("fc2.bias", &[128][..]),
            ("fc3.weight", &[64, 128][..]),
            ("fc3.bias", &[64][..]),
            ("fc4.weight", &[10, 64][..]),
            ("fc4.bias", &[10][..]),
        ]
    );
    assert_eq!(
        MnistMlp::PARAMS,
        784 * 256 + 256 + 256 * 128 + 128 + 128 * 64 + 64 + 64 * 10 + 10
    );
    assert_eq!((MnistMlp::INPUT, MnistMlp::OUTPUT), (784, 10));
}

constnet::network! {
    /// 784→32→10, the other MNIST-sized shape.
    struct Narrow { fc1: Dense<784, 32>, fc2: Dense<32, 10> }
}

constnet::network! {
    /// A three-layer toy for 2-D points.
    struct Toy { l1: Dense<2, 16>, l2: Dense<16, 16>, l3: Dense<16, 2> }
}

/// Trains on `samples` (batch-major rows, labels) for `epochs` full passes in batches of B and
/// returns (first epoch's mean loss, last epoch's mean loss, final training accuracy).
fn fit<N: Network, O: Optimizer<N>, const B: usize>(
    net: &mut N,
    opt: &mut O,
    rows: &[f32],
    labels: &[u32],
    epochs: usize,
    lr: f32,
) -> (f32, f32, f32) {
    let n = labels.len();
    let mut grads = N::zeroed_box();
    let mut ws = N::Workspace::<B>::zeroed_box();
    let (mut first, mut last) = (0.0, 0.0);
    for epoch in 0..epochs {
        let mut total = 0.0;
        for start in (0..n).step_by(B) {
            let batch = B.min(n - start);
            load::<N, Simd, B>(
                &mut ws,
                &rows[start * N::INPUT..][..batch * N::INPUT],
                &labels[start..start + batch],
            );
            total += batch as f32
                * train_step::<Simd, N, O, B>(net, &mut grads, opt, &mut ws, batch, lr, None);
        }
        let mean = total / n as f32;
        if epoch == 0 {
            first = mean;
        }
        last = mean;
    }
    let mut correct = 0;
    let mut logits = vec![0.0; N::OUTPUT];
    for j in 0..n {
        net.forward_one::<Simd>(&rows[j * N::INPUT..][..N::INPUT], &mut logits);
        let best = (0..N::OUTPUT)
            .max_by(|&a, &b| logits[a].total_cmp(&logits[b]))
            .unwrap();
        correct += (best as u32 == labels[j]) as usize;
    }
    (first, last, correct as f32 / n as f32)
}

#[test]
fn a_toy_network_learns_a_separable_problem_to_100_percent() {
    // Two classes of 2-D points on either side of the line x = y, with a margin.
    let mut r = rng(42);
    let (mut rows, mut labels) = (Vec::new(), Vec::new());
    while labels.len() < 200 {
        let (x, y) = (uniform(&mut r, -1.0, 1.0), uniform(&mut r, -1.0, 1.0));
        if (x - y).abs() > 0.1 {
            rows.extend([x, y]);
            labels.push((x > y) as u32);
        }
    }
    let mut net = Toy::new_boxed(Init::He, &mut r);
    let mut adam = Adam::<Toy>::new_boxed(AdamConfig::DEFAULT);
    let (first, last, accuracy) = fit::<Toy, _, 16>(&mut net, &mut *adam, &rows, &labels, 60, 1e-2);
    assert!(last < first / 10.0, "loss {first} -> {last}");
    assert_eq!(accuracy, 1.0, "training accuracy");
    // SGD with momentum gets there too.
    let mut net = Toy::new_boxed(Init::Xavier, &mut r);
    let mut sgd = Sgd::<Toy>::new_boxed(SgdConfig {
        momentum: 0.9,
        ..SgdConfig::default()
    });
    let (first, last, accuracy) = fit::<Toy, _, 16>(&mut net, &mut *sgd, &rows, &labels, 100, 5e-2);
    assert!(last < first / 5.0, "sgd loss {first} -> {last}");
    assert_eq!(accuracy, 1.0, "sgd training accuracy");
}

#[test]
fn a_784_32_10_network_learns_noisy_prototypes_to_100_percent() {
    // Ten random prototype images; each sample is one of them plus noise.
    let mut r = rng(43);
    let prototypes: Vec<Vec<f32>> = (0..10)
        .map(|_| (0..784).map(|_| uniform(&mut r, 0.0, 1.0)).collect())
        .collect();
    let (mut rows, mut labels) = (Vec::new(), Vec::new());
    for i in 0..500 {
        let class = i % 10;
        rows.extend(
            prototypes[class]
                .iter()
                .map(|&p| (p + uniform(&mut r, -0.3, 0.3)).clamp(0.0, 1.0)),
        );
        labels.push(class as u32);
    }
    let mut net = Narrow::new_boxed(Init::PyTorch, &mut r);
    let mut adam = Adam::<Narrow>::new_boxed(AdamConfig::DEFAULT);
    let (first, last, accuracy) =
        fit::<Narrow, _, 64>(&mut net, &mut *adam, &rows, &labels, 10, 1e-3);
    assert!(last < first / 10.0, "loss {first} -> {last}");
    assert_eq!(accuracy, 1.0);
}

/// `predict` is the argmax of `forward_one` on the bytes scaled by 1/255, and `predict_batch`
/// is `predict` per sample.
#[test]
fn predict_is_the_argmax_of_the_logits() {
    use constnet::MnistMlp;
    let mut r = rng(91);
    let net = MnistMlp::new_boxed(constnet::Init::PyTorch, &mut r);
    let n = 37;
    let pixels: Vec<u8> = (0..n * 784).map(|_| int(&mut r, 0, 255) as u8).collect();
    let mut classes = vec![usize::MAX; n];
    net.predict_batch(&pixels, &mut classes);
    let mut seen = [false; 10];
    for (i, sample) in pixels.chunks_exact(784).enumerate() {
        let x: Vec<f32> = sample.iter().map(|&p| f32::from(p) / 255.0).collect();
        let mut logits = [0.0f32; 10];
        net.forward_one::<constnet::Simd>(&x, &mut logits);
        let best = (0..10).fold(0, |b, c| if logits[c] > logits[b] { c } else { b });
        assert_eq!(net.predict(sample), best, "sample {i}: {logits:?}");
        assert_eq!(net.classify(&x), best, "sample {i}");
        assert_eq!(classes[i], best, "sample {i} in the batch");
        seen[best] = true;
    }
    assert!(
        seen.iter().filter(|&&s| s).count() > 1,
        "every sample got the same class"
    );
}

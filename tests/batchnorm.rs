//! Batch normalization: PyTorch's `BatchNorm1d` numbers, gradients against f64 finite
//! differences (the layer alone and inside a network, on every kernel path), folding into the
//! dense layer, model files, and training on MNIST.

// Index loops mirror the formulas they check.
#![allow(clippy::needless_range_loop)]

mod common;

use common::*;
use constnet::layers::batchnorm::{BatchNormRef, BatchNormWork, EPS};
use constnet::train::{self, Config, Run};
use constnet::{Backend, Init, MnistMlp, MnistMlpBn, Network, Params, Reference, Simd, Workspace};

on_every_path!(network_with_batch_norm_gradients_match_finite_differences);

#[test]
fn reference_network_with_batch_norm_gradients_match_finite_differences() {
    network_with_batch_norm_gradients_match_finite_differences::<Reference>();
}

fn close(what: &str, analytic: f32, numeric: f64) {
    let tol = 1e-4 + 1e-3 * numeric.abs();
    assert!(
        (analytic as f64 - numeric).abs() <= tol,
        "{what}: analytic {analytic:e} vs finite difference {numeric:e}"
    );
}

/// f64 training-mode batch norm without the ReLU: z `[n][batch]` → γ·x̂ + β.
fn bn64(n: usize, batch: usize, z: &[f64], gamma: &[f64], beta: &[f64]) -> Vec<f64> {
    let mut y = vec![0.0; n * batch];
    for j in 0..n {
        let row = &z[j * batch..][..batch];
        let mean = row.iter().sum::<f64>() / batch as f64;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / batch as f64;
        for i in 0..batch {
            y[j * batch + i] = gamma[j] * (row[i] - mean) / (var + EPS as f64).sqrt() + beta[j];
        }
    }
    y
}

/// The layer alone: L = Σ c·(γ·x̂ + β) for random c, so `dy = c`; the gradients of z, γ and β
/// against finite differences of [`bn64`], on widths and batches that are not multiples of
/// 16 (and are).
#[test]
fn batch_norm_layer_gradients_match_finite_differences() {
    fn check<const N: usize>(batch: usize, seed: u64) {
        const B: usize = 64;
        let mut r = rng(seed);
        let z = floats(&mut r, N * batch);
        let c = floats(&mut r, N * batch);
        let gamma: Vec<f32> = (0..N).map(|_| uniform(&mut r, 0.5, 2.0)).collect();
        // β large enough that the fused ReLU passes every value (the layer check is before it).
        let beta = vec![50.0f32; N];
        let (rm, rv) = (vec![0.0f32; N], vec![1.0f32; N]);
        let bn = BatchNormRef::<N>::from_slices(&gamma, &beta, &rm, &rv).unwrap();
        let mut work = Box::new(BatchNormWork::<N, B>::ZEROED);
        bn.forward_train(&z, &mut work, batch);
        work.dz.0.as_flattened_mut()[..N * batch].copy_from_slice(&c);
        let mut dz = vec![f32::NAN; N * batch];
        bn.backward(&mut work, &mut dz, batch);

        let (mut z64, mut g64, mut b64) = (to64(&z), to64(&gamma), to64(&beta));
        let loss = |z: &[f64], g: &[f64], b: &[f64]| -> f64 {
            let y = bn64(N, batch, z, g, b);
            y.iter().zip(&c).map(|(y, &c)| y * c as f64).sum()
        };
        let case = format!("N {N} batch {batch}");
        for i in 0..N * batch {
            let num = central_difference(&mut z64, i, |z| loss(z, &g64, &b64));
            close(&format!("{case}: dz[{i}]"), dz[i], num);
        }
        for j in 0..N {
            let num = central_difference(&mut g64, j, |g| loss(&z64, g, &b64));
            close(&format!("{case}: dweight[{j}]"), work.dweight.0[j], num);
            let num = central_difference(&mut b64, j, |b| loss(&z64, &g64, b));
            close(&format!("{case}: dbias[{j}]"), work.dbias.0[j], num);
        }
    }
    check::<1>(2, 1);
    check::<5>(3, 2);
    check::<16>(16, 3);
    check::<17>(17, 4);
    check::<33>(64, 5);
    check::<7>(1, 6);
}

/// `torch.nn.BatchNorm1d(2)` with weight (0.5, −2), bias (2, 5) on the batch
/// `[[1, 2], [3, 4], [5, 9]]`: PyTorch's normalised values (x̂, what it computes before γ and
/// β; values from its formulas in f64), the training output, the running statistics after
/// one batch and the evaluation output. First the layer alone, then inside a network whose
/// dense layers are identities, so the logits are the layer's output.
#[test]
fn batch_norm_matches_pytorch_batchnorm1d_by_hand() {
    let x = [[1.0, 3.0, 5.0], [2.0, 4.0, 9.0]]; // feature-major
    let xhat = [
        [-1.2247425750014138, 0.0, 1.2247425750014138],
        [-1.0190487428175694, -0.3396829142725232, 1.3587316570900927],
    ];
    let (gamma, beta) = ([0.5f32, -2.0], [2.0f32, 5.0]);
    let (running_mean, running_var) = ([0.3, 0.5], [1.3, 2.2]);
    let relu = |v: f64| v.max(0.0);
    let train = |j: usize, i: usize| relu(gamma[j] as f64 * xhat[j][i] + beta[j] as f64);
    let eval = |j: usize, i: usize| {
        let norm = (x[j][i] - running_mean[j]) / (running_var[j] + EPS as f64).sqrt();
        relu(norm * gamma[j] as f64 + beta[j] as f64)
    };
    let z: Vec<f32> = x.as_flattened().iter().map(|&v| v as f32).collect();

    let (rm, rv) = ([0.0f32; 2], [1.0f32; 2]);
    let bn = BatchNormRef::<2>::from_slices(&gamma, &beta, &rm, &rv).unwrap();
    // Batches shorter than the workspace's B sit compactly: feature j at [j·batch..].
    let mut work = BatchNormWork::<2, 4>::ZEROED;
    bn.forward_train(&z, &mut work, 3);
    for (j, i) in (0..2).flat_map(|j| (0..3).map(move |i| (j, i))) {
        let (got, want) = (work.xhat.0.as_flattened()[j * 3 + i] as f64, xhat[j][i]);
        assert!((got - want).abs() < 1e-6, "x̂[{j}][{i}] {got} vs {want}");
        let (got, want) = (work.y(3)[j * 3 + i] as f64, train(j, i));
        assert!((got - want).abs() < 2e-6, "y[{j}][{i}] {got} vs {want}");
    }

    constnet::network! {
        struct Two { fc1: Dense<2, 2>, bn1: BatchNorm<2>, fc2: Dense<2, 2> }
    }
    let mut net = Two::zeroed_box();
    net.init(Init::PyTorch, &mut rng(0));
    assert_eq!(
        (net.bn1().weight, net.bn1().bias),
        (&[1.0; 2], &[0.0; 2]),
        "PyTorch's initial weight and bias"
    );
    assert_eq!(
        (net.bn1().running_mean, net.bn1().running_var),
        (&[0.0; 2], &[1.0; 2]),
        "PyTorch's initial running statistics"
    );
    for l in [0, 2] {
        net.tensor_mut(l).copy_from_slice(&[1.0, 0.0, 0.0, 1.0]);
        net.tensor_mut(l + 1).fill(0.0);
    }
    assert_eq!(Two::tensor_info(4).name, "bn1.weight");
    net.tensor_mut(4).copy_from_slice(&gamma);
    net.tensor_mut(5).copy_from_slice(&beta);
    let rows = [1.0, 2.0, 3.0, 4.0, 5.0, 9.0];
    let mut ws = <Two as Network>::Workspace::<4>::zeroed_box();
    constnet::set_input::<_, Reference>(&mut *ws, &rows, 3);
    net.forward_train::<Reference, 4>(&mut ws, 3, None);
    let logits = ws.logits(3).to_vec();
    for (j, i) in (0..2).flat_map(|j| (0..3).map(move |i| (j, i))) {
        let (got, want) = (logits[j * 3 + i] as f64, train(j, i));
        assert!((got - want).abs() < 2e-6, "train[{j}][{i}] {got} vs {want}");
    }
    net.update_running_stats(&ws, 3);
    let (rm, rv) = (*net.bn1().running_mean, *net.bn1().running_var);
    for j in 0..2 {
        assert!((rm[j] as f64 - running_mean[j]).abs() < 1e-7, "{rm:?}");
        assert!((rv[j] as f64 - running_var[j]).abs() < 1e-6, "{rv:?}");
    }
    assert_eq!(net.batches_tracked(), &[1]);
    net.forward::<Reference, 4>(&mut ws, 3, None);
    let logits = ws.logits(3).to_vec();
    for (j, i) in (0..2).flat_map(|j| (0..3).map(move |i| (j, i))) {
        let (got, want) = (logits[j * 3 + i] as f64, eval(j, i));
        assert!((got - want).abs() < 4e-6, "eval[{j}][{i}] {got} vs {want}");
    }
    // A batch of one has no unbiased variance (PyTorch refuses it): nothing is tracked.
    net.forward_train::<Reference, 4>(&mut ws, 1, None);
    net.update_running_stats(&ws, 1);
    assert_eq!(net.batches_tracked(), &[1]);
    assert_eq!(net.bn1().running_var, &rv);
}

constnet::network! {
    /// Batch norms after both hidden layers, widths that are not multiples of 16.
    struct SmallBn { fc1: Dense<6, 17>, bn1: BatchNorm<17>, fc2: Dense<17, 5>, bn2: BatchNorm<5>, fc3: Dense<5, 3> }
}

/// Mean softmax cross-entropy in f64 over feature-major logits.
/// SmallBn's training-mode loss in f64 from its parameter tensors (in tensor order).
fn small_bn_loss64(t: &[Vec<f64>], rows: &[f32], labels: &[u32], batch: usize) -> f64 {
    let widths = [6, 17, 5, 3];
    let mut x = vec![0.0; 6 * batch];
    for j in 0..batch {
        for i in 0..6 {
            x[i * batch + j] = rows[j * 6 + i] as f64;
        }
    }
    for l in 0..3 {
        let (inp, out) = (widths[l], widths[l + 1]);
        let mut y = vec![0.0; out * batch];
        for o in 0..out {
            for j in 0..batch {
                let dot: f64 = (0..inp)
                    .map(|i| t[2 * l][o * inp + i] * x[i * batch + j])
                    .sum();
                y[o * batch + j] = t[2 * l + 1][o] + dot;
            }
        }
        if l < 2 {
            y = bn64(out, batch, &y, &t[6 + 2 * l], &t[7 + 2 * l]);
            y.iter_mut().for_each(|v| *v = v.max(0.0));
        }
        x = y;
    }
    xent64(3, batch, &x, labels)
}

/// Every parameter's gradient (dense and batch norm) of a whole training step against f64
/// finite differences of the training-mode loss.
fn network_with_batch_norm_gradients_match_finite_differences<K: Backend>() {
    const B: usize = 16;
    for (seed, batch) in [(40, 5), (41, 16)] {
        let mut r = rng(seed);
        let mut net = SmallBn::new_boxed(Init::PyTorch, &mut r);
        for i in 6..10 {
            let values = floats(&mut r, net.tensor(i).len());
            let shift = if i % 2 == 0 { 1.5 } else { 0.0 };
            net.tensor_mut(i)
                .iter_mut()
                .zip(values)
                .for_each(|(t, v)| *t = v + shift);
        }
        let rows = floats(&mut r, batch * 6);
        let labels: Vec<u32> = (0..batch).map(|_| int(&mut r, 0, 2) as u32).collect();
        let mut ws = <SmallBn as Network>::Workspace::<B>::zeroed_box();
        constnet::set_input::<_, K>(&mut *ws, &rows, batch);
        ws.labels_mut(batch).copy_from_slice(&labels);
        let mut grads = SmallBn::zeroed_box();
        let loss =
            constnet::forward_backward::<K, SmallBn, B>(&net, &mut grads, &mut ws, batch, None);
        let mut t: Vec<Vec<f64>> = (0..SmallBn::PARAM_TENSORS)
            .map(|i| to64(net.tensor(i)))
            .collect();
        let want = small_bn_loss64(&t, &rows, &labels, batch);
        assert!(
            (loss as f64 - want).abs() <= 1e-5,
            "forward: {loss} vs f64 {want}"
        );
        for i in 0..SmallBn::PARAM_TENSORS {
            let name = SmallBn::tensor_info(i).name;
            for e in 0..t[i].len() {
                let keep = t[i][e];
                t[i][e] = keep + H;
                let up = small_bn_loss64(&t, &rows, &labels, batch);
                t[i][e] = keep - H;
                let down = small_bn_loss64(&t, &rows, &labels, batch);
                t[i][e] = keep;
                let what = format!("seed {seed} batch {batch}: {name}[{e}]");
                close(&what, grads.tensor(i)[e], (up - down) / (2.0 * H));
            }
        }
        // The gradient check leaves the running statistics alone.
        assert_eq!(net.batches_tracked(), &[0, 0]);
    }
}

/// A few Adam steps on random data (so γ, β and the running statistics move), then the
/// reference network with batch norms folded into a plain `MnistMlp`: the same logits in
/// evaluation, within 1e-5, for one sample and for batches.
#[test]
fn folded_batch_norms_give_the_same_logits() {
    const B: usize = 32;
    let mut r = rng(60);
    let mut net = MnistMlpBn::new_boxed(Init::PyTorch, &mut r);
    let mut grads = MnistMlpBn::zeroed_box();
    let mut adam = constnet::Adam::<MnistMlpBn>::new_boxed(constnet::AdamConfig::DEFAULT);
    let mut ws = <MnistMlpBn as Network>::Workspace::<B>::zeroed_box();
    let rows: Vec<f32> = (0..B * 784).map(|_| uniform(&mut r, 0.0, 1.0)).collect();
    let labels: Vec<u32> = (0..B).map(|_| int(&mut r, 0, 9) as u32).collect();
    for _ in 0..20 {
        constnet::set_input::<_, Simd>(&mut *ws, &rows, B);
        ws.labels_mut(B).copy_from_slice(&labels);
        let loss = constnet::train_step::<Simd, _, _, B>(
            &mut *net,
            &mut *grads,
            &mut *adam,
            &mut ws,
            B,
            1e-3,
            None,
        );
        assert!(loss.is_finite());
    }
    assert_eq!(net.batches_tracked(), &[20, 20, 20]);
    assert!(net.bn1().weight.iter().any(|&g| g != 1.0), "γ trained");
    let mut plain = MnistMlp::zeroed_box();
    constnet::fold_batch_norms(&*net, &mut *plain).unwrap();

    net.forward::<Simd, B>(&mut ws, B, None);
    let batched = ws.logits(B).to_vec();
    let (mut a, mut b) = ([0.0f32; 10], [0.0f32; 10]);
    let mut worst = 0.0f32;
    for s in 0..B {
        let x = &rows[s * 784..][..784];
        net.forward_one::<Simd>(x, &mut a);
        plain.forward_one::<Simd>(x, &mut b);
        for c in 0..10 {
            worst = worst
                .max((a[c] - b[c]).abs())
                .max((batched[c * B + s] - b[c]).abs());
        }
    }
    assert!(
        worst <= 1e-5,
        "folded and unfolded logits differ by {worst}"
    );
    // A plain network cannot take batch norms.
    let mut wrong = MnistMlpBn::zeroed_box();
    assert!(constnet::fold_batch_norms(&*net, &mut *wrong).is_err());
}

/// Model files: PyTorch's names, shapes and dtypes (num_batches_tracked an int64 scalar),
/// and a bit-exact round trip of every tensor and count.
#[test]
fn batch_norm_model_files_round_trip_with_pytorch_names() {
    use constnet::format::safetensors::{Dtype, decode, load_bytes_into, to_bytes};
    let mut r = rng(70);
    let mut net = MnistMlpBn::new_boxed(Init::PyTorch, &mut r);
    for i in 0..MnistMlpBn::TENSORS {
        let v = floats(&mut r, net.tensor(i).len());
        net.tensor_mut(i).copy_from_slice(&v);
    }
    net.batches_tracked_mut().copy_from_slice(&[7, 8, 1 << 40]);
    let bytes = to_bytes(&*net).unwrap();
    let decoded = decode(&bytes).unwrap();
    let mut names: Vec<_> = decoded
        .tensors
        .names()
        .into_iter()
        .map(String::from)
        .collect();
    names.sort();
    let mut want = vec![];
    for (bn, n) in [("bn1", 256), ("bn2", 128), ("bn3", 64)] {
        for t in ["weight", "bias", "running_mean", "running_var"] {
            let view = decoded.tensors.tensor(&format!("{bn}.{t}")).unwrap();
            assert_eq!((view.dtype(), view.shape()), (Dtype::F32, &[n][..]));
            want.push(format!("{bn}.{t}"));
        }
        let view = decoded
            .tensors
            .tensor(&format!("{bn}.num_batches_tracked"))
            .unwrap();
        assert_eq!((view.dtype(), view.shape()), (Dtype::I64, &[][..]));
        want.push(format!("{bn}.num_batches_tracked"));
    }
    for fc in ["fc1", "fc2", "fc3", "fc4"] {
        want.extend([format!("{fc}.weight"), format!("{fc}.bias")]);
    }
    want.sort();
    assert_eq!(names, want);

    let mut back = MnistMlpBn::zeroed_box();
    load_bytes_into(&bytes, &mut *back).unwrap();
    assert_eq!(param_bits(&*back), param_bits(&*net));
    assert_eq!(back.batches_tracked(), &[7, 8, 1 << 40]);
    // A plain MnistMlp refuses the file, naming a tensor it does not have.
    let err = load_bytes_into(&bytes, &mut *MnistMlp::zeroed_box()).unwrap_err();
    assert!(err.to_string().contains("bn"), "{err}");
    // A file without the counts (or with a float count) is refused, naming it.
    let plain_only = constnet::format::safetensors::encode(
        &(0..MnistMlpBn::TENSORS)
            .map(|i| constnet::format::safetensors::Entry {
                name: MnistMlpBn::tensor_info(i).name.into(),
                shape: MnistMlpBn::tensor_info(i).shape.to_vec(),
                values: net.tensor(i),
            })
            .collect::<Vec<_>>(),
        Default::default(),
    )
    .unwrap();
    let err = load_bytes_into(&plain_only, &mut *back).unwrap_err();
    assert!(err.to_string().contains("bn1.num_batches_tracked"), "{err}");
}

/// More than one thread is refused with a message saying why.
#[test]
fn batch_norm_networks_train_on_one_thread() {
    let config = Config {
        threads: 2,
        ..Config::default()
    };
    let err = Run::<MnistMlpBn>::new(config, 1000).err().unwrap();
    let message = err.to_string();
    assert!(
        message.contains("threads") && message.contains("batch normalization"),
        "{message}"
    );
}

struct Silent;

impl train::Report for Silent {
    fn batch(&mut self, _: &train::BatchReport) {}
    fn epoch(&mut self, _: &train::EpochReport) {}
}

/// One epoch of the reference network with batch norms on MNIST: a sensible accuracy with the
/// running statistics (evaluation) and folded; the model file round trip is exact and the
/// reloaded model evaluates alike; a checkpoint mid-epoch resumes bit for bit.
#[test]
fn reference_network_with_batch_norm_trains_on_mnist() {
    use constnet::data::mnist::{Mnist, OpenOptions};
    let mnist = Mnist::open(&mnist_dir(), OpenOptions::default()).unwrap();
    let config = Config {
        epochs: 1,
        ..Config::default()
    };
    let mut run = Run::<MnistMlpBn>::new(config, mnist.train.count).unwrap();
    let tmp = TempDir::new("bn-mnist");
    let ckpt = tmp.path("bn.ckpt");
    run.train_epoch(&mnist.train, &mut Silent, |run| {
        if run.steps == 400 {
            run.save_checkpoint(&ckpt)?;
        }
        Ok(())
    })
    .unwrap();
    let net = run.net();
    assert_eq!(net.batches_tracked(), &[938; 3]);
    let mut ws = <MnistMlpBn as Network>::Workspace::<{ train::BATCH }>::zeroed_box();
    let accuracy = train::evaluate(net.view(), &mnist.test, &mut ws).accuracy();
    assert!(
        accuracy >= 0.965,
        "test accuracy {:.2}% after one epoch",
        100.0 * accuracy
    );

    let mut plain = MnistMlp::zeroed_box();
    constnet::fold_batch_norms(net, &mut *plain).unwrap();
    let mut plain_ws = <MnistMlp as Network>::Workspace::<{ train::BATCH }>::zeroed_box();
    let folded = train::evaluate(plain.view(), &mnist.test, &mut plain_ws).accuracy();
    assert!(
        (folded - accuracy).abs() <= 2e-4,
        "folded {folded} vs {accuracy}"
    );

    let path = tmp.path("bn.safetensors");
    constnet::format::save(&path, net).unwrap();
    let back = constnet::format::load::<MnistMlpBn>(&path).unwrap();
    assert_eq!(param_bits(&*back), param_bits(net));
    assert_eq!(back.batches_tracked(), net.batches_tracked());
    let reloaded = train::evaluate(back.view(), &mnist.test, &mut ws).accuracy();
    assert_eq!(reloaded, accuracy);

    let mut resumed = Run::<MnistMlpBn>::resume(&ckpt, mnist.train.count).unwrap();
    assert_eq!(resumed.steps, 400);
    assert_eq!(resumed.net().batches_tracked(), &[400; 3]);
    resumed
        .train_epoch(&mnist.train, &mut Silent, |_| Ok(()))
        .unwrap();
    assert_eq!(
        param_bits(resumed.net()),
        param_bits(net),
        "resumed run differs"
    );
    assert_eq!(resumed.net().batches_tracked(), net.batches_tracked());
}

//! A counting global allocator proves that 100 training steps and 1000 inference calls make
//! no allocation: every buffer is created before the loop.

mod common;

use common::alloc_counter::{Counting, SERIAL, count, count_all_threads};
use constnet::Params;
use constnet::{
    Adam, AdamConfig, Dropout, Init, MnistMlp, MnistMlpBn, Network, NetworkView, RmsProp,
    RmsPropConfig, Simd, Workspace, set_input, train_step,
};

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[test]
fn training_and_inference_allocate_nothing() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    const B: usize = 64;
    let mut r = common::rng(50);
    let mut net = MnistMlp::new_boxed(Init::PyTorch, &mut r);
    let mut grads = MnistMlp::zeroed_box();
    let mut adam = Adam::<MnistMlp>::new_boxed(AdamConfig::DEFAULT);
    let mut ws = <MnistMlp as Network>::Workspace::<B>::zeroed_box();
    let rows: Vec<f32> = (0..B * 784).map(|i| (i % 255) as f32 / 255.0).collect();
    let labels: Vec<u32> = (0..B as u32).map(|i| i % 10).collect();
    let mut dropout_rng = common::rng(51);
    let mut logits = [0.0f32; 10];

    let (losses, allocations) = count(|| {
        let mut losses = [0.0f32; 100];
        for (step, loss) in losses.iter_mut().enumerate() {
            let batch = if step % 4 == 3 { 32 } else { B };
            set_input::<_, Simd>(&mut *ws, &rows[..batch * 784], batch);
            ws.labels_mut(batch).copy_from_slice(&labels[..batch]);
            let mut dropout = Dropout::new(0.2, &mut dropout_rng).unwrap();
            *loss = train_step::<Simd, MnistMlp, _, B>(
                &mut net,
                &mut grads,
                &mut *adam,
                &mut ws,
                batch,
                1e-3,
                Some(&mut dropout),
            );
        }
        losses
    });
    assert_eq!(allocations, 0, "100 training steps allocated");
    assert!(losses.iter().all(|l| l.is_finite()));

    // RMSprop with all three state blocks, fused the same way.
    let mut rmsprop = RmsProp::<MnistMlp>::new_boxed(RmsPropConfig {
        momentum: 0.9,
        centered: true,
        weight_decay: 1e-4,
        ..RmsPropConfig::DEFAULT
    });
    let (losses, allocations) = count(|| {
        let mut losses = [0.0f32; 20];
        for loss in losses.iter_mut() {
            set_input::<_, Simd>(&mut *ws, &rows, B);
            ws.labels_mut(B).copy_from_slice(&labels);
            *loss = train_step::<Simd, MnistMlp, _, B>(
                &mut net,
                &mut grads,
                &mut *rmsprop,
                &mut ws,
                B,
                1e-4,
                None,
            );
        }
        losses
    });
    assert_eq!(allocations, 0, "20 RMSprop training steps allocated");
    assert!(losses.iter().all(|l| l.is_finite()));

    let view = net.view();
    let ((), allocations) = count(|| {
        for i in 0..1000 {
            let x = &rows[(i % B) * 784..][..784];
            view.forward_one::<Simd>(x, &mut logits);
            if i % 100 == 0 {
                net.forward::<Simd, B>(&mut ws, B, None);
            }
        }
    });
    assert_eq!(allocations, 0, "1000 inference calls allocated");
    assert!(logits.iter().all(|l| l.is_finite()));
}

/// The same with batch normalization: training steps (fused and clipped updates, running
/// statistics), evaluation passes and one-sample inference.
#[test]
fn batch_norm_training_and_inference_allocate_nothing() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    const B: usize = 64;
    let mut r = common::rng(52);
    let mut net = MnistMlpBn::new_boxed(Init::PyTorch, &mut r);
    let mut grads = MnistMlpBn::zeroed_box();
    let mut adam = Adam::<MnistMlpBn>::new_boxed(AdamConfig::DEFAULT);
    let mut clipped = Adam::<MnistMlpBn>::new_boxed(AdamConfig {
        clip_grad_norm: 1.0,
        ..AdamConfig::DEFAULT
    });
    let mut ws = <MnistMlpBn as Network>::Workspace::<B>::zeroed_box();
    let rows: Vec<f32> = (0..B * 784).map(|i| (i % 255) as f32 / 255.0).collect();
    let labels: Vec<u32> = (0..B as u32).map(|i| i % 10).collect();
    let mut dropout_rng = common::rng(53);
    let mut logits = [0.0f32; 10];
    let (losses, allocations) = count(|| {
        let mut losses = [0.0f32; 60];
        for (step, loss) in losses.iter_mut().enumerate() {
            let batch = if step % 4 == 3 { 17 } else { B };
            set_input::<_, Simd>(&mut *ws, &rows[..batch * 784], batch);
            ws.labels_mut(batch).copy_from_slice(&labels[..batch]);
            let mut dropout = Dropout::new(0.2, &mut dropout_rng).unwrap();
            let opt = if step % 2 == 0 {
                &mut adam
            } else {
                &mut clipped
            };
            *loss = train_step::<Simd, MnistMlpBn, _, B>(
                &mut net,
                &mut grads,
                &mut **opt,
                &mut ws,
                batch,
                1e-3,
                Some(&mut dropout),
            );
        }
        losses
    });
    assert_eq!(
        allocations, 0,
        "60 training steps with batch norms allocated"
    );
    assert!(losses.iter().all(|l| l.is_finite()));
    assert_eq!(net.batches_tracked(), &[60; 3]);
    let view = net.view();
    let ((), allocations) = count(|| {
        for i in 0..1000 {
            let x = &rows[(i % B) * 784..][..784];
            view.forward_one::<Simd>(x, &mut logits);
            if i % 100 == 0 {
                net.forward::<Simd, B>(&mut ws, B, None);
            }
        }
    });
    assert_eq!(
        allocations, 0,
        "1000 inference calls with batch norms allocated"
    );
    assert!(logits.iter().all(|l| l.is_finite()));
}

struct Silent;

impl constnet::train::Report for Silent {
    fn batch(&mut self, _: &constnet::train::BatchReport) {}
    fn epoch(&mut self, _: &constnet::train::EpochReport) {}
}

#[test]
fn a_whole_epoch_with_batch_assembly_allocates_nothing_on_any_thread() {
    use constnet::data::mnist::{Mnist, OpenOptions};
    use constnet::train::{Config, Run};
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mnist = Mnist::open(&common::mnist_dir(), OpenOptions::default()).unwrap();
    let rmsprop = constnet::train::OptimizerChoice::RmsProp(constnet::RmsPropConfig {
        momentum: 0.9,
        centered: true,
        ..constnet::RmsPropConfig::DEFAULT
    });
    let augmented = Config::augmented().augment;
    let none = constnet::data::augment::Augment::NONE;
    for (threads, optimizer, augment) in [
        (1, Config::default().optimizer, none),
        (2, Config::default().optimizer, none),
        (2, rmsprop, none),
        (1, Config::default().optimizer, augmented),
        (2, Config::default().optimizer, augmented),
    ] {
        let config = Config {
            dropout: 0.1,
            threads,
            optimizer,
            augment,
            lr: if optimizer == rmsprop { 1e-4 } else { 1e-3 },
            ..Config::default()
        };
        let mut run = Run::<MnistMlp>::new(config, mnist.train.count).unwrap();
        if optimizer == rmsprop {
            // Parking and resuming the workers (thread 0 running every part) allocates nothing.
            run.set_pacing(constnet::parallel::Pacing::Alternate);
        }
        // Count on every thread: the workers load and train their shards too.
        let (result, allocations) = count_all_threads(|| {
            run.train_epoch(&mnist.train, &mut Silent, |_| Ok(()))
                .map(|(loss, _)| loss)
        });
        let loss = result.unwrap();
        assert_eq!(
            allocations, 0,
            "an epoch on {threads} thread(s) (shuffle, 938 batch loads, steps) allocated, \
             augmentation {augment:?}"
        );
        assert!(loss.is_finite() && loss < 1.5, "epoch loss {loss}");
        assert_eq!(run.steps, 938);
    }
    // With batch norms (one thread): running statistics updated after every step.
    let config = Config {
        dropout: 0.1,
        ..Config::default()
    };
    let mut run = Run::<MnistMlpBn>::new(config, mnist.train.count).unwrap();
    let (result, allocations) = count_all_threads(|| {
        run.train_epoch(&mnist.train, &mut Silent, |_| Ok(()))
            .map(|(loss, _)| loss)
    });
    let loss = result.unwrap();
    assert_eq!(allocations, 0, "an epoch with batch norms allocated");
    assert!(loss.is_finite() && loss < 1.5, "epoch loss {loss}");
    assert_eq!(run.net().batches_tracked(), &[938; 3]);
}

#[test]
fn the_counter_sees_this_threads_allocations_but_not_the_harness() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (_, allocations) = count_all_threads(|| std::hint::black_box(vec![0u8; 64]));
    assert_eq!(allocations, 1);
    let (_, idle) = count_all_threads(|| std::thread::sleep(std::time::Duration::from_millis(300)));
    assert_eq!(idle, 0, "the harness's own allocations were counted");
}

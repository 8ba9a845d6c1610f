//! One training step of the reference network (784→256→128→64→10, Adam, softmax
//! cross-entropy): forward, loss, backward and update, through the SIMD kernels and through the
//! scalar reference, at batch 64, 32 and 1. Throughput is in samples (criterion's "elem/s").
//!
//! Run: `cargo bench --bench train_step`, then `python3 benches/table.py` for medians.

use constnet::Params;
use constnet::{
    Adam, AdamConfig, Backend, Init, MnistMlp, Network, Reference, Simd, Workspace, set_input,
    train_step,
};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rand_xoshiro::Xoshiro256PlusPlus;
use rand_xoshiro::rand_core::SeedableRng;
use std::time::Duration;

const B: usize = 64;

fn bench_step<K: Backend>(c: &mut Criterion, name: &str, batch: usize) {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(0);
    let mut net = MnistMlp::new_boxed(Init::PyTorch, &mut rng);
    let mut grads = MnistMlp::zeroed_box();
    let mut adam = Adam::<MnistMlp>::new_boxed(AdamConfig::DEFAULT);
    let mut ws = <MnistMlp as Network>::Workspace::<B>::zeroed_box();
    let rows: Vec<f32> = (0..batch * 784)
        .map(|i| (i * 37 % 256) as f32 / 255.0)
        .collect();
    set_input::<_, K>(&mut *ws, &rows, batch);
    for (j, l) in ws.labels_mut(batch).iter_mut().enumerate() {
        *l = (j % 10) as u32;
    }
    let mut g = c.benchmark_group(format!("train_step/b{batch}"));
    g.throughput(Throughput::Elements(batch as u64));
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(3));
    g.sample_size(if name == "reference" { 10 } else { 50 });
    g.bench_function(name, |b| {
        b.iter(|| {
            train_step::<K, MnistMlp, _, B>(
                &mut net, &mut grads, &mut *adam, &mut ws, batch, 1e-3, None,
            )
        })
    });
    g.finish();
}

fn steps(c: &mut Criterion) {
    eprintln!("kernels: {}", constnet::kernels::selected());
    for batch in [64, 32, 1] {
        bench_step::<Simd>(c, "simd", batch);
        bench_step::<Reference>(c, "reference", batch);
    }
}

criterion_group!(benches, steps);
criterion_main!(benches);

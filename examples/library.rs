use constnet::data::InMemory;
use constnet::prelude::*;
use constnet::train::{Config, Trainer};

constnet::network! {
    /// 784→128→10 with ReLU. Widths are compile-time constants; a mismatch is a compile error.
    pub struct Mlp { fc1: Dense<784, 128>, fc2: Dense<128, 10> }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Data: 28×28 images as bytes (light on dark, as MNIST) and a label each. A toy set here
    // (digit d is a bright band at row 2 + 2d); `Mnist::open` reads the real one, and
    // `InMemory::from_f32` takes float features.
    let (mut images, mut labels) = (Vec::new(), Vec::new());
    for i in 0..500 {
        let digit = i % 10;
        let mut image = [0u8; 784];
        image[(2 + 2 * digit) * 28..][..56].fill(255);
        images.extend_from_slice(&image);
        labels.push(digit as u8);
    }
    let train = InMemory::from_u8(images, labels, 784)?;

    // The common case: a recipe, a few changes, a dataset; the trained network comes back.
    let trained = Trainer::new(Config::reference())
        .epochs(2)
        .seed(0)
        .batch_size(32)
        .fit::<Mlp>(&train)?;
    println!("accuracy {:.1}%", 100.0 * trained.evaluation.accuracy());
    let net = trained.net;

    // Inference, stack buffers only: one image, or many.
    let mut image = [0u8; 784];
    image[6 * 28..][..56].fill(255);
    let digit = net.predict(&image);
    let mut digits = [0usize; 3];
    net.predict_batch(&[0u8; 3 * 784], &mut digits);
    println!("digit {digit}, digits {digits:?}");

    // For experts, the explicit path: the kernel path, the batch workspace (a compile-time
    // size) and the optimizer are yours, and a step allocates nothing.
    const B: usize = 64;
    let mut rng = constnet::data::derived_rng(0, 0, 0);
    let mut net = Mlp::new_boxed(Init::PyTorch, &mut rng);
    let mut grads = Mlp::zeroed_box();
    let mut adam = Adam::<Mlp>::new_boxed(AdamConfig::DEFAULT);
    let mut ws = <Mlp as Network>::Workspace::<B>::zeroed_box();
    let rows = vec![0.5f32; 2 * 784]; // a batch of 2 rows [batch][784]
    set_input::<_, Simd>(&mut *ws, &rows, 2);
    ws.labels_mut(2).copy_from_slice(&[3, 7]);
    let loss =
        train_step::<Simd, _, _, B>(&mut *net, &mut *grads, &mut *adam, &mut ws, 2, 1e-3, None);
    let mut logits = [0.0f32; 10];
    net.forward_one::<Simd>(&rows[..784], &mut logits);
    println!("loss {loss}, logits {logits:?}");
    Ok(())
}

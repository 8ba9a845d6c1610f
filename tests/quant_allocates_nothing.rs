//! A counting global allocator proves that int8 inference allocates nothing: 1000 one-sample
//! calls and 100 batch calls on every int8 path, with the scratch made before the loop.

mod common;

use common::alloc_counter::{Counting, SERIAL, count};
use constnet::kernels::int8::Int8Path;
use constnet::quant;
use constnet::{Init, MnistMlp, Network};

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[test]
fn int8_inference_allocates_nothing() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut r = common::rng(60);
    let net = MnistMlp::new_boxed(Init::PyTorch, &mut r);
    let images: Vec<u8> = (0..64 * 784).map(|i| (i * 7 % 256) as u8).collect();
    let ranges = quant::calibrate(&*net, &images, 64);
    let model = quant::quantize::<MnistMlp, 4>(&net, &ranges).unwrap();
    let q = model.view();
    let mut scratch = vec![0u8; q.scratch_len(64)];
    let mut logits = vec![0i32; 64 * 10];
    for path in Int8Path::supported() {
        let (digits, allocations) = count(|| {
            let mut digits = 0;
            for i in 0..1000 {
                let x = &images[(i % 64) * 784..][..784];
                q.forward_one(path, x, &mut logits[..10]);
                digits += q.classify(path, x);
                if i % 10 == 0 {
                    q.forward_batch(path, &images, 64, &mut scratch, &mut logits);
                }
            }
            digits
        });
        assert_eq!(allocations, 0, "{path}: int8 inference allocated");
        assert!(digits > 0);
    }
}

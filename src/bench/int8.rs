//! The int8 figures of `constnet bench`: the benchmark's network quantized (calibrated on 2,000
//! training images), timed on the int8 path this CPU selects, beside the f32 figures.

use super::{Timing, cold, measure};
use crate::data::Split;
use crate::kernels::int8::Int8Path;
use crate::quant;
use crate::train;
use crate::{MnistMlp, Network};
use std::hint::black_box;
use std::prelude::rust_2024::*;
use std::time::Duration;

/// What `constnet bench` measures of int8 inference.
#[derive(Clone, Debug)]
pub struct Int8Figures {
    /// The int8 path measured.
    pub path: Int8Path,
    /// Inference over the test set, single thread (as [`train::evaluate_int8`] runs it).
    pub test_set: Timing,
    /// One-sample inference, weights in cache.
    pub one_sample: Timing,
    /// One-sample inference, the caches evicted first.
    pub one_sample_cold: Timing,
}

/// Quantizes `net` and times it.
pub(super) fn figures(
    net: &MnistMlp,
    train_split: &Split,
    test_split: &Split,
    budget: Duration,
) -> Int8Figures {
    let count = train_split.count.min(2000);
    let ranges = quant::calibrate(net, train_split.pixels(), count);
    let model = quant::quantize::<MnistMlp, 4>(net, &ranges).expect("a quantizable network");
    let q = model.view();
    let path = Int8Path::selected();
    let test_set = measure(budget, || {
        black_box(train::evaluate_int8(&q, path, test_split));
    });
    let x = &test_split.pixels()[..MnistMlp::INPUT];
    let mut logits = [0i32; 10];
    let one_sample = measure(budget, || q.forward_one(path, black_box(x), &mut logits));
    let one_sample_cold = cold(&mut || q.forward_one(path, black_box(x), &mut logits));
    Int8Figures {
        path,
        test_set,
        one_sample,
        one_sample_cold,
    }
}

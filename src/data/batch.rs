//! Batches: the epoch's order of samples, and u8 pixels turned into a network's f32 input.
//!
//! Nothing here allocates: the order is a caller-owned slice reshuffled in place, and pixels go
//! straight from the (memory-mapped) file bytes into the workspace's input buffers.
#![forbid(unsafe_code)]

use crate::kernels::{Backend, LoadU8Batch};
use crate::model::Workspace;
use rand_xoshiro::Xoshiro256PlusPlus;
use rand_xoshiro::rand_core::{Rng, SeedableRng};

/// The generator for a purpose (`stream`) at a position (`index`) of a run seeded with `seed`.
///
/// Each epoch's shuffle and each step's dropout mask get their own generator derived from
/// (seed, stream, index) alone, so any step of a run can be reproduced, or resumed, without
/// replaying the ones before it.
pub fn derived_rng(seed: u64, stream: u64, index: u64) -> Xoshiro256PlusPlus {
    // SplitMix64-style mixing of the three numbers into one seed.
    let mut z = seed
        ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03)
        ^ index.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    Xoshiro256PlusPlus::seed_from_u64(z ^ (z >> 31))
}

/// Stream numbers for [`derived_rng`].
pub mod stream {
    /// Parameter initialisation.
    pub const INIT: u64 = 1;
    /// The order of samples in an epoch.
    pub const SHUFFLE: u64 = 2;
    /// Dropout masks of a step.
    pub const DROPOUT: u64 = 3;
}

/// Fills `order` with a uniformly random permutation of `0..order.len()` for `epoch` of the run
/// seeded with `seed` (Fisher–Yates). The result depends only on (seed, epoch, length).
pub fn shuffle(order: &mut [u32], seed: u64, epoch: u64) {
    for (i, o) in order.iter_mut().enumerate() {
        *o = i as u32;
    }
    let mut rng = derived_rng(seed, stream::SHUFFLE, epoch);
    for i in (1..order.len()).rev() {
        // 64-bit draws make the modulo bias below 2^-40 for any dataset that fits in u32.
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
}

/// Loads the samples at `indices` into the workspace: pixels (`pixels` holds images of
/// `W::INPUT` bytes each) scaled by 1/255 into both input layouts, labels copied.
///
/// # Panics
/// If an index is out of range or there are more indices than the workspace's batch.
pub fn fill_batch<W: Workspace, K: Backend>(
    ws: &mut W,
    pixels: &[u8],
    labels: &[u8],
    indices: &[u32],
) {
    let batch = indices.len();
    assert!(
        batch <= W::BATCH,
        "fill_batch: {batch} samples exceed the workspace's batch of {}",
        W::BATCH
    );
    let (features, rows) = ws.input_mut(batch);
    let image = |j: usize| &pixels[indices[j] as usize * W::INPUT..][..W::INPUT];
    K::run(LoadU8Batch {
        features: W::INPUT,
        batch,
        images: image,
        rows,
        cols: features,
    });
    for (l, &i) in ws.labels_mut(batch).iter_mut().zip(indices) {
        *l = u32::from(labels[i as usize]);
    }
}

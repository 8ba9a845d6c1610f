//! Randomness derived from a seed, and the epoch's order of samples.
//!
//! Nothing here allocates: the order is a caller-owned slice reshuffled in place.
#![forbid(unsafe_code)]

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
    /// A sample's augmentation in an epoch ([`crate::data::augment`]).
    pub const AUGMENT: u64 = 4;
    /// The validation split: one fixed shuffle of the training set, the same for every seed.
    pub const VALIDATION: u64 = 5;
}

/// Fills `order` with a uniformly random permutation of `0..order.len()` for `epoch` of the run
/// seeded with `seed` (Fisher–Yates). The result depends only on (seed, epoch, length).
pub fn shuffle(order: &mut [u32], seed: u64, epoch: u64) {
    permute(order, derived_rng(seed, stream::SHUFFLE, epoch));
}

/// The fixed shuffle of `0..order.len()` that splits a training set: its last N samples are the
/// validation split of `--val N`, the others the samples trained on. The same for every seed,
/// so that runs with different seeds are compared on the same validation samples.
pub fn validation_split(order: &mut [u32]) {
    permute(order, derived_rng(0, stream::VALIDATION, 0));
}

/// A uniformly random permutation of `0..order.len()` into `order` (Fisher–Yates).
fn permute(order: &mut [u32], mut rng: Xoshiro256PlusPlus) {
    for (i, o) in order.iter_mut().enumerate() {
        *o = i as u32;
    }
    for i in (1..order.len()).rev() {
        // 64-bit draws make the modulo bias below 2^-40 for any dataset that fits in u32.
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
}

//! What the benches share: operands laid out the way the library lays out its own.

/// A float buffer whose first element sits on a 64-byte boundary, as every tensor and
/// activation buffer of the library does (`Aligned`). A plain `Vec<f32>` is only 16-byte
/// aligned, and then most 64-byte vector loads straddle two cache lines: measured on it, an
/// AVX-512 kernel runs up to a third slower than it does inside a network.
pub struct Buf {
    storage: Vec<f32>,
    at: usize,
    len: usize,
}

impl Buf {
    /// `values`, copied to a 64-byte boundary.
    pub fn new(values: &[f32]) -> Self {
        let mut storage = vec![0.0; values.len() + 16];
        let at = (16 - (storage.as_ptr() as usize / 4) % 16) % 16;
        storage[at..at + values.len()].copy_from_slice(values);
        Self {
            storage,
            at,
            len: values.len(),
        }
    }

    /// `n` zeros.
    pub fn zeros(n: usize) -> Self {
        Self::new(&vec![0.0; n])
    }
}

impl Clone for Buf {
    // Not derived: a copied Vec lands at a new address, to be aligned again.
    fn clone(&self) -> Self {
        Self::new(self)
    }
}

impl std::ops::Deref for Buf {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.storage[self.at..self.at + self.len]
    }
}

impl std::ops::DerefMut for Buf {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.storage[self.at..self.at + self.len]
    }
}

/// `n` deterministic floats in [-1, 1): values do not affect speed, they need only be finite.
pub fn filled(n: usize, seed: u32) -> Buf {
    let values: Vec<f32> = (0..n as u32)
        .map(|i| {
            ((i.wrapping_mul(2654435761).wrapping_add(seed) >> 8) as f32 / (1 << 24) as f32) * 2.0
                - 1.0
        })
        .collect();
    Buf::new(&values)
}

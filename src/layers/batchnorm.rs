//! `BatchNorm<N>`: batch normalization over `N` features, PyTorch's `nn.BatchNorm1d`, with the
//! ReLU that follows it fused in.
//!
//! Plain algorithm, for each feature `j` of a batch `z [N][batch]` (feature-major, so each
//! feature's batch is one contiguous row):
//!
//! ```text
//! training:    mean = Σ z / batch,  var = Σ (z − mean)² / batch      (biased)
//!              x̂ = (z − mean) / √(var + eps),  y = relu(γ·x̂ + β)
//!              running_mean ← (1 − m)·running_mean + m·mean
//!              running_var  ← (1 − m)·running_var  + m·var·batch/(batch − 1)   (unbiased)
//!              num_batches_tracked += 1
//! evaluation:  y = relu((z − running_mean) / √(running_var + eps)·γ + β)
//! backward:    dβ = Σ dy,  dγ = Σ dy·x̂,
//!              dz = γ/√(var + eps)/batch · (batch·dy − dβ − x̂·dγ)
//! ```
//!
//! with `eps` = [`EPS`] and `m` = [`MOMENTUM`], PyTorch's defaults. `dy` is the gradient at the
//! normalised output before the ReLU (the next layer's input gradient, masked by `y > 0`).
//!
//! The layer sits between a `Dense` (run without its ReLU: the normalisation must see the raw
//! product) and the next layer. The Dense's bias is redundant before a normalisation (the mean
//! removes it) but is kept, as PyTorch keeps it, so model files interchange.
//!
//! Storage: `weight` (γ) and `bias` (β) are parameters in the network's flat block, trained by
//! the optimizer like any other; `running_mean` and `running_var` are buffers stored after that
//! block (no gradient, no optimizer state), and `num_batches_tracked` a `u64` beside it.
//!
//! The loops run feature by feature over contiguous rows, in plain Rust the compiler
//! vectorises: the layer costs O(batch·N), small next to the products around it, so it has no
//! hand-written SIMD path and these functions are both the specification and the kernel.
#![forbid(unsafe_code)]

use crate::aligned::{Aligned, Flat};

/// PyTorch's `eps`: added to the variance before the square root.
pub const EPS: f32 = 1e-5;
/// PyTorch's `momentum`: the weight of the new batch in the running statistics.
pub const MOMENTUM: f32 = 0.1;

/// Batch normalization of `N` features followed by ReLU: what `network!` declares after a
/// `Dense<_, N>`. Its tensors are `weight [N]`, `bias [N]` (parameters) and `running_mean [N]`,
/// `running_var [N]`, `num_batches_tracked []` (buffers).
#[derive(Clone, Copy, Debug, Default)]
pub struct BatchNorm<const N: usize>;

/// A borrowed view of a batch-normalization layer's tensors, wherever they live.
#[derive(Clone, Copy, Debug)]
pub struct BatchNormRef<'a, const N: usize> {
    /// γ, `[N]`.
    pub weight: &'a [f32; N],
    /// β, `[N]`.
    pub bias: &'a [f32; N],
    /// The running mean, `[N]`.
    pub running_mean: &'a [f32; N],
    /// The running (unbiased) variance, `[N]`.
    pub running_var: &'a [f32; N],
}

/// `1/√(var + eps)`.
fn inv_std(var: f32) -> f32 {
    1.0 / libm::sqrtf(var + EPS)
}

/// ReLU that keeps NaN (as the dense kernels' ReLU does).
fn relu(v: f32) -> f32 {
    if v < 0.0 { 0.0 } else { v }
}

impl<'a, const N: usize> BatchNormRef<'a, N> {
    /// A view over flat slices of `N` floats each, or `None` if a length is wrong.
    pub fn from_slices(
        weight: &'a [f32],
        bias: &'a [f32],
        running_mean: &'a [f32],
        running_var: &'a [f32],
    ) -> Option<Self> {
        Some(Self {
            weight: weight.try_into().ok()?,
            bias: bias.try_into().ok()?,
            running_mean: running_mean.try_into().ok()?,
            running_var: running_var.try_into().ok()?,
        })
    }

    /// The affine map evaluation applies to feature `j`: `y = relu(a·z + c)` with
    /// `a = γ/√(running_var + eps)`, `c = β − running_mean·a`. Folding uses it too.
    pub fn scale_shift(self, j: usize) -> (f32, f32) {
        let a = self.weight[j] * inv_std(self.running_var[j]);
        (a, self.bias[j] - self.running_mean[j] * a)
    }

    /// Training forward pass: normalises `z [N][batch]` with the batch's own statistics into
    /// `work.y` (after ReLU), keeping `x̂` and the statistics in `work` for the backward pass
    /// and the running update.
    pub fn forward_train<const B: usize>(
        self,
        z: &[f32],
        work: &mut BatchNormWork<N, B>,
        batch: usize,
    ) {
        assert!(
            batch > 0 && z.len() == N * batch,
            "batch norm: z is [N][batch]"
        );
        let xhat = &mut work.xhat.flat_mut()[..N * batch];
        let y = &mut work.y.flat_mut()[..N * batch];
        let rows = z.chunks_exact(batch).zip(xhat.chunks_exact_mut(batch));
        for (j, ((z, xhat), y)) in rows.zip(y.chunks_exact_mut(batch)).enumerate() {
            let mean = z.iter().sum::<f32>() / batch as f32;
            let var = z.iter().map(|&v| (v - mean) * (v - mean)).sum::<f32>() / batch as f32;
            let inv = inv_std(var);
            let (g, b) = (self.weight[j], self.bias[j]);
            for ((&z, xhat), y) in z.iter().zip(xhat.iter_mut()).zip(y.iter_mut()) {
                *xhat = (z - mean) * inv;
                *y = relu(g * *xhat + b);
            }
            work.mean.0[j] = mean;
            work.var.0[j] = var;
            work.inv_std.0[j] = inv;
        }
    }

    /// Evaluation forward pass: `y = relu((z − running_mean)/√(running_var + eps)·γ + β)`,
    /// z and y `[N][batch]` (y overwritten).
    pub fn forward_eval(self, z: &[f32], y: &mut [f32], batch: usize) {
        assert!(
            z.len() == N * batch && y.len() == N * batch,
            "batch norm: z and y are [N][batch]"
        );
        for (j, (z, y)) in z
            .chunks_exact(batch.max(1))
            .zip(y.chunks_exact_mut(batch.max(1)))
            .enumerate()
        {
            let (inv, mean) = (inv_std(self.running_var[j]), self.running_mean[j]);
            let (g, b) = (self.weight[j], self.bias[j]);
            for (&z, y) in z.iter().zip(y.iter_mut()) {
                *y = relu((z - mean) * inv * g + b);
            }
        }
    }

    /// The forward pass for `train`ing or evaluation (see the two above); y in `work.y`.
    pub fn forward<const B: usize>(
        self,
        z: &[f32],
        work: &mut BatchNormWork<N, B>,
        batch: usize,
        train: bool,
    ) {
        if train {
            self.forward_train(z, work, batch);
        } else {
            self.forward_eval(z, &mut work.y.flat_mut()[..N * batch], batch);
        }
    }

    /// Evaluation for one sample, in place: `z [N]` becomes `y`.
    pub fn forward_one(self, z: &mut [f32]) {
        for (j, z) in z.iter_mut().enumerate().take(N) {
            let (inv, mean) = (inv_std(self.running_var[j]), self.running_mean[j]);
            *z = relu((*z - mean) * inv * self.weight[j] + self.bias[j]);
        }
    }

    /// Backward pass after [`BatchNormRef::forward_train`]: from `work.dz` (the gradient at
    /// the normalised output, before the ReLU) to `dz [N][batch]` (the preceding Dense's, at
    /// its product; overwritten), with γ's and β's gradients written to `work.dweight` and
    /// `work.dbias`.
    pub fn backward<const B: usize>(
        self,
        work: &mut BatchNormWork<N, B>,
        dz: &mut [f32],
        batch: usize,
    ) {
        assert!(
            batch > 0 && dz.len() == N * batch,
            "batch norm: dz is [N][batch]"
        );
        let xhat = &work.xhat.flat()[..N * batch];
        let dy = &work.dz.flat()[..N * batch];
        let rows = xhat.chunks_exact(batch).zip(dy.chunks_exact(batch));
        for (j, ((xhat, dy), dz)) in rows.zip(dz.chunks_exact_mut(batch)).enumerate() {
            let dbeta = dy.iter().sum::<f32>();
            let dgamma = dy.iter().zip(xhat).map(|(&d, &x)| d * x).sum::<f32>();
            let k = self.weight[j] * work.inv_std.0[j] / batch as f32;
            let n = batch as f32;
            for ((&d, &x), dz) in dy.iter().zip(xhat).zip(dz.iter_mut()) {
                *dz = k * (n * d - dbeta - x * dgamma);
            }
            work.dweight.0[j] = dgamma;
            work.dbias.0[j] = dbeta;
        }
    }
}

/// Moves the running statistics towards a training batch's (`mean`, biased `var`) of `batch`
/// samples, as PyTorch does: momentum [`MOMENTUM`], the variance made unbiased. A batch of one
/// sample has no unbiased variance (PyTorch refuses it in training): the statistics are left
/// alone and `false` returned, so the caller does not count it.
pub fn update_running(
    mean: &[f32],
    var: &[f32],
    batch: usize,
    running_mean: &mut [f32],
    running_var: &mut [f32],
) -> bool {
    if batch < 2 {
        return false;
    }
    let unbias = batch as f32 / (batch - 1) as f32;
    for (rm, &m) in running_mean.iter_mut().zip(mean) {
        *rm = (1.0 - MOMENTUM) * *rm + MOMENTUM * m;
    }
    for (rv, &v) in running_var.iter_mut().zip(var) {
        *rv = (1.0 - MOMENTUM) * *rv + MOMENTUM * v * unbias;
    }
    true
}

/// Folds an evaluation-mode batch normalization (`[weight, bias, running_mean,
/// running_var]`, `[N]` each) into the dense layer before it: `w' = w·a`,
/// `b' = (b − running_mean)·a + β` with `a = γ/√(running_var + eps)`, per output row. `w` is
/// `[N][IN]`, `b` `[N]`; the layer then computes the normalised value directly.
pub fn fold_into_dense(bn: [&[f32]; 4], w: &mut [f32], b: &mut [f32]) {
    let [weight, bias, mean, var] = bn;
    let n = b.len();
    assert!(
        n > 0
            && w.len().is_multiple_of(n)
            && [weight, bias, mean, var].iter().all(|t| t.len() == n),
        "fold: w is [N][IN], b and the batch norm's tensors [N]"
    );
    for (j, (row, b)) in w
        .chunks_exact_mut(w.len() / n)
        .zip(b.iter_mut())
        .enumerate()
    {
        let a = weight[j] * inv_std(var[j]);
        for w in row {
            *w *= a;
        }
        *b = (*b - mean[j]) * a + bias[j];
    }
}

/// One batch-normalization layer's buffers for a batch of up to `B` samples (feature-major,
/// the first `N·batch` floats used).
#[derive(bytemuck::Zeroable)]
#[repr(C)]
pub struct BatchNormWork<const N: usize, const B: usize> {
    /// The output after ReLU (and dropout), `[N][batch]`: the next layer's input.
    pub y: Aligned<[[f32; B]; N]>,
    /// The gradient at the normalised output before the ReLU, `[N][batch]`.
    pub dz: Aligned<[[f32; B]; N]>,
    /// The normalised input x̂ of the last training pass, `[N][batch]`.
    pub xhat: Aligned<[[f32; B]; N]>,
    /// The last training batch's mean, `[N]`.
    pub mean: Aligned<[f32; N]>,
    /// The last training batch's biased variance, `[N]`.
    pub var: Aligned<[f32; N]>,
    /// `1/√(var + eps)`, `[N]`.
    pub inv_std: Aligned<[f32; N]>,
    /// γ's gradient from the last backward pass, `[N]`.
    pub dweight: Aligned<[f32; N]>,
    /// β's gradient from the last backward pass, `[N]`.
    pub dbias: Aligned<[f32; N]>,
}

impl<const N: usize, const B: usize> BatchNormWork<N, B> {
    /// All-zero buffers, usable in a `static`.
    pub const ZEROED: Self = Self {
        y: Aligned([[0.0; B]; N]),
        dz: Aligned([[0.0; B]; N]),
        xhat: Aligned([[0.0; B]; N]),
        mean: Aligned([0.0; N]),
        var: Aligned([0.0; N]),
        inv_std: Aligned([0.0; N]),
        dweight: Aligned([0.0; N]),
        dbias: Aligned([0.0; N]),
    };

    /// The output of the last forward pass, `[N][batch]`.
    pub fn y(&self, batch: usize) -> &[f32] {
        &self.y.flat()[..N * batch]
    }
    /// The output buffer, `[N][batch]`.
    pub fn y_mut(&mut self, batch: usize) -> &mut [f32] {
        &mut self.y.flat_mut()[..N * batch]
    }
    /// The output and the gradient buffer at once (the next layer's backward reads one and
    /// writes the other).
    pub fn y_and_dz_mut(&mut self, batch: usize) -> (&[f32], &mut [f32]) {
        (
            &self.y.flat()[..N * batch],
            &mut self.dz.flat_mut()[..N * batch],
        )
    }
    /// γ's and β's gradients from the last backward pass.
    pub fn grads(&self) -> (&[f32], &[f32]) {
        (&self.dweight.0[..], &self.dbias.0[..])
    }
    /// The last training batch's mean and biased variance.
    pub fn stats(&self) -> (&[f32], &[f32]) {
        (&self.mean.0[..], &self.var.0[..])
    }
}

/// Initial values, PyTorch's: γ = 1, β = 0, running mean 0, running variance 1. `which` is
/// the tensor's place among a layer's four (weight, bias, running_mean, running_var).
pub const fn initial_value(which: usize) -> f32 {
    if which == 0 || which == 3 { 1.0 } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PyTorch's numbers for a batch of 4 with 2 features, computed by the formulas.
    #[test]
    fn training_pass_matches_the_formulas() {
        let z = [1.0, 2.0, 3.0, 6.0, -1.0, -1.0, -1.0, -1.0];
        let (w, b, rm, rv) = ([2.0, 1.0], [0.5, 0.25], [0.0; 2], [1.0; 2]);
        let bn = BatchNormRef::<2>::from_slices(&w, &b, &rm, &rv).unwrap();
        let mut work = BatchNormWork::<2, 4>::ZEROED;
        bn.forward_train(&z, &mut work, 4);
        // mean 3, biased var (4+1+0+9)/4 = 3.5
        assert_eq!(work.mean.0, [3.0, -1.0]);
        assert_eq!(work.var.0, [3.5, 0.0]);
        let inv = 1.0 / libm::sqrtf(3.5 + EPS);
        for (i, &v) in z[..4].iter().enumerate() {
            let want = relu(2.0 * (v - 3.0) * inv + 0.5);
            assert!((work.y.0[0][i] - want).abs() < 1e-6);
        }
        assert_eq!(&work.y.0[1], &[0.25; 4], "a constant feature gives β");
        let (mut rm, mut rv) = ([0.0; 2], [1.0; 2]);
        assert!(update_running(
            &work.mean.0,
            &work.var.0,
            4,
            &mut rm,
            &mut rv
        ));
        assert!(
            (rm[0] - 0.3).abs() < 1e-7 && (rm[1] + 0.1).abs() < 1e-7,
            "{rm:?}"
        );
        // unbiased 14/3; 0.9 + 0.1·14/3
        assert!((rv[0] - (0.9 + 0.1 * 14.0 / 3.0)).abs() < 1e-6);
        assert!((rv[1] - 0.9).abs() < 1e-7);
    }
}

//! Evaluation: a network over a split of the data, against the labels.
#![forbid(unsafe_code)]

use std::prelude::rust_2024::*;

use super::BATCH;
use crate::data::{Dataset, Split};
use crate::kernels::Simd;
use crate::kernels::int8::Int8Path;
use crate::logits::argmax;
use crate::model::{Network, NetworkView, Workspace};
use crate::parallel::load_rows;
use crate::quant::{QuantNet, argmax as argmax_i32};

/// Test-set results: accuracy, per-class accuracy and the confusion matrix.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    /// Samples predicted correctly.
    pub correct: usize,
    /// Samples evaluated.
    pub total: usize,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<u32>>,
}

impl Evaluation {
    /// Fraction correct, in [0, 1].
    pub fn accuracy(&self) -> f64 {
        self.correct as f64 / self.total.max(1) as f64
    }

    /// Fraction correct among samples of class `c`.
    pub fn class_accuracy(&self, c: usize) -> f64 {
        let row = &self.confusion[c];
        f64::from(row[c]) / f64::from(row.iter().sum::<u32>().max(1))
    }
}

/// Runs the network over a dataset in batches of [`BATCH`] and compares with the labels.
///
/// # Panics
/// If the dataset's rows are not as wide as the network's input or a label is not one of its
/// classes ([`crate::data::dataset::check`] says so without panicking).
pub fn evaluate<'a, V: NetworkView<'a>>(
    view: V,
    split: &(impl Dataset + ?Sized),
    ws: &mut <V::Net as Network>::Workspace<BATCH>,
) -> Evaluation {
    evaluate_first(view, split, split.len(), ws)
}

/// [`evaluate`] on the split's first `n` samples (all of them if it has fewer): the training
/// accuracy of a run is measured on a fixed part of the training set, at a sixth of the cost.
pub fn evaluate_first<'a, V: NetworkView<'a>>(
    view: V,
    split: &(impl Dataset + ?Sized),
    n: usize,
    ws: &mut <V::Net as Network>::Workspace<BATCH>,
) -> Evaluation {
    let indices: Vec<u32> = (0..n.min(split.len()) as u32).collect();
    evaluate_samples(view, split, &indices, ws)
}

/// [`evaluate`] on the samples `indices` of a split only (a validation split).
pub fn evaluate_samples<'a, V: NetworkView<'a>>(
    view: V,
    split: &(impl Dataset + ?Sized),
    indices: &[u32],
    ws: &mut <V::Net as Network>::Workspace<BATCH>,
) -> Evaluation {
    let classes = V::Net::OUTPUT;
    let mut confusion = vec![vec![0u32; classes]; classes];
    let mut predictions = [0u32; BATCH];
    for chunk in indices.chunks(BATCH) {
        let batch = chunk.len();
        load_rows::<_, Simd>(ws, split.rows(), split.labels(), chunk);
        view.forward::<Simd, BATCH>(ws, batch, None);
        argmax(classes, batch, ws.logits(batch), &mut predictions[..batch]);
        for (&p, &label) in predictions[..batch].iter().zip(ws.labels(batch)) {
            confusion[label as usize][p as usize] += 1;
        }
    }
    let correct = (0..classes).map(|c| confusion[c][c] as usize).sum();
    Evaluation {
        correct,
        total: indices.len(),
        confusion,
    }
}

/// [`evaluate`] for an int8 network on `path`: batches of [`BATCH`] images straight from the
/// u8 pixels (the int8 input is the pixel itself).
pub fn evaluate_int8<const L: usize>(
    net: &QuantNet<'_, L>,
    path: Int8Path,
    split: &Split,
) -> Evaluation {
    let classes = net.classes();
    let mut confusion = vec![vec![0u32; classes]; classes];
    let mut scratch = vec![0u8; net.scratch_len(BATCH)];
    let mut logits = vec![0i32; BATCH * classes];
    let inputs = net.inputs();
    let images = split.pixels().chunks(BATCH * inputs);
    for (x, labels) in images.zip(split.labels().chunks(BATCH)) {
        let batch = labels.len();
        let logits = &mut logits[..batch * classes];
        net.forward_batch(path, &x[..batch * inputs], batch, &mut scratch, logits);
        for (l, &label) in logits.chunks_exact(classes).zip(labels) {
            confusion[usize::from(label)][argmax_i32(l)] += 1;
        }
    }
    let correct = (0..classes).map(|c| confusion[c][c] as usize).sum();
    Evaluation {
        correct,
        total: split.count,
        confusion,
    }
}

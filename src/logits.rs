//! What is read off a network's logits (the fused softmax cross-entropy loss is a kernel,
//! [`crate::kernels::SoftmaxXent`]): predicted classes, accuracy, probabilities.
//!
//! Logits are feature-major, `[classes][batch]`, as every activation in this crate.
#![forbid(unsafe_code)]

/// The predicted class of each sample: the index of its largest logit (the first on ties; a
/// NaN logit never wins). logits `[classes][batch]`, predictions `[batch]`.
pub fn argmax(classes: usize, batch: usize, logits: &[f32], predictions: &mut [u32]) {
    assert_eq!(
        logits.len(),
        classes * batch,
        "argmax: logits must be classes × batch"
    );
    assert_eq!(
        predictions.len(),
        batch,
        "argmax: one prediction per sample"
    );
    for (j, p) in predictions.iter_mut().enumerate() {
        let mut best = 0;
        for c in 1..classes {
            if logits[c * batch + j] > logits[best * batch + j] {
                best = c;
            }
        }
        *p = best as u32;
    }
}

/// How many samples' largest logit is at their label.
pub fn count_correct(classes: usize, batch: usize, logits: &[f32], labels: &[u32]) -> usize {
    assert_eq!(
        logits.len(),
        classes * batch,
        "count_correct: logits must be classes × batch"
    );
    assert_eq!(labels.len(), batch, "count_correct: one label per sample");
    (0..batch)
        .filter(|&j| {
            let mut best = 0;
            for c in 1..classes {
                if logits[c * batch + j] > logits[best * batch + j] {
                    best = c;
                }
            }
            best as u32 == labels[j]
        })
        .count()
}

/// Softmax of one sample's logits into `probabilities`, computed stably.
pub fn softmax(logits: &[f32], probabilities: &mut [f32]) {
    assert_eq!(
        logits.len(),
        probabilities.len(),
        "softmax: one probability per logit"
    );
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for (p, &z) in probabilities.iter_mut().zip(logits) {
        *p = libm::expf(z - max);
        sum += *p;
    }
    for p in probabilities {
        *p /= sum;
    }
}

//! Learning-rate schedules, evaluated per optimizer step.
#![forbid(unsafe_code)]

/// A learning-rate schedule, evaluated per optimizer step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Schedule {
    /// The base rate throughout.
    Constant,
    /// The base rate times `gamma` for every `every` steps completed (PyTorch's `StepLR`).
    Step {
        /// Steps between decays.
        every: u64,
        /// Factor applied at each decay.
        gamma: f32,
    },
    /// Cosine decay from the base rate to 0 over `total` steps (PyTorch's `CosineAnnealingLR`
    /// with `T_max = total`, `eta_min = 0`, stepped after every batch).
    Cosine {
        /// Steps over which the rate falls to 0.
        total: u64,
    },
}

impl Schedule {
    /// The rate for step `step` (0 for the first update).
    pub fn lr(&self, base: f32, step: u64) -> f32 {
        match *self {
            Schedule::Constant => base,
            Schedule::Step { every, gamma } => {
                let decays = step.checked_div(every).unwrap_or(0);
                (base as f64 * libm::pow(gamma as f64, decays as f64)) as f32
            }
            Schedule::Cosine { total } => {
                if total == 0 {
                    return base;
                }
                let progress = step.min(total) as f64 / total as f64;
                (base as f64 * 0.5 * (1.0 + libm::cos(core::f64::consts::PI * progress))) as f32
            }
        }
    }
}

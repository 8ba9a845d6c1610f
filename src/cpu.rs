//! The CPU features this binary was compiled for, checked against the CPU it runs on.
//!
//! The kernels choose their instruction set at run time ([`crate::kernels::selected`]), so a
//! default build runs on any x86-64. But a build with `RUSTFLAGS="-C target-cpu=native"` (or
//! `x86-64-v3`, …) lets LLVM use those instructions anywhere, outside the kernels too: started
//! on an older CPU it would die of an illegal instruction. `main` calls [`missing_features`]
//! first and exits with a message instead.
#![forbid(unsafe_code)]

use std::prelude::rust_2024::*;

/// x86 features that change the code the kernels compile to, in the order to report them.
#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
const CHECKED: &[(&str, bool)] = &[
    ("sse4.1", cfg!(target_feature = "sse4.1")),
    ("avx", cfg!(target_feature = "avx")),
    ("avx2", cfg!(target_feature = "avx2")),
    ("fma", cfg!(target_feature = "fma")),
    ("bmi2", cfg!(target_feature = "bmi2")),
    ("avx512f", cfg!(target_feature = "avx512f")),
    ("avx512bw", cfg!(target_feature = "avx512bw")),
    ("avx512dq", cfg!(target_feature = "avx512dq")),
    ("avx512vl", cfg!(target_feature = "avx512vl")),
];

/// The features compiled in (`compiled`) that `detected` says the CPU lacks.
pub fn missing_given(
    compiled: &[(&'static str, bool)],
    detected: impl Fn(&str) -> bool,
) -> Vec<&'static str> {
    compiled
        .iter()
        .filter(|&&(name, on)| on && !detected(name))
        .map(|&(name, _)| name)
        .collect()
}

/// The instruction-set extensions this binary uses that this CPU does not have.
pub fn missing_features() -> Vec<&'static str> {
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    {
        missing_given(CHECKED, |name| match name {
            "sse4.1" => std::is_x86_feature_detected!("sse4.1"),
            "avx" => std::is_x86_feature_detected!("avx"),
            "avx2" => std::is_x86_feature_detected!("avx2"),
            "fma" => std::is_x86_feature_detected!("fma"),
            "bmi2" => std::is_x86_feature_detected!("bmi2"),
            "avx512f" => std::is_x86_feature_detected!("avx512f"),
            "avx512bw" => std::is_x86_feature_detected!("avx512bw"),
            "avx512dq" => std::is_x86_feature_detected!("avx512dq"),
            "avx512vl" => std::is_x86_feature_detected!("avx512vl"),
            _ => true,
        })
    }
    #[cfg(not(any(target_arch = "x86", target_arch = "x86_64")))]
    {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_compiled_features_the_cpu_lacks() {
        let compiled = [("avx2", true), ("fma", true), ("avx512f", false)];
        assert_eq!(missing_given(&compiled, |f| f != "fma"), ["fma"]);
        assert_eq!(missing_given(&compiled, |_| false), ["avx2", "fma"]);
        assert!(missing_given(&compiled, |_| true).is_empty());
    }

    #[test]
    fn this_cpu_runs_this_build() {
        assert!(missing_features().is_empty());
    }
}

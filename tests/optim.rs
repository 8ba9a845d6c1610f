//! Optimizer updates against the textbook formulas computed here in f64, every kernel path
//! against the reference (bit for bit), and the learning-rate schedules.

// Index loops mirror the formulas they check.
#![allow(clippy::needless_range_loop, clippy::too_many_arguments)]

mod common;

use common::*;
use constnet::Params;
use constnet::kernels::Update;
use constnet::optim::{AdamStep, RmsPropStep, Rule, SgdStep};
use constnet::{
    Adam, AdamConfig, Backend, Network, Optimizer, Reference, RmsProp, RmsPropConfig, Schedule,
    Sgd, SgdConfig, Simd,
};

on_every_path!(
    adam_and_adamw_follow_the_textbook,
    adam_steps_are_within_4_ulp_of_pytorchs_order,
    sgd_momentum_and_nesterov_follow_the_textbook,
    rmsprop_matches_steps_computed_by_hand,
    rmsprop_follows_pytorch_in_every_combination,
    updates_equal_the_reference_bit_for_bit,
    every_rule_reports_a_non_finite_gradient,
);

#[test]
fn reference_updates_follow_the_textbook() {
    adam_and_adamw_follow_the_textbook::<Reference>();
    adam_steps_are_within_4_ulp_of_pytorchs_order::<Reference>();
    sgd_momentum_and_nesterov_follow_the_textbook::<Reference>();
    rmsprop_matches_steps_computed_by_hand::<Reference>();
    rmsprop_follows_pytorch_in_every_combination::<Reference>();
    every_rule_reports_a_non_finite_gradient::<Reference>();
}

/// One Adam update of `p` on backend `K`.
fn adam<K: Backend>(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], step: &AdamStep) {
    let rule = Rule::Adam(*step);
    K::run(Update {
        rule: &rule,
        params: p,
        grads: g,
        first: m,
        second: v,
        third: &mut [],
    });
}

/// One SGD update of `p` on backend `K`.
fn sgd<K: Backend>(p: &mut [f32], g: &[f32], velocity: &mut [f32], step: &SgdStep) {
    let rule = Rule::Sgd(*step);
    K::run(Update {
        rule: &rule,
        params: p,
        grads: g,
        first: velocity,
        second: &mut [],
        third: &mut [],
    });
}

/// One RMSprop update of `p` on backend `K`; `state` is (square_avg, momentum buffer,
/// grad_avg).
fn rmsprop<K: Backend>(p: &mut [f32], g: &[f32], state: [&mut [f32]; 3], step: &RmsPropStep) {
    let rule = Rule::RmsProp(*step);
    let [first, second, third] = state;
    K::run(Update {
        rule: &rule,
        params: p,
        grads: g,
        first,
        second,
        third,
    });
}

/// Two steps on one parameter, written out by hand (α = 0.5, lr = 0.1, ε = 0), in the four
/// corners of (momentum, centered) and with weight decay.
fn rmsprop_matches_steps_computed_by_hand<K: Backend>() {
    let s2 = 2f64.sqrt();
    let base = RmsPropStep {
        lr: 0.1,
        alpha: 0.5,
        eps: 0.0,
        weight_decay: 0.0,
        momentum: 0.0,
        centered: false,
        grad_scale: 1.0,
    };
    // (momentum, centered, wd, the two gradients, p after step 1, p after step 2).
    let cases: [(f32, bool, f32, [f32; 2], f64, f64); 5] = [
        // sq = 0.5·4 = 2: p = 1 − 0.1·2/√2. Then sq = 0.5·2 + 0.5·4 = 3: p += 0.1·2/√3.
        (
            0.0,
            false,
            0.0,
            [2.0, -2.0],
            1.0 - 0.1 * s2,
            1.0 - 0.1 * s2 + 0.2 / 3f64.sqrt(),
        ),
        // Centered: ga = 1, var = 2 − 1 = 1: p = 1 − 0.2. Then sq = 3, ga = 0.5 − 1 = −0.5,
        // var = 2.75: p += 0.1·2/√2.75.
        (0.0, true, 0.0, [2.0, -2.0], 0.8, 0.8 + 0.2 / 2.75f64.sqrt()),
        // Momentum 0.5: b = 2/√2 = √2, p = 1 − 0.1√2. Then b = 0.5√2 − 2/√3.
        (
            0.5,
            false,
            0.0,
            [2.0, -2.0],
            1.0 - 0.1 * s2,
            1.0 - 0.1 * s2 - 0.1 * (0.5 * s2 - 2.0 / 3f64.sqrt()),
        ),
        // Centered with momentum 0.5 and wd 0.5: g = 1.5 + 0.5·1 = 2, var = 1, b = 2, p = 0.8.
        // Then g = 0.6 + 0.5·0.8 = 1, sq = 1.5, ga = 1, var = 0.5, b = 0.5·2 + 1/√0.5 = 1 + √2.
        (0.5, true, 0.5, [1.5, 0.6], 0.8, 0.8 - 0.1 * (1.0 + s2)),
        // Weight decay alone: g = 1.5 + 0.5 = 2 as above, p = 1 − 0.1√2; then g = 0.6 + 0.5·p.
        (0.0, false, 0.5, [1.5, 0.6], 1.0 - 0.1 * s2, {
            let p1 = 1.0 - 0.1 * s2;
            let g = 0.6 + 0.5 * p1;
            p1 - 0.1 * g / (0.5 * 2.0 + 0.5 * g * g).sqrt()
        }),
    ];
    for (momentum, centered, weight_decay, grads, after1, after2) in cases {
        let step = RmsPropStep {
            momentum,
            centered,
            weight_decay,
            ..base
        };
        let (mut p, mut sq, mut b, mut ga) = ([1.0f32], [0.0f32], [0.0f32], [0.0f32]);
        for (g, want) in grads.iter().zip([after1, after2]) {
            rmsprop::<K>(&mut p, &[*g], [&mut sq, &mut b, &mut ga], &step);
            assert!(
                (p[0] as f64 - want).abs() <= 1e-6,
                "μ={momentum} centered={centered} wd={weight_decay}: p = {} by hand {want}",
                p[0]
            );
        }
    }
}

/// `torch.optim.RMSprop`'s algorithm (its documentation's pseudo code), in f64.
fn textbook_rmsprop(
    p: &mut [f64],
    [sq, b, ga]: [&mut [f64]; 3],
    g: &[f64],
    (lr, alpha, eps, wd, momentum, centered): (f64, f64, f64, f64, f64, bool),
) {
    for i in 0..p.len() {
        let gi = g[i] + wd * p[i];
        sq[i] = alpha * sq[i] + (1.0 - alpha) * gi * gi;
        let mut v = sq[i];
        if centered {
            ga[i] = alpha * ga[i] + (1.0 - alpha) * gi;
            v -= ga[i] * ga[i];
        }
        let d = gi / (v.sqrt() + eps);
        if momentum > 0.0 {
            b[i] = momentum * b[i] + d;
            p[i] -= lr * b[i];
        } else {
            p[i] -= lr * d;
        }
    }
}

fn rmsprop_follows_pytorch_in_every_combination<K: Backend>() {
    let grads: [[f32; 5]; 4] = [
        [0.1, -0.2, 0.3, 0.0, 1e-3],
        [0.05, 0.4, -0.3, 2.0, -1e-3],
        [-0.2, 0.1, 0.0, -1.0, 5e-4],
        [0.3, -0.1, 0.2, 0.5, 1e-3],
    ];
    for combo in 0..8 {
        let momentum = if combo & 1 != 0 { 0.9 } else { 0.0 };
        let centered = combo & 2 != 0;
        let wd = if combo & 4 != 0 { 0.1 } else { 0.0 };
        let (lr, alpha, eps) = (0.01, 0.99, 1e-8);
        let step = RmsPropStep {
            lr,
            alpha,
            eps,
            weight_decay: wd,
            momentum,
            centered,
            grad_scale: 1.0,
        };
        let hyper = (
            lr as f64,
            alpha as f64,
            eps as f64,
            wd as f64,
            momentum as f64,
            centered,
        );
        let mut want_p = [1.0f64, -2.0, 0.5, 0.25, -0.125];
        let mut want = [[0.0f64; 5]; 3];
        let mut p = want_p.map(|x| x as f32);
        let mut state = [[0.0f32; 5]; 3];
        for (t, g) in grads.iter().enumerate() {
            let [sq, b, ga] = &mut state;
            rmsprop::<K>(&mut p, g, [sq, b, ga], &step);
            let [wsq, wb, wga] = &mut want;
            textbook_rmsprop(&mut want_p, [wsq, wb, wga], &g.map(f64::from), hyper);
            for i in 0..5 {
                // 1e-3/√(0.01·1e-6) ≈ 10 is the largest step ratio: a relative tolerance.
                let tol = 1e-5 * want_p[i].abs().max(1.0);
                assert!(
                    (p[i] as f64 - want_p[i]).abs() <= tol,
                    "μ={momentum} centered={centered} wd={wd} t={t} p[{i}]: {} vs {}",
                    p[i],
                    want_p[i]
                );
                for k in 0..3 {
                    let ws = want[k][i];
                    assert!(
                        // f32 through sq − ga² (centered) loses a few more bits.
                        (state[k][i] as f64 - ws).abs() <= 1e-4 * ws.abs().max(1e-3),
                        "state {k}[{i}] t={t}: {} vs {ws}",
                        state[k][i]
                    );
                }
            }
        }
    }
}

/// Textbook Adam (Kingma & Ba, Algorithm 1) with bias-corrected moments, in f64.
fn textbook_adam(
    p: &mut [f64],
    m: &mut [f64],
    v: &mut [f64],
    g: &[f64],
    lr: f64,
    t: i32,
    wd: f64,
    decoupled: bool,
) {
    let (b1, b2, eps) = (0.9, 0.999, 1e-8);
    for i in 0..p.len() {
        let mut gi = g[i];
        if decoupled {
            p[i] *= 1.0 - lr * wd;
        } else {
            gi += wd * p[i];
        }
        m[i] = b1 * m[i] + (1.0 - b1) * gi;
        v[i] = b2 * v[i] + (1.0 - b2) * gi * gi;
        let m_hat = m[i] / (1.0 - b1.powi(t));
        let v_hat = v[i] / (1.0 - b2.powi(t));
        p[i] -= lr * m_hat / (v_hat.sqrt() + eps);
    }
}

/// PyTorch's Adam step in f32 in its own order of operations (`denom = √v / √(1 − β2^t) + ε`,
/// `p -= step_size · m / denom`), on one parameter whose moments already hold this step's.
fn torch_order_step(m: f32, v: f32, step: &AdamStep) -> f32 {
    let denom = v.sqrt() / step.bias_correction2_sqrt + step.eps;
    step.step_size * (m / denom)
}

/// constnet folds the second moment's bias correction into its constants (one division
/// fewer), so its step may differ from PyTorch's f32 order: here by at most 4 units in the
/// last place, in 32,000 samples over steps 1 to 10^5 and moments from 1e-30 to 1, on every
/// path (3 is the most seen).
fn adam_steps_are_within_4_ulp_of_pytorchs_order<K: Backend>() {
    let mut r = rng(21);
    let n = 4000;
    let mut worst = 0u32;
    for t in [1, 2, 3, 10, 100, 1000, 10_000, 100_000] {
        let step = AdamStep::new(1e-3, 0.9, 0.999, 1e-8, 0.0, false, t);
        // Moments spread over 30 decades; g = 0 with β1 = β2 = 1 would leave them, but the
        // step decays them: so compute them first and check the step of what it stored.
        let g: Vec<f32> = (0..n)
            .map(|_| uniform(&mut r, -1.0, 1.0) * 10f32.powf(-uniform(&mut r, 0.0, 15.0)))
            .collect();
        let m0 = floats(&mut r, n);
        let v0: Vec<f32> = (0..n)
            .map(|_| 10f32.powf(-uniform(&mut r, 0.0, 30.0)))
            .collect();
        let (mut p, mut m, mut v) = (vec![0.0; n], m0, v0);
        adam::<K>(&mut p, &g, &mut m, &mut v, &step);
        for i in 0..n {
            // p was 0, so −p is constnet's step exactly.
            let (ours, torch) = (-p[i], torch_order_step(m[i], v[i], &step));
            let ulps = ours.to_bits().abs_diff(torch.to_bits());
            assert!(
                ulps <= 4 && ours.signum() == torch.signum(),
                "t={t} m={} v={}: step {ours:e}, PyTorch's order {torch:e} ({ulps} ulp)",
                m[i],
                v[i]
            );
            worst = worst.max(ulps);
        }
    }
    // The folding does change bits somewhere (else this test would check nothing).
    assert!(worst > 0, "every step equal to PyTorch's order");
}

fn adam_and_adamw_follow_the_textbook<K: Backend>() {
    let grads: [[f32; 5]; 3] = [
        [0.1, -0.2, 0.3, 0.0, 1e-3],
        [0.05, 0.4, -0.3, 2.0, -1e-3],
        [-0.2, 0.1, 0.0, -1.0, 5e-4],
    ];
    for (wd, decoupled) in [(0.0, false), (0.1, false), (0.1, true)] {
        let lr = 0.01;
        let mut want_p = [1.0f64, -2.0, 0.5, 0.25, -0.125];
        let (mut want_m, mut want_v) = ([0.0f64; 5], [0.0f64; 5]);
        let mut p = want_p.map(|x| x as f32);
        let (mut m, mut v) = ([0.0f32; 5], [0.0f32; 5]);
        for (t, g) in grads.iter().enumerate() {
            let t = t as u64 + 1;
            let step = AdamStep::new(lr as f32, 0.9, 0.999, 1e-8, wd as f32, decoupled, t);
            adam::<K>(&mut p, g, &mut m, &mut v, &step);
            textbook_adam(
                &mut want_p,
                &mut want_m,
                &mut want_v,
                &g.map(f64::from),
                lr,
                t as i32,
                wd,
                decoupled,
            );
            for i in 0..5 {
                let tol = 1e-6 * want_p[i].abs().max(1.0);
                assert!(
                    (p[i] as f64 - want_p[i]).abs() <= tol,
                    "wd={wd} decoupled={decoupled} t={t} p[{i}]: {} vs {}",
                    p[i],
                    want_p[i]
                );
                assert!((m[i] as f64 - want_m[i]).abs() <= 1e-7, "m[{i}]");
                assert!((v[i] as f64 - want_v[i]).abs() <= 1e-7, "v[{i}]");
            }
        }
    }
}

fn sgd_momentum_and_nesterov_follow_the_textbook<K: Backend>() {
    let grads: [[f32; 3]; 3] = [[0.5, -1.0, 0.25], [0.1, 0.2, -0.3], [-0.4, 0.0, 1.0]];
    for (momentum, nesterov, wd) in [
        (0.0, false, 0.0),
        (0.9, false, 0.0),
        (0.9, true, 0.01),
        (0.5, false, 0.1),
    ] {
        let lr = 0.1f64;
        let mut want_p = [1.0f64, 2.0, -3.0];
        let mut want_b = [0.0f64; 3];
        let mut p = want_p.map(|x| x as f32);
        let mut b = [0.0f32; 3];
        for (t, g) in grads.iter().enumerate() {
            let step = SgdStep {
                lr: lr as f32,
                momentum,
                weight_decay: wd,
                nesterov,
                first: t == 0,
                grad_scale: 1.0,
            };
            sgd::<K>(&mut p, g, &mut b, &step);
            for i in 0..3 {
                // PyTorch's SGD: d = g + wd·p; b = d (first step) or μ·b + d; d = d + μ·b
                // (Nesterov) or b; p -= lr·d.
                let mut d = g[i] as f64 + wd as f64 * want_p[i];
                if momentum != 0.0 {
                    want_b[i] = if t == 0 {
                        d
                    } else {
                        momentum as f64 * want_b[i] + d
                    };
                    d = if nesterov {
                        d + momentum as f64 * want_b[i]
                    } else {
                        want_b[i]
                    };
                }
                want_p[i] -= lr * d;
                assert!(
                    (p[i] as f64 - want_p[i]).abs() <= 1e-6,
                    "μ={momentum} nesterov={nesterov} t={t} p[{i}]: {} vs {}",
                    p[i],
                    want_p[i]
                );
            }
        }
    }
}

fn updates_equal_the_reference_bit_for_bit<K: Backend>() {
    let mut r = rng(20);
    for n in [0, 1, 7, 15, 16, 17, 33, 1000, 1003] {
        let p0 = floats(&mut r, n);
        let g = edge_biased(&mut r, n);
        let m0 = floats(&mut r, n);
        let v0: Vec<f32> = floats(&mut r, n).iter().map(|x| x.abs()).collect();
        for (wd, decoupled) in [(0.0, false), (0.01, false), (0.01, true)] {
            let step = AdamStep::new(1e-3, 0.9, 0.999, 1e-8, wd, decoupled, 7);
            let (mut p1, mut m1, mut v1) = (p0.clone(), m0.clone(), v0.clone());
            let (mut p2, mut m2, mut v2) = (p0.clone(), m0.clone(), v0.clone());
            adam::<K>(&mut p1, &g, &mut m1, &mut v1, &step);
            adam::<Reference>(&mut p2, &g, &mut m2, &mut v2, &step);
            assert_exact(&format!("adam p n={n}"), &p1, &p2);
            assert_exact(&format!("adam m n={n}"), &m1, &m2);
            assert_exact(&format!("adam v n={n}"), &v1, &v2);
        }
        for (momentum, nesterov, first) in
            [(0.0, false, false), (0.9, false, true), (0.9, true, false)]
        {
            let step = SgdStep {
                lr: 0.05,
                momentum,
                weight_decay: 1e-4,
                nesterov,
                first,
                grad_scale: 1.0,
            };
            let (mut p1, mut b1) = (p0.clone(), m0.clone());
            let (mut p2, mut b2) = (p0.clone(), m0.clone());
            sgd::<K>(&mut p1, &g, &mut b1, &step);
            sgd::<Reference>(&mut p2, &g, &mut b2, &step);
            assert_exact(&format!("sgd p n={n}"), &p1, &p2);
            assert_exact(&format!("sgd b n={n}"), &b1, &b2);
        }
        for combo in 0..8 {
            let step = RmsPropStep {
                lr: 1e-3,
                alpha: 0.99,
                eps: 1e-8,
                weight_decay: if combo & 4 != 0 { 1e-2 } else { 0.0 },
                momentum: if combo & 1 != 0 { 0.9 } else { 0.0 },
                centered: combo & 2 != 0,
                grad_scale: 0.5,
            };
            let (mut p1, mut s1) = (p0.clone(), [v0.clone(), m0.clone(), m0.clone()]);
            let (mut p2, mut s2) = (p0.clone(), [v0.clone(), m0.clone(), m0.clone()]);
            let [a, b, c] = &mut s1;
            rmsprop::<K>(&mut p1, &g, [a, b, c], &step);
            let [a, b, c] = &mut s2;
            rmsprop::<Reference>(&mut p2, &g, [a, b, c], &step);
            assert_exact(&format!("rmsprop {step:?} p n={n}"), &p1, &p2);
            for k in 0..3 {
                assert_exact(&format!("rmsprop {step:?} state {k} n={n}"), &s1[k], &s2[k]);
            }
        }
    }
}

/// Every rule, in every variant, with every gradient scale and a zero learning rate too:
/// one ±∞ or NaN gradient, in a whole vector or in the tail, is reported (the passes check
/// only the updated parameters, so this is what makes a rule's arithmetic carry it there);
/// finite gradients are not.
fn every_rule_reports_a_non_finite_gradient<K: Backend>() {
    let mut r = rng(22);
    let mut rules = Vec::new();
    for (lr, grad_scale) in [(1e-3, 1.0), (1e-3, 0.5), (0.0, 1.0), (1e-3, 0.0)] {
        for (weight_decay, decoupled) in [(0.0, false), (0.01, false), (0.01, true)] {
            let step = AdamStep::new(lr, 0.9, 0.999, 1e-8, weight_decay, decoupled, 3);
            rules.push(Rule::Adam(AdamStep { grad_scale, ..step }));
        }
        for (momentum, nesterov, first) in
            [(0.0, false, false), (0.9, false, true), (0.9, true, false)]
        {
            let (weight_decay, lr) = (1e-4, lr);
            rules.push(Rule::Sgd(SgdStep {
                lr,
                momentum,
                weight_decay,
                nesterov,
                first,
                grad_scale,
            }));
        }
        for combo in 0..8 {
            rules.push(Rule::RmsProp(RmsPropStep {
                lr,
                alpha: 0.99,
                eps: 1e-8,
                weight_decay: if combo & 4 != 0 { 1e-2 } else { 0.0 },
                momentum: if combo & 1 != 0 { 0.9 } else { 0.0 },
                centered: combo & 2 != 0,
                grad_scale,
            }));
        }
    }
    for n in [1, 16, 37] {
        let p0 = floats(&mut r, n);
        let g0 = floats(&mut r, n);
        let s0: Vec<f32> = floats(&mut r, n).iter().map(|x| x.abs()).collect();
        for rule in &rules {
            let run = |g: &[f32]| {
                let (mut p, mut a, mut b, mut c) = (p0.clone(), s0.clone(), s0.clone(), s0.clone());
                K::run(Update {
                    rule,
                    params: &mut p,
                    grads: g,
                    first: &mut a,
                    second: &mut b,
                    third: &mut c,
                })
            };
            assert!(
                run(&g0),
                "{rule:?}, n={n}: finite gradients reported as non-finite"
            );
            for at in [0, n / 2, n - 1] {
                for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
                    let mut g = g0.clone();
                    g[at] = bad;
                    assert!(
                        !run(&g),
                        "{rule:?}, n={n}: gradient {bad} at {at} not reported"
                    );
                }
            }
        }
    }
}

constnet::network! {
    struct Tiny { fc1: Dense<3, 5>, fc2: Dense<5, 2> }
}

#[test]
fn optimizers_update_every_tensor_and_count_steps() {
    let mut r = rng(1);
    let net0 = Tiny::new_boxed(constnet::Init::PyTorch, &mut r);
    let mut grads = Tiny::zeroed_box();
    for i in 0..Tiny::TENSORS {
        for (j, g) in grads.tensor_mut(i).iter_mut().enumerate() {
            *g = 0.1 * (j as f32 + 1.0) * if i % 2 == 0 { 1.0 } else { -1.0 };
        }
    }
    let mut adam_simd = Adam::<Tiny>::new_boxed(AdamConfig::DEFAULT);
    let mut adam_ref = Adam::<Tiny>::new_boxed(AdamConfig::DEFAULT);
    let mut sgd = Sgd::<Tiny>::new_boxed(SgdConfig {
        momentum: 0.9,
        ..SgdConfig::default()
    });
    let full = RmsPropConfig {
        momentum: 0.9,
        centered: true,
        weight_decay: 1e-3,
        ..RmsPropConfig::DEFAULT
    };
    let mut rms_simd = RmsProp::<Tiny>::new_boxed(full);
    let mut rms_ref = RmsProp::<Tiny>::new_boxed(full);
    let (mut a, mut b, mut c) = (copy(&net0), copy(&net0), copy(&net0));
    let (mut d, mut e) = (copy(&net0), copy(&net0));
    for _ in 0..3 {
        adam_simd.step::<Simd>(&mut a, &grads, 1e-2);
        adam_ref.step::<Reference>(&mut b, &grads, 1e-2);
        sgd.step::<Simd>(&mut c, &grads, 1e-2);
        rms_simd.step::<Simd>(&mut d, &grads, 1e-2);
        rms_ref.step::<Reference>(&mut e, &grads, 1e-2);
    }
    assert_eq!((adam_simd.steps_taken(), sgd.steps_taken()), (3, 3));
    assert_eq!(rms_simd.steps_taken(), 3);
    let names = rms_simd.state().map(|(name, s)| (name, s.len()));
    assert_eq!(
        names,
        [
            ("rmsprop.square_avg", Tiny::LEN),
            ("rmsprop.momentum_buffer", Tiny::LEN),
            ("rmsprop.grad_avg", Tiny::LEN),
        ]
    );
    for i in 0..Tiny::TENSORS {
        assert_exact("rmsprop simd vs reference", d.tensor(i), e.tensor(i));
        for ((&p, &p0), &g) in d.tensor(i).iter().zip(net0.tensor(i)).zip(grads.tensor(i)) {
            assert!((p - p0) * g < 0.0, "rmsprop moved tensor {i} the wrong way");
        }
    }
    for i in 0..Tiny::TENSORS {
        assert_exact("adam simd vs reference", a.tensor(i), b.tensor(i));
        // Every parameter moved against its gradient.
        for ((&p, &p0), &g) in a.tensor(i).iter().zip(net0.tensor(i)).zip(grads.tensor(i)) {
            assert!((p - p0) * g < 0.0, "adam moved tensor {i} the wrong way");
        }
        for ((&p, &p0), &g) in c.tensor(i).iter().zip(net0.tensor(i)).zip(grads.tensor(i)) {
            assert!((p - p0) * g < 0.0, "sgd moved tensor {i} the wrong way");
        }
    }
}

fn copy(net: &Tiny) -> Box<Tiny> {
    let mut out = Tiny::zeroed_box();
    for i in 0..Tiny::TENSORS {
        out.tensor_mut(i).copy_from_slice(net.tensor(i));
    }
    out
}

#[test]
fn schedules_match_their_formulas() {
    let base = 1e-3;
    assert_eq!(Schedule::Constant.lr(base, 12345), base);
    let step = Schedule::Step {
        every: 100,
        gamma: 0.5,
    };
    assert_eq!(step.lr(base, 0), base);
    assert_eq!(step.lr(base, 99), base);
    assert_eq!(step.lr(base, 100), base * 0.5);
    assert_eq!(step.lr(base, 250), base * 0.25);
    let cosine = Schedule::Cosine { total: 1000 };
    assert_eq!(cosine.lr(base, 0), base);
    assert!((cosine.lr(base, 500) - base / 2.0).abs() < 1e-9);
    assert!((cosine.lr(base, 250) - base * 0.853_553_4).abs() < 1e-9);
    assert_eq!(cosine.lr(base, 1000), 0.0);
    assert_eq!(cosine.lr(base, 5000), 0.0);
}

#[test]
fn clipping_scales_gradients_to_the_norm_and_non_finite_gradients_are_reported() {
    let mut r = rng(21);
    let net0 = Tiny::new_boxed(constnet::Init::PyTorch, &mut r);
    let mut grads = Tiny::zeroed_box();
    for i in 0..Tiny::TENSORS {
        for g in grads.tensor_mut(i) {
            *g = uniform(&mut r, -3.0, 3.0);
        }
    }
    let norm = (0..Tiny::TENSORS)
        .map(|i| {
            grads
                .tensor(i)
                .iter()
                .map(|g| (*g as f64).powi(2))
                .sum::<f64>()
        })
        .sum::<f64>()
        .sqrt();
    assert!(norm > 1.0);
    // Clipping to 1 equals stepping on gradients scaled by 1/(norm + 1e-6), as PyTorch does.
    let mut clipped = copy(&net0);
    let mut sgd = Sgd::<Tiny>::new_boxed(SgdConfig {
        clip_grad_norm: 1.0,
        ..SgdConfig::default()
    });
    assert!(sgd.step::<Simd>(&mut clipped, &grads, 0.1));
    let mut scaled_grads = Tiny::zeroed_box();
    for i in 0..Tiny::TENSORS {
        for (s, g) in scaled_grads.tensor_mut(i).iter_mut().zip(grads.tensor(i)) {
            *s = g * (1.0 / (norm + 1e-6)) as f32;
        }
    }
    let mut by_hand = copy(&net0);
    let mut plain = Sgd::<Tiny>::new_boxed(SgdConfig::default());
    assert!(plain.step::<Reference>(&mut by_hand, &scaled_grads, 0.1));
    for i in 0..Tiny::TENSORS {
        assert_close("clipped step", clipped.tensor(i), by_hand.tensor(i), |_| {
            1e-6
        });
    }
    // A clip above the norm changes nothing.
    let mut loose = copy(&net0);
    let mut unclipped = copy(&net0);
    Sgd::<Tiny>::new_boxed(SgdConfig {
        clip_grad_norm: 1e6,
        ..SgdConfig::default()
    })
    .step::<Simd>(&mut loose, &grads, 0.1);
    Sgd::<Tiny>::new_boxed(SgdConfig::default()).step::<Simd>(&mut unclipped, &grads, 0.1);
    for i in 0..Tiny::TENSORS {
        assert_exact("clip above the norm", loose.tensor(i), unclipped.tensor(i));
    }

    // A NaN gradient: reported by every optimizer; with clipping on, nothing is touched.
    grads.tensor_mut(3)[1] = f32::NAN;
    for clip in [0.0, 1.0] {
        let mut adam = Adam::<Tiny>::new_boxed(AdamConfig {
            clip_grad_norm: clip,
            ..AdamConfig::DEFAULT
        });
        let mut net = copy(&net0);
        assert!(
            !adam.step::<Simd>(&mut net, &grads, 1e-3),
            "adam clip={clip}"
        );
        let mut net_ref = copy(&net0);
        let mut adam_ref = Adam::<Tiny>::new_boxed(AdamConfig {
            clip_grad_norm: clip,
            ..AdamConfig::DEFAULT
        });
        assert!(
            !adam_ref.step::<Reference>(&mut net_ref, &grads, 1e-3),
            "reference adam clip={clip}"
        );
        let mut sgd = Sgd::<Tiny>::new_boxed(SgdConfig {
            clip_grad_norm: clip,
            momentum: 0.9,
            ..SgdConfig::default()
        });
        let mut net_sgd = copy(&net0);
        assert!(
            !sgd.step::<Simd>(&mut net_sgd, &grads, 1e-3),
            "sgd clip={clip}"
        );
        if clip > 0.0 {
            for i in 0..Tiny::TENSORS {
                assert_exact(
                    "untouched after a non-finite norm",
                    net.tensor(i),
                    net0.tensor(i),
                );
            }
            assert_eq!(adam.steps_taken(), 0);
        }
    }
    grads.tensor_mut(3)[1] = f32::INFINITY;
    assert!(!Adam::<Tiny>::new_boxed(AdamConfig::DEFAULT).step::<Simd>(
        &mut copy(&net0),
        &grads,
        1e-3
    ));
}

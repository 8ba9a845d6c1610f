//! Data augmentation: identity parameters give the image back, a draw depends only on (seed,
//! epoch, sample), a translation by whole pixels is a shift, warps stay inside the range of
//! their parameters, bad parameters are refused with a reason.

mod common;

use constnet::data::augment::{Affine, AffineDraw, Augment, AugmentError, Elastic, Warper};

/// A 28×28 test image: a bright bar and a gradient, no two rows alike.
fn image() -> Vec<u8> {
    (0..28 * 28)
        .map(|p| {
            let (y, x) = (p / 28, p % 28);
            if (10..18).contains(&x) && (4..24).contains(&y) {
                255
            } else {
                ((x * 7 + y * 3) % 200) as u8
            }
        })
        .collect()
}

const NO_AFFINE: Affine = Affine {
    rotate: 0.0,
    translate: 0.0,
    scale: 0.0,
    shear: 0.0,
};

#[test]
fn identity_parameters_give_the_identical_image() {
    let src = image();
    for augment in [
        Augment {
            affine: Some(NO_AFFINE),
            elastic: None,
        },
        Augment {
            affine: None,
            elastic: Some(Elastic {
                alpha: 0.0,
                sigma: 4.0,
            }),
        },
        Augment {
            affine: Some(NO_AFFINE),
            elastic: Some(Elastic {
                alpha: 0.0,
                sigma: 0.0,
            }),
        },
    ] {
        let mut warper = Warper::new(augment, 28, 28).unwrap();
        let mut dst = vec![7u8; 28 * 28];
        for sample in [0, 1, 59_999] {
            warper.warp(&src, &mut dst, 3, 5, sample);
            assert_eq!(dst, src, "{augment:?} sample {sample}");
        }
    }
}

#[test]
fn a_draw_depends_only_on_seed_epoch_and_sample() {
    let src = image();
    let both = Augment {
        affine: Some(Affine::DEFAULT),
        elastic: Some(Elastic::DEFAULT),
    };
    let mut a = Warper::new(both, 28, 28).unwrap();
    let mut b = Warper::new(both, 28, 28).unwrap();
    let warp = |w: &mut Warper, seed, epoch, sample| {
        let mut dst = vec![0u8; 28 * 28];
        w.warp(&src, &mut dst, seed, epoch, sample);
        dst
    };
    let first = warp(&mut a, 1, 2, 3);
    // Another warper, after other draws: the same image.
    warp(&mut b, 9, 9, 9);
    assert_eq!(warp(&mut b, 1, 2, 3), first);
    assert_eq!(warp(&mut a, 1, 2, 3), first);
    // Any of the three changed: another image (and a warped one, not the original).
    assert_ne!(first, src);
    for (seed, epoch, sample) in [(2, 2, 3), (1, 3, 3), (1, 2, 4)] {
        assert_ne!(
            warp(&mut a, seed, epoch, sample),
            first,
            "{seed} {epoch} {sample}"
        );
    }
}

#[test]
fn a_whole_pixel_translation_is_a_shift() {
    let src = image();
    let mut warper = Warper::new(Augment::NONE, 28, 28).unwrap();
    for (tx, ty) in [(3i32, -2i32), (-5, 0), (0, 7), (1, 1)] {
        let mut dst = vec![0u8; 28 * 28];
        let draw = AffineDraw {
            tx: tx as f32,
            ty: ty as f32,
            ..AffineDraw::IDENTITY
        };
        warper.apply(&src, &mut dst, &draw);
        for y in 0..28i32 {
            for x in 0..28i32 {
                let (sx, sy) = (x - tx, y - ty);
                let want = if (0..28).contains(&sx) && (0..28).contains(&sy) {
                    src[(sy * 28 + sx) as usize]
                } else {
                    0
                };
                assert_eq!(
                    dst[(y * 28 + x) as usize],
                    want,
                    "t=({tx}, {ty}) at ({x}, {y})"
                );
            }
        }
    }
}

#[test]
fn a_half_pixel_translation_averages_neighbours() {
    let src = image();
    let mut warper = Warper::new(Augment::NONE, 28, 28).unwrap();
    let mut dst = vec![0u8; 28 * 28];
    let draw = AffineDraw {
        tx: 0.5,
        ..AffineDraw::IDENTITY
    };
    warper.apply(&src, &mut dst, &draw);
    for y in 0..28 {
        for x in 1..28 {
            let mean = (f32::from(src[y * 28 + x - 1]) + f32::from(src[y * 28 + x])) / 2.0;
            assert_eq!(dst[y * 28 + x], mean.round() as u8, "({x}, {y})");
        }
    }
}

#[test]
fn a_rotation_by_a_quarter_turn_turns_the_image() {
    let src = image();
    let mut warper = Warper::new(Augment::NONE, 28, 28).unwrap();
    let mut dst = vec![0u8; 28 * 28];
    let draw = AffineDraw {
        angle: core::f32::consts::FRAC_PI_2,
        ..AffineDraw::IDENTITY
    };
    warper.apply(&src, &mut dst, &draw);
    // Output (x, y) samples the source at M⁻¹: a quarter turn about the centre 13.5.
    for y in 0..28 {
        for x in 0..28 {
            assert_eq!(dst[y * 28 + x], src[(27 - x) * 28 + y], "({x}, {y})");
        }
    }
}

#[test]
fn elastic_fields_move_pixels_by_about_what_alpha_and_sigma_say() {
    // Mean absolute change from the original grows with α.
    let src = image();
    let change = |alpha: f32| {
        let augment = Augment {
            affine: None,
            elastic: Some(Elastic { alpha, sigma: 4.0 }),
        };
        let mut w = Warper::new(augment, 28, 28).unwrap();
        let mut dst = vec![0u8; 28 * 28];
        let mut total = 0u64;
        for sample in 0..50 {
            w.warp(&src, &mut dst, 0, 0, sample);
            total += dst
                .iter()
                .zip(&src)
                .map(|(&a, &b)| u64::from(a.abs_diff(b)))
                .sum::<u64>();
        }
        total
    };
    let (small, large) = (change(4.0), change(34.0));
    assert!(small > 0 && large > 2 * small, "{small} vs {large}");
}

#[test]
fn bad_parameters_and_sizes_are_refused_with_a_reason() {
    let e = Warper::new(Augment::NONE, 28, 40).err().unwrap();
    assert_eq!(e, AugmentError::ImageSize { rows: 28, cols: 40 });
    assert!(e.to_string().contains("28×40"), "{e}");
    let bad = Augment {
        affine: Some(Affine {
            scale: 1.5,
            ..Affine::DEFAULT
        }),
        elastic: None,
    };
    assert!(matches!(
        Warper::new(bad, 28, 28).err().unwrap(),
        AugmentError::Parameter(_)
    ));
    let bad = Augment {
        affine: None,
        elastic: Some(Elastic {
            alpha: f32::NAN,
            sigma: 4.0,
        }),
    };
    assert!(Warper::new(bad, 28, 28).is_err());
}

/// Simard et al.'s field along x at rows `8..20`, columns `8..18` of a 28×28 image: uniform
/// noise in ±1 per pixel, zero outside the image, smoothed by a Gaussian of σ truncated at 3σ
/// (taps summing to 1), times α.
fn simard_field(rng: &mut rand_xoshiro::Xoshiro256PlusPlus, e: Elastic) -> Vec<[f32; 28]> {
    use rand_xoshiro::rand_core::Rng;
    let r = (3.0 * e.sigma).ceil() as i32;
    let taps: Vec<f32> = (-r..=r)
        .map(|t| (-(t * t) as f32 / (2.0 * e.sigma * e.sigma)).exp())
        .collect();
    let sum: f32 = taps.iter().sum();
    let noise: Vec<f32> = (0..784)
        .map(|_| (rng.next_u32() >> 8) as f32 / (1u32 << 23) as f32 - 1.0)
        .collect();
    (8..20)
        .map(|y: i32| {
            std::array::from_fn(|x| {
                let mut v = 0.0;
                for (i, ty) in (y - r..=y + r).zip(&taps) {
                    for (j, tx) in (x as i32 - r..=x as i32 + r).zip(&taps) {
                        if (0..28).contains(&i) && (0..28).contains(&j) {
                            v += ty * tx / (sum * sum) * noise[(i * 28 + j) as usize];
                        }
                    }
                }
                e.alpha * v
            })
        })
        .collect()
}

/// Mean square of the x displacement and its correlation with the displacement 4 pixels to
/// the right, over pairs of (displacement here, displacement 4 to the right).
fn spread_and_correlation(pairs: &[(f32, f32)]) -> (f32, f32) {
    let n = pairs.len() as f32;
    let square = pairs.iter().map(|(a, b)| a * a + b * b).sum::<f32>() / (2.0 * n);
    let product = pairs.iter().map(|(a, b)| a * b).sum::<f32>() / n;
    (square.sqrt(), product / square)
}

#[test]
fn the_elastic_field_has_the_spread_and_smoothness_of_simards() {
    // A ramp 8·x: bilinear sampling gives it back exactly, so a warped pixel reads the x of
    // its source point, to 1/16 px.
    let ramp: Vec<u8> = (0..784).map(|p| (8 * (p % 28)) as u8).collect();
    let e = Elastic::DEFAULT;
    let augment = Augment {
        affine: None,
        elastic: Some(e),
    };
    let mut warper = Warper::new(augment, 28, 28).unwrap();
    let mut dst = vec![0u8; 784];
    let (mut ours, mut simards) = (Vec::new(), Vec::new());
    let mut r = common::rng(5);
    for sample in 0..1000 {
        warper.warp(&ramp, &mut dst, 0, 0, sample);
        let field = simard_field(&mut r, e);
        for y in 8..20 {
            for x in 8..14 {
                let at = |x: usize| f32::from(dst[y * 28 + x]) / 8.0 - x as f32;
                ours.push((at(x), at(x + 4)));
                simards.push((field[y - 8][x], field[y - 8][x + 4]));
            }
        }
    }
    let (ours, simards) = (
        spread_and_correlation(&ours),
        spread_and_correlation(&simards),
    );
    // Simard's: about 1.38 px and e^(−4²/(4σ²)) ≈ 0.78.
    assert!(
        (ours.0 / simards.0 - 1.0).abs() < 0.08 && (ours.1 - simards.1).abs() < 0.06,
        "(rms displacement px, correlation at 4 px): ours {ours:?}, Simard's {simards:?}"
    );
    assert!((1.2..1.6).contains(&simards.0), "{simards:?}");
}

//! Model files: safetensors round trips, alignment, checksum, every kind of damage, zero-copy
//! mapping; the raw blob's round trip, zero-copy view and damage; atomic writes.

mod common;

use common::*;
use constnet::Params;
use constnet::format::{self, Problem, RawError, raw};
use constnet::{Init, MnistMlp, Network, NetworkView, Simd};
use safetensors::tensor::{Dtype, TensorView};
use std::fs;

constnet::network! {
    struct Other { fc1: Dense<784, 32>, fc2: Dense<32, 10> }
}

fn trained_like() -> Box<MnistMlp> {
    MnistMlp::new_boxed(Init::PyTorch, &mut rng(60))
}

fn bits(net: &MnistMlp) -> Vec<u32> {
    param_bits(net)
}

#[test]
fn safetensors_round_trip_is_exact_aligned_and_checksummed() {
    let tmp = TempDir::new("st");
    let path = tmp.path("m.safetensors");
    let net = trained_like();
    format::save(&path, &*net).unwrap();
    let loaded = format::load::<MnistMlp>(&path).unwrap();
    assert_eq!(bits(&loaded), bits(&net));

    let bytes = fs::read(&path).unwrap();
    let header = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    assert_eq!(
        (8 + header) % 64,
        0,
        "data must start on a 64-byte boundary"
    );
    let parsed = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names = parsed.names();
    names.sort();
    assert_eq!(
        names,
        [
            "fc1.bias",
            "fc1.weight",
            "fc2.bias",
            "fc2.weight",
            "fc3.bias",
            "fc3.weight",
            "fc4.bias",
            "fc4.weight"
        ]
    );
    assert_eq!(parsed.tensor("fc1.weight").unwrap().shape(), [256, 784]);
    let summary = format::inspect(&path).unwrap();
    assert!(summary.verified);
    assert_eq!(
        summary.metadata.get("format").map(String::as_str),
        Some("pt")
    );

    // Memory-mapped, zero-copy: the same parameters in place.
    let mapped = format::MappedModel::open::<MnistMlp>(&path).unwrap();
    let view = mapped.view::<MnistMlp>();
    for i in 0..MnistMlp::TENSORS {
        assert_eq!(view.tensor(i), net.tensor(i));
    }
}

/// Writes a safetensors file with the given tensors (f32 unless stated) and no checksum, as
/// PyTorch would.
fn write_foreign(path: &std::path::Path, tensors: &[(&str, Vec<usize>, Dtype)]) {
    let data: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, shape, dtype)| vec![0u8; shape.iter().product::<usize>() * dtype.bitsize() / 8])
        .collect();
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .zip(&data)
        .map(|((name, shape, dtype), d)| {
            (
                name.to_string(),
                TensorView::new(*dtype, shape.clone(), d).unwrap(),
            )
        })
        .collect();
    fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
}

fn reference_tensors() -> Vec<(&'static str, Vec<usize>, Dtype)> {
    (0..MnistMlp::TENSORS)
        .map(|i| {
            (
                MnistMlp::tensor_info(i).name,
                MnistMlp::tensor_info(i).shape.to_vec(),
                Dtype::F32,
            )
        })
        .collect()
}

#[test]
fn a_foreign_file_with_the_pytorch_names_loads_unverified() {
    let tmp = TempDir::new("foreign");
    let path = tmp.path("torch.safetensors");
    write_foreign(&path, &reference_tensors());
    let net = format::load::<MnistMlp>(&path).unwrap();
    assert!(net.tensor(0).iter().all(|&x| x == 0.0));
    assert!(!format::inspect(&path).unwrap().verified);
}

#[test]
fn each_kind_of_damage_is_reported_with_the_file_and_the_first_problem() {
    let tmp = TempDir::new("damage");
    let good = tmp.path("good.safetensors");
    format::save(&good, &*trained_like()).unwrap();
    let bytes = fs::read(&good).unwrap();
    let header = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;

    let check =
        |name: &str, contents: Option<Vec<u8>>, expect: &dyn Fn(&Problem) -> bool, words: &str| {
            let path = tmp.path(name);
            if let Some(c) = contents {
                fs::write(&path, c).unwrap();
            }
            let err = format::load::<MnistMlp>(&path)
                .err()
                .unwrap_or_else(|| panic!("{name} loaded"));
            let message = err.to_string();
            assert!(expect(&err.problem), "{name}: {message}");
            assert!(
                message.contains(name) && message.contains(words),
                "{name}: {message}"
            );
        };
    let mut flipped = bytes.clone();
    flipped[8 + header + 5000] ^= 0x01;
    check(
        "flipped.safetensors",
        Some(flipped),
        &|p| matches!(p, Problem::Checksum { .. }),
        "corrupted",
    );
    check(
        "truncated.safetensors",
        Some(bytes[..bytes.len() - 100].to_vec()),
        &|p| matches!(p, Problem::Parse(_)),
        "not a valid safetensors",
    );
    let mut past_end = bytes.clone();
    past_end[..8].copy_from_slice(&(bytes.len() as u64 * 2).to_le_bytes());
    check(
        "past-end.safetensors",
        Some(past_end),
        &|p| matches!(p, Problem::Parse(_)),
        "not a valid safetensors",
    );
    check(
        "empty.safetensors",
        Some(Vec::new()),
        &|p| matches!(p, Problem::Parse(_)),
        "not a valid safetensors",
    );
    check(
        "text.safetensors",
        Some(b"hello, this is not a model at all".to_vec()),
        &|p| matches!(p, Problem::Parse(_)),
        "not a valid",
    );
    check(
        "absent.safetensors",
        None,
        &|p| matches!(p, Problem::Io(_)),
        "No such file",
    );
    fs::create_dir(tmp.path("dir.safetensors")).unwrap();
    check(
        "dir.safetensors",
        None,
        &|p| matches!(p, Problem::NotAFile),
        "not a regular file",
    );

    let mut missing = reference_tensors();
    missing.remove(5);
    write_foreign(&tmp.path("missing.safetensors"), &missing);
    check(
        "missing.safetensors",
        None,
        &|p| matches!(p, Problem::MissingTensor(n) if n == "fc3.bias"),
        "missing tensor \"fc3.bias\"",
    );
    let mut shape = reference_tensors();
    shape[2].1 = vec![256, 128];
    write_foreign(&tmp.path("shape.safetensors"), &shape);
    check(
        "shape.safetensors",
        None,
        &|p| matches!(p, Problem::Shape { .. }),
        "has shape [256, 128], the network needs [128, 256]",
    );
    let mut dtype = reference_tensors();
    dtype[7].2 = Dtype::F64;
    write_foreign(&tmp.path("dtype.safetensors"), &dtype);
    check(
        "dtype.safetensors",
        None,
        &|p| matches!(p, Problem::Dtype { .. }),
        "is F64",
    );
    let mut extra = reference_tensors();
    extra.push(("fc5.weight", vec![2, 2], Dtype::F32));
    write_foreign(&tmp.path("extra.safetensors"), &extra);
    check(
        "extra.safetensors",
        None,
        &|p| matches!(p, Problem::UnexpectedTensor(_)),
        "unexpected tensor \"fc5.weight\"",
    );

    // Another network's file is refused by name or shape.
    let other = tmp.path("other.safetensors");
    format::save(&other, &*Other::new_boxed(Init::PyTorch, &mut rng(1))).unwrap();
    check(
        "other.safetensors",
        None,
        &|p| matches!(p, Problem::Shape { .. } | Problem::MissingTensor(_)),
        "",
    );
}

#[test]
fn a_failed_load_leaves_the_parameters_untouched() {
    let tmp = TempDir::new("untouched");
    let path = tmp.path("bad.safetensors");
    let mut bad = reference_tensors();
    bad[7].1 = vec![11];
    write_foreign(&path, &bad);
    let mut net = trained_like();
    let before = bits(&net);
    assert!(format::load_into(&path, &mut *net).is_err());
    assert_eq!(bits(&net), before);
}

#[test]
fn raw_blob_round_trip_zero_copy_and_copy() {
    let tmp = TempDir::new("raw");
    let path = tmp.path("m.cnet");
    let net = trained_like();
    format::save_raw(&path, &*net).unwrap();
    let bytes = fs::read(&path).unwrap();
    assert_eq!(bytes.len(), raw::blob_len::<MnistMlp>());
    assert_eq!(&bytes[..8], b"CNETRAW\0");
    assert_eq!(
        bits(&format::load_raw::<MnistMlp>(&path).unwrap()),
        bits(&net)
    );

    // Zero-copy from an aligned buffer, as include_bytes! in a #[repr(align(64))] static gives.
    #[repr(C, align(64))]
    struct Aligned([u8; 971368]);
    let mut aligned = Box::new(Aligned([0; 971368]));
    assert_eq!(bytes.len(), aligned.0.len());
    aligned.0.copy_from_slice(&bytes);
    let view = raw::view::<MnistMlp>(&aligned.0).unwrap();
    for i in 0..MnistMlp::TENSORS {
        let t = view.tensor(i);
        assert_eq!(t, net.tensor(i));
        assert_eq!(
            t.as_ptr() as usize % 64,
            0,
            "tensor {i} is not 64-byte aligned in the blob"
        );
    }
    let (mut a, mut b) = ([0.0; 10], [0.0; 10]);
    view.forward_one::<Simd>(&[0.5; 784], &mut a);
    net.forward_one::<Simd>(&[0.5; 784], &mut b);
    assert_eq!(a, b);

    // Misaligned: no zero-copy view, but a copy works.
    let mut shifted = vec![0u8; bytes.len() + 1];
    shifted[1..].copy_from_slice(&bytes);
    let odd = &shifted[1..];
    if !(odd.as_ptr() as usize).is_multiple_of(4) {
        assert!(matches!(
            raw::view::<MnistMlp>(odd),
            Err(RawError::Misaligned { .. })
        ));
    }
    let mut copy = MnistMlp::zeroed_box();
    raw::load_into(odd, &mut *copy).unwrap();
    assert_eq!(bits(&copy), bits(&net));
}

#[test]
fn raw_blob_damage_is_detected() {
    let net = trained_like();
    let mut blob = Vec::new();
    raw::write::<MnistMlp>(|i| net.tensor(i), |b| blob.extend_from_slice(b));
    let mut into = MnistMlp::zeroed_box();
    let cases: Vec<(&str, Vec<u8>, RawError)> = vec![
        (
            "empty",
            vec![],
            RawError::Truncated {
                needed: 320,
                found: 0,
            },
        ),
        (
            "magic",
            {
                let mut b = blob.clone();
                b[0] = b'X';
                b
            },
            RawError::BadMagic,
        ),
        (
            "version",
            {
                let mut b = blob.clone();
                b[8] = 2;
                b
            },
            RawError::UnsupportedVersion { found: 2 },
        ),
        (
            "truncated",
            blob[..blob.len() - 1].to_vec(),
            RawError::Length {
                header: blob.len() as u64,
                actual: blob.len() - 1,
            },
        ),
        (
            "payload",
            {
                let mut b = blob.clone();
                let n = b.len() - 3;
                b[n] ^= 0x10;
                b
            },
            RawError::Checksum {
                expected: 0,
                found: 0,
            },
        ),
        (
            "shape",
            {
                let mut b = blob.clone();
                b[64 + 5] = 0;
                b
            },
            RawError::Shape {
                index: 0,
                name: "fc1.weight",
                found: [0, 784],
            },
        ),
    ];
    for (name, bytes, want) in cases {
        let got = raw::load_into(&bytes, &mut *into)
            .err()
            .unwrap_or_else(|| panic!("{name}: loaded"));
        match (&got, &want) {
            (RawError::Checksum { .. }, RawError::Checksum { .. }) => {}
            (RawError::Shape { index, .. }, RawError::Shape { index: i, .. }) => {
                assert_eq!(index, i, "{name}")
            }
            _ => assert_eq!(got, want, "{name}"),
        }
    }
    // Another network's blob is refused.
    assert!(matches!(
        raw::load_into::<Other>(&blob, &mut *Other::zeroed_box()),
        Err(RawError::TensorCount {
            expected: 4,
            found: 8
        })
    ));
}

#[test]
fn a_failed_save_leaves_the_old_file_and_no_temporaries() {
    let tmp = TempDir::new("atomic");
    let path = tmp.path("m.safetensors");
    let net = trained_like();
    format::save(&path, &*net).unwrap();
    let before = fs::read(&path).unwrap();
    // Saving into a path whose directory does not exist fails cleanly.
    assert!(format::save(&tmp.path("no/such/dir.safetensors"), &*net).is_err());
    // Overwriting works and replaces the whole file.
    let other = MnistMlp::new_boxed(Init::He, &mut rng(61));
    format::save(&path, &*other).unwrap();
    assert_ne!(fs::read(&path).unwrap(), before);
    assert_eq!(
        bits(&format::load::<MnistMlp>(&path).unwrap()),
        bits(&other)
    );
    let names: Vec<String> = fs::read_dir(&tmp.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["m.safetensors"], "temporary files left behind");
}

//! The data layer on synthetic files (every spelling, the .gz cache, each kind of damage) and
//! on the real MNIST files.

mod common;

use common::*;
use constnet::data::mnist::{Mnist, OpenOptions};
use constnet::data::{DataError, IdxError, shuffle};
use constnet::{MnistMlp, Network, Simd, Workspace};
use std::fs;

fn open(dir: &std::path::Path) -> Result<Mnist, DataError> {
    Mnist::open(dir, OpenOptions::default())
}

#[test]
fn opens_raw_files_under_both_spellings_mapped_or_read() {
    let tmp = TempDir::new("spellings");
    let (tp, tl, sp, sl) = write_synthetic_mnist(&tmp.0, 30, 10);
    fs::rename(
        tmp.path("train-labels-idx1-ubyte"),
        tmp.path("train-labels.idx1-ubyte"),
    )
    .unwrap();
    fs::rename(
        tmp.path("t10k-images-idx3-ubyte"),
        tmp.path("t10k-images.idx3-ubyte"),
    )
    .unwrap();
    for map in [true, false] {
        let mnist = Mnist::open(
            &tmp.0,
            OpenOptions {
                map,
                ..OpenOptions::default()
            },
        )
        .unwrap();
        assert_eq!(
            (
                mnist.train.count,
                mnist.test.count,
                mnist.train.rows,
                mnist.train.cols
            ),
            (30, 10, 28, 28)
        );
        assert_eq!(mnist.train.pixels(), &tp[..]);
        assert_eq!(mnist.train.labels(), &tl[..]);
        assert_eq!(mnist.test.pixels(), &sp[..]);
        assert_eq!(mnist.test.labels(), &sl[..]);
        assert!(mnist.test.images_path.ends_with("t10k-images.idx3-ubyte"));
    }
}

#[test]
fn gz_files_are_decompressed_once_into_a_validated_cache() {
    let tmp = TempDir::new("gz");
    let (tp, ..) = write_synthetic_mnist(&tmp.0, 20, 10);
    for name in ["train-images-idx3-ubyte", "t10k-labels-idx1-ubyte"] {
        let raw = fs::read(tmp.path(name)).unwrap();
        fs::write(tmp.path(&format!("{name}.gz")), gzip(&raw)).unwrap();
        fs::remove_file(tmp.path(name)).unwrap();
    }
    let first = open(&tmp.0).unwrap();
    assert_eq!(first.train.pixels(), &tp[..]);
    let cache = tmp
        .0
        .join(".constnet-cache")
        .join("train-images-idx3-ubyte");
    assert_eq!(first.train.images_path, cache);
    let made = fs::metadata(&cache).unwrap().modified().unwrap();
    drop(first);

    // Opened again: the cache is used as is, not rewritten.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let second = open(&tmp.0).unwrap();
    assert_eq!(second.train.pixels(), &tp[..]);
    assert_eq!(
        fs::metadata(&cache).unwrap().modified().unwrap(),
        made,
        "the cache was rewritten"
    );
    drop(second);

    // A damaged cache is detected and rebuilt from the .gz.
    let damaged = fs::read(&cache).unwrap();
    fs::write(&cache, &damaged[..damaged.len() / 2]).unwrap();
    let third = open(&tmp.0).unwrap();
    assert_eq!(third.train.pixels(), &tp[..]);
    assert_eq!(fs::read(&cache).unwrap(), damaged);
    // No temporary files are left behind.
    let leftovers: Vec<_> = fs::read_dir(tmp.0.join(".constnet-cache"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains(".tmp")
        })
        .collect();
    assert!(leftovers.is_empty());
}

#[test]
fn a_corrupted_gz_is_an_error_naming_the_file() {
    let tmp = TempDir::new("badgz");
    write_synthetic_mnist(&tmp.0, 20, 10);
    let raw = fs::read(tmp.path("train-labels-idx1-ubyte")).unwrap();
    let mut gz = gzip(&raw);
    let mid = gz.len() / 2;
    gz[mid] ^= 0xff;
    gz.truncate(gz.len() - 4);
    fs::write(tmp.path("train-labels-idx1-ubyte.gz"), gz).unwrap();
    fs::remove_file(tmp.path("train-labels-idx1-ubyte")).unwrap();
    let err = open(&tmp.0).err().expect("a corrupted .gz must not open");
    let message = err.to_string();
    assert!(matches!(err, DataError::Gzip { .. }), "{message}");
    assert!(
        message.contains("train-labels-idx1-ubyte.gz") && message.contains("corrupt gzip"),
        "{message}"
    );
}

#[test]
fn missing_files_are_listed_with_where_and_how() {
    let tmp = TempDir::new("missing");
    write_synthetic_mnist(&tmp.0, 20, 10);
    fs::remove_file(tmp.path("t10k-images-idx3-ubyte")).unwrap();
    fs::remove_file(tmp.path("train-labels-idx1-ubyte")).unwrap();
    let message = open(&tmp.0).err().unwrap().to_string();
    for name in constnet::data::mnist::FILES {
        assert!(message.contains(name), "{message}");
    }
    assert!(message.contains(&tmp.0.display().to_string()), "{message}");
    assert!(
        message.contains("t10k-images-idx3-ubyte     missing"),
        "{message}"
    );
    assert!(
        message.contains("train-images-idx3-ubyte    found"),
        "{message}"
    );
    assert!(message.contains("download"), "{message}");
}

#[test]
fn damaged_files_are_errors_naming_the_file_and_the_problem() {
    type Damage = fn(&std::path::Path);
    let cases: [(&str, Damage, &str, &str); 6] = [
        (
            "wrong magic",
            |d| damage(d, "train-images-idx3-ubyte", |b| b[0] = 1),
            "train-images-idx3-ubyte",
            "not an IDX file",
        ),
        (
            "truncated data",
            |d| damage(d, "t10k-images-idx3-ubyte", |b| b.truncate(b.len() - 1)),
            "t10k-images-idx3-ubyte",
            "truncated",
        ),
        (
            "label of 10",
            |d| damage(d, "train-labels-idx1-ubyte", |b| b[8 + 3] = 10),
            "train-labels-idx1-ubyte",
            "label 10 at position 3",
        ),
        (
            "swapped",
            |d| {
                fs::rename(d.join("train-images-idx3-ubyte"), d.join("x")).unwrap();
                fs::rename(
                    d.join("train-labels-idx1-ubyte"),
                    d.join("train-images-idx3-ubyte"),
                )
                .unwrap();
                fs::rename(d.join("x"), d.join("train-labels-idx1-ubyte")).unwrap();
            },
            "train-images-idx3-ubyte",
            "label file",
        ),
        (
            "count mismatch",
            |d| fs::write(d.join("t10k-labels-idx1-ubyte"), idx_labels(&[1, 2, 3])).unwrap(),
            "t10k-labels-idx1-ubyte",
            "10 images but 3 labels",
        ),
        (
            "directory",
            |d| {
                fs::remove_file(d.join("t10k-labels-idx1-ubyte")).unwrap();
                fs::create_dir(d.join("t10k-labels-idx1-ubyte")).unwrap();
            },
            "t10k-labels-idx1-ubyte",
            "not a regular file",
        ),
    ];
    for (case, apply, file, problem) in cases {
        let tmp = TempDir::new("damage");
        write_synthetic_mnist(&tmp.0, 20, 10);
        apply(&tmp.0);
        let message = open(&tmp.0)
            .err()
            .unwrap_or_else(|| panic!("{case}: opened"))
            .to_string();
        assert!(
            message.contains(file) && message.contains(problem),
            "{case}: {message}"
        );
    }
}

fn damage(dir: &std::path::Path, name: &str, f: impl Fn(&mut Vec<u8>)) {
    let mut bytes = fs::read(dir.join(name)).unwrap();
    f(&mut bytes);
    fs::write(dir.join(name), bytes).unwrap();
}

#[test]
fn idx_errors_say_what_is_wrong() {
    let images = idx_images(2, 2, 2, &[0; 8]);
    assert_eq!(
        constnet::data::parse_images(&images[..7]).err(),
        Some(IdxError::TruncatedHeader {
            needed: 16,
            found: 7
        })
    );
    let message = constnet::data::parse_labels(&images)
        .err()
        .unwrap()
        .to_string();
    assert!(
        message.contains("image file") && message.contains("expected a label file"),
        "{message}"
    );
}

#[test]
fn shuffles_are_permutations_fixed_by_seed_and_epoch() {
    let mut a = vec![0u32; 1000];
    let mut b = vec![7u32; 1000];
    shuffle(&mut a, 5, 3);
    shuffle(&mut b, 5, 3);
    assert_eq!(a, b, "same seed and epoch, same order");
    let mut sorted = a.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..1000).collect::<Vec<_>>(), "a permutation");
    assert_ne!(a, (0..1000).collect::<Vec<_>>(), "actually shuffled");
    shuffle(&mut b, 5, 4);
    assert_ne!(a, b, "another epoch, another order");
    shuffle(&mut b, 6, 3);
    assert_ne!(a, b, "another seed, another order");
}

#[test]
fn batches_scale_pixels_by_1_over_255_in_both_layouts() {
    const B: usize = 8;
    let pixels: Vec<u8> = (0..5 * 784).map(|i| (i % 256) as u8).collect();
    let labels = [3u8, 1, 4, 1, 5];
    let mut ws = <MnistMlp as Network>::Workspace::<B>::zeroed_box();
    let indices = [4u32, 0, 2];
    constnet::load_u8_batch::<_, Simd>(&mut *ws, &pixels, &labels, &indices);
    assert_eq!(ws.labels(3), &[5, 3, 4]);
    let (features, rows) = ws.input_mut(3);
    for (j, &i) in indices.iter().enumerate() {
        for p in 0..784 {
            let want = f32::from(pixels[i as usize * 784 + p]) / 255.0;
            assert_eq!(rows[j * 784 + p], want);
            assert_eq!(features[p * 3 + j], want);
        }
    }
}

#[test]
fn the_real_mnist_files_open_and_check_out() {
    let dir = mnist_dir();
    let mnist = open(&dir).unwrap();
    assert_eq!((mnist.train.count, mnist.test.count), (60000, 10000));
    assert_eq!((mnist.train.rows, mnist.train.cols), (28, 28));
    let mut per_class = [0usize; 10];
    for &l in mnist.train.labels() {
        per_class[l as usize] += 1;
    }
    // MNIST's training set has between 5421 (digit 5) and 6742 (digit 1) samples per class.
    assert_eq!(per_class.iter().min(), Some(&5421));
    assert_eq!(per_class.iter().max(), Some(&6742));
    assert_eq!(mnist.test.labels()[..10], [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]);
}

//! Datasets: what [`crate::train::fit`] trains and evaluates on, whatever holds the samples.
//!
//! A dataset is `len` samples, each a row of `features` values (bytes scaled by 1/255 into
//! [0, 1], as MNIST's pixels are, or floats used as they are) and a `u8` label. The
//! [`Dataset`] trait says so; MNIST's IDX files ([`crate::data::Split`], memory-mapped) are one
//! implementation and [`InMemory`] (rows and labels in `Vec`s, built from any data) another.
//! Training never asks which: it reads rows by index through [`Rows`].
//!
//! The training threads live as long as a run, so they cannot borrow the caller's dataset;
//! each epoch they keep a [`SharedData`] instead, the same bytes behind reference counts
//! (cloning it allocates nothing).
#![forbid(unsafe_code)]

use std::prelude::rust_2024::*;

use super::mmap::Bytes;
use std::fmt;
use std::sync::Arc;

/// Every sample's features, row after row (`len · features` values).
#[derive(Clone, Copy, Debug)]
pub enum Rows<'a> {
    /// Bytes, scaled by 1/255 when loaded (MNIST's pixels).
    U8(&'a [u8]),
    /// Floats, loaded as they are.
    F32(&'a [f32]),
}

impl Rows<'_> {
    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            Rows::U8(r) => r.len(),
            Rows::F32(r) => r.len(),
        }
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Starts loading row `i` of `width` values into the caches, returning at once: the next
    /// batch's samples, scattered over the file, arrive while this step computes. Out of range,
    /// it does nothing.
    pub fn prefetch_row(&self, i: usize, width: usize) {
        let Some(end) = i.checked_add(1).and_then(|n| n.checked_mul(width)) else {
            return;
        };
        let bytes = match self {
            Rows::U8(r) => r.get(end - width..end),
            Rows::F32(r) => r.get(end - width..end).map(bytemuck::cast_slice),
        };
        crate::kernels::prefetch(bytes.unwrap_or(&[]));
    }
}

/// Samples with a row of features and a label each: what [`crate::train::fit`] accepts.
///
/// Implemented by MNIST's [`Split`](crate::data::Split) and by [`InMemory`]; implement it for
/// other storage by returning its bytes as a [`SharedData`].
pub trait Dataset {
    /// Number of samples.
    fn len(&self) -> usize;
    /// Whether there are no samples.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Features per sample (a network's input width).
    fn features(&self) -> usize;
    /// Every sample's features, `len · features` values.
    fn rows(&self) -> Rows<'_>;
    /// Every sample's label, `len` of them.
    fn labels(&self) -> &[u8];
    /// The same rows and labels, for the training threads to keep.
    fn shared(&self) -> SharedData;
}

/// Bytes behind a reference count: a memory-mapped file's (past its header) or a copy's.
#[derive(Clone)]
enum ByteStore {
    /// A file's bytes from offset `from` on.
    File { bytes: Arc<Bytes>, from: usize },
    /// Bytes in memory.
    Owned(Arc<[u8]>),
}

impl ByteStore {
    fn get(&self) -> &[u8] {
        match self {
            ByteStore::File { bytes, from } => &bytes[*from..],
            ByteStore::Owned(b) => b,
        }
    }
}

/// Rows behind a reference count.
#[derive(Clone)]
enum RowStore {
    U8(ByteStore),
    F32(Arc<[f32]>),
}

/// A dataset's rows and labels behind reference counts, which the training threads keep for an
/// epoch; cloning it does not allocate.
#[derive(Clone)]
pub struct SharedData {
    rows: RowStore,
    labels: ByteStore,
}

impl SharedData {
    /// Byte rows (scaled by 1/255 when loaded) and their labels.
    pub fn from_u8(rows: Arc<[u8]>, labels: Arc<[u8]>) -> Self {
        Self {
            rows: RowStore::U8(ByteStore::Owned(rows)),
            labels: ByteStore::Owned(labels),
        }
    }

    /// Float rows and their labels.
    pub fn from_f32(rows: Arc<[f32]>, labels: Arc<[u8]>) -> Self {
        Self {
            rows: RowStore::F32(rows),
            labels: ByteStore::Owned(labels),
        }
    }

    /// The pixels and labels of IDX files, past their headers.
    pub(crate) fn from_idx(
        images: Arc<Bytes>,
        images_from: usize,
        labels: Arc<Bytes>,
        labels_from: usize,
    ) -> Self {
        Self {
            rows: RowStore::U8(ByteStore::File {
                bytes: images,
                from: images_from,
            }),
            labels: ByteStore::File {
                bytes: labels,
                from: labels_from,
            },
        }
    }

    /// Every sample's features.
    pub fn rows(&self) -> Rows<'_> {
        match &self.rows {
            RowStore::U8(b) => Rows::U8(b.get()),
            RowStore::F32(f) => Rows::F32(f),
        }
    }

    /// Every sample's label.
    pub fn labels(&self) -> &[u8] {
        self.labels.get()
    }
}

/// A dataset held in memory: rows of `features` bytes or floats, and a label per row. Build it
/// from any data; [`crate::train::fit`] trains on it as on MNIST's files.
///
/// ```
/// use constnet::data::{Dataset, InMemory};
/// // Two samples of four features each.
/// let data = InMemory::from_f32(vec![0.0, 0.5, 1.0, 0.0, 1.0, 1.0, 0.0, 0.25], vec![1, 0], 4)?;
/// assert_eq!((data.len(), data.features()), (2, 4));
/// # Ok::<(), constnet::data::DatasetError>(())
/// ```
#[derive(Clone)]
pub struct InMemory {
    shared: SharedData,
    len: usize,
    features: usize,
}

impl InMemory {
    /// Rows of `features` bytes each (scaled by 1/255 when loaded, as MNIST's pixels), one
    /// label per row.
    pub fn from_u8(rows: Vec<u8>, labels: Vec<u8>, features: usize) -> Result<Self, DatasetError> {
        let len = check_shape(rows.len(), labels.len(), features)?;
        let shared = SharedData::from_u8(rows.into(), labels.into());
        Ok(Self {
            shared,
            len,
            features,
        })
    }

    /// Rows of `features` floats each (used as they are; NaN and infinities are refused), one
    /// label per row.
    pub fn from_f32(
        rows: Vec<f32>,
        labels: Vec<u8>,
        features: usize,
    ) -> Result<Self, DatasetError> {
        let len = check_shape(rows.len(), labels.len(), features)?;
        if let Some(index) = rows.iter().position(|x| !x.is_finite()) {
            return Err(DatasetError::NonFinite {
                sample: index / features,
                feature: index % features,
            });
        }
        let shared = SharedData::from_f32(rows.into(), labels.into());
        Ok(Self {
            shared,
            len,
            features,
        })
    }
}

/// The number of samples of `values` values and `labels` labels, `features` values each.
fn check_shape(values: usize, labels: usize, features: usize) -> Result<usize, DatasetError> {
    if features == 0 || !values.is_multiple_of(features) || values / features != labels {
        return Err(DatasetError::Shape {
            values,
            labels,
            features,
        });
    }
    if labels == 0 {
        return Err(DatasetError::Empty);
    }
    Ok(labels)
}

impl Dataset for InMemory {
    fn len(&self) -> usize {
        self.len
    }
    fn features(&self) -> usize {
        self.features
    }
    fn rows(&self) -> Rows<'_> {
        self.shared.rows()
    }
    fn labels(&self) -> &[u8] {
        self.shared.labels()
    }
    fn shared(&self) -> SharedData {
        self.shared.clone()
    }
}

/// Checks that `data` fits a network of `inputs` inputs and `classes` classes: the shapes
/// agree, it has samples, and every label is a class.
pub fn check(
    data: &(impl Dataset + ?Sized),
    inputs: usize,
    classes: usize,
) -> Result<(), DatasetError> {
    let (len, features) = (data.len(), data.features());
    if features != inputs {
        return Err(DatasetError::Features {
            found: features,
            expected: inputs,
        });
    }
    let (values, labels) = (data.rows().len(), data.labels().len());
    if values != len * features || labels != len {
        return Err(DatasetError::Shape {
            values,
            labels,
            features,
        });
    }
    if len == 0 {
        return Err(DatasetError::Empty);
    }
    match data
        .labels()
        .iter()
        .position(|&l| usize::from(l) >= classes)
    {
        Some(sample) => Err(DatasetError::Label {
            sample,
            label: data.labels()[sample],
            classes,
        }),
        None => Ok(()),
    }
}

/// A dataset that cannot be trained or evaluated on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DatasetError {
    /// The number of values is not `features` per label.
    Shape {
        /// Feature values given.
        values: usize,
        /// Labels given.
        labels: usize,
        /// Features per sample.
        features: usize,
    },
    /// No samples.
    Empty,
    /// The rows are not as wide as the network's input.
    Features {
        /// Features per sample.
        found: usize,
        /// The network's inputs.
        expected: usize,
    },
    /// A label is not one of the network's classes.
    Label {
        /// The sample.
        sample: usize,
        /// Its label.
        label: u8,
        /// The network's classes.
        classes: usize,
    },
    /// A float feature is NaN or infinite.
    NonFinite {
        /// The sample.
        sample: usize,
        /// The feature.
        feature: usize,
    },
    /// Augmentation warps byte images; these rows are floats.
    AugmentNeedsBytes,
}

impl fmt::Display for DatasetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatasetError::Shape {
                values,
                labels,
                features,
            } => write!(
                f,
                "{values} feature values are not {features} per label for {labels} labels"
            ),
            DatasetError::Empty => write!(f, "the dataset has no samples"),
            DatasetError::Features { found, expected } => write!(
                f,
                "samples have {found} features; the network takes {expected}"
            ),
            DatasetError::Label {
                sample,
                label,
                classes,
            } => write!(
                f,
                "sample {sample} has label {label}; the network has {classes} classes"
            ),
            DatasetError::NonFinite { sample, feature } => {
                write!(f, "sample {sample}, feature {feature} is not finite")
            }
            DatasetError::AugmentNeedsBytes => write!(
                f,
                "augmentation warps byte images; this dataset's rows are floats"
            ),
        }
    }
}

impl std::error::Error for DatasetError {}

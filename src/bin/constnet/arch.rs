//! The networks the command trains and loads: a fixed list, each a `network!` type (so every
//! size stays a compile-time fact inside), chosen by its hidden widths (`--hidden 1024,512`) or
//! recognised from a model file's tensor shapes. [`with_arch!`] runs generic code on the
//! chosen type; each architecture compiles the training code once more, so the list is short.
//!
//! A model file records its architecture twice: in its tensors' shapes (which PyTorch reads)
//! and in the metadata key [`HIDDEN_KEY`] that `constnet train` writes; the two must agree.

use constnet::{MnistMlp, Network, format, network};
use std::error::Error;
use std::fmt;
use std::path::Path;

network! {
    /// 784→512→256→10.
    pub struct Mlp512x256 { fc1: Dense<784, 512>, fc2: Dense<512, 256>, fc3: Dense<256, 10> }
}
network! {
    /// 784→800→10: Simard et al.'s (ICDAR 2003) one hidden layer of 800.
    pub struct Mlp800 { fc1: Dense<784, 800>, fc2: Dense<800, 10> }
}
network! {
    /// 784→1024→512→10.
    pub struct Mlp1024x512 { fc1: Dense<784, 1024>, fc2: Dense<1024, 512>, fc3: Dense<512, 10> }
}
network! {
    /// 784→2048→1024→10.
    pub struct Mlp2048x1024 { fc1: Dense<784, 2048>, fc2: Dense<2048, 1024>, fc3: Dense<1024, 10> }
}

/// The metadata key holding the hidden widths, e.g. `"1024,512"`.
pub const HIDDEN_KEY: &str = "constnet.hidden";

/// One of the networks this build has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    /// The reference network, 784→256→128→64→10 ([`MnistMlp`]).
    Reference,
    /// [`Mlp512x256`].
    H512x256,
    /// [`Mlp800`].
    H800,
    /// [`Mlp1024x512`].
    H1024x512,
    /// [`Mlp2048x1024`].
    H2048x1024,
}

/// Runs `$body` with `$N` the network type of `$arch` (an [`Arch`]).
macro_rules! with_arch {
    ($arch:expr, $N:ident => $body:expr) => {
        match $arch {
            $crate::arch::Arch::Reference => {
                type $N = constnet::MnistMlp;
                $body
            }
            $crate::arch::Arch::H512x256 => {
                type $N = $crate::arch::Mlp512x256;
                $body
            }
            $crate::arch::Arch::H800 => {
                type $N = $crate::arch::Mlp800;
                $body
            }
            $crate::arch::Arch::H1024x512 => {
                type $N = $crate::arch::Mlp1024x512;
                $body
            }
            $crate::arch::Arch::H2048x1024 => {
                type $N = $crate::arch::Mlp2048x1024;
                $body
            }
        }
    };
}
pub(crate) use with_arch;

impl Arch {
    /// Every architecture, the reference first.
    pub const ALL: [Arch; 5] = [
        Arch::Reference,
        Arch::H512x256,
        Arch::H800,
        Arch::H1024x512,
        Arch::H2048x1024,
    ];

    /// The hidden widths, as `--hidden` takes them.
    pub fn hidden(self) -> &'static [usize] {
        match self {
            Arch::Reference => &[256, 128, 64],
            Arch::H512x256 => &[512, 256],
            Arch::H800 => &[800],
            Arch::H1024x512 => &[1024, 512],
            Arch::H2048x1024 => &[2048, 1024],
        }
    }

    /// The hidden widths as text: `"1024,512"`.
    pub fn name(self) -> String {
        join(self.hidden(), ",")
    }

    /// The layers: `"784→1024→512→10"`.
    pub fn layers(self) -> String {
        format!("784→{}→10", join(self.hidden(), "→"))
    }

    /// Parameters, weights and biases.
    pub fn params(self) -> usize {
        with_arch!(self, N => <N as constnet::Network>::PARAMS)
    }

    /// The architecture with these hidden widths (`"1024,512"`; spaces allowed), or an error
    /// listing the ones there are.
    pub fn parse(text: &str) -> Result<Arch, String> {
        let widths: Option<Vec<usize>> = text.split(',').map(|w| w.trim().parse().ok()).collect();
        widths
            .and_then(|w| Arch::ALL.into_iter().find(|a| a.hidden() == w))
            .ok_or_else(|| format!("no network has hidden layers {text:?}; {}", available()))
    }

    /// The architecture whose network type is `N` (batch norms aside).
    pub fn of<N: Network>() -> Arch {
        // Dense weights only: a batch norm's `weight` is one-dimensional.
        let hidden: Vec<usize> = (0..N::TENSORS)
            .map(N::tensor_info)
            .filter(|t| t.name.ends_with(".weight") && t.shape.len() == 2)
            .map(|t| t.shape[0])
            .collect();
        let hidden = &hidden[..hidden.len() - 1];
        Arch::ALL
            .into_iter()
            .find(|a| a.hidden() == hidden)
            .expect("a network of the list")
    }

    /// The architecture of a model file or checkpoint: from its tensors' shapes (a raw blob:
    /// the one whose blob it is), checked against the recorded one if any.
    pub fn of_file(path: &Path) -> Result<Arch, Box<dyn Error>> {
        if crate::model_file::is_raw_blob(path) {
            return Arch::ALL
                .into_iter()
                .find(|a| with_arch!(*a, N => format::load_raw::<N>(path).is_ok()))
                .ok_or_else(|| {
                    // The reference's error says what is wrong with the file.
                    match format::load_raw::<MnistMlp>(path) {
                        Err(e) => format!("{e}; {}", available()).into(),
                        Ok(_) => "unreachable: the reference loaded".into(),
                    }
                });
        }
        // A file that is not a readable model (or holds no layers: not a network's) goes to
        // the reference's loader, whose error says what the file is.
        let Ok(summary) = format::inspect(path) else {
            return Ok(Arch::Reference);
        };
        // A checkpoint may prefix the names.
        let shape = |name: String| {
            let dotted = format!(".{name}");
            let t = summary
                .tensors
                .iter()
                .find(|t| t.name == name || t.name.ends_with(&dotted))?;
            Some(t.shape.clone())
        };
        // Layer i's output width from fc{i}.weight [out][in], while there are layers.
        let outs: Vec<usize> = (1..)
            .map_while(|i| shape(format!("fc{i}.weight")))
            .map(|s| s.first().copied().unwrap_or(0))
            .collect();
        if outs.is_empty() {
            return Ok(Arch::Reference);
        }
        let hidden = &outs[..outs.len() - 1];
        let found = Arch::ALL.into_iter().find(|a| a.hidden() == hidden);
        let recorded = summary.metadata.get(HIDDEN_KEY);
        match (found, recorded) {
            (Some(a), Some(r)) if *r != a.name() => Err(format!(
                "{}: records the network {r:?} ({HIDDEN_KEY}) but its tensors are {}'s",
                path.display(),
                a.name()
            )
            .into()),
            (Some(a), _) => Ok(a),
            (None, _) => Err(format!(
                "{}: its layers (hidden widths {:?}, from fc1.weight, fc2.weight, …) are none \
                 of this build's networks; {}",
                path.display(),
                join(hidden, ","),
                available()
            )
            .into()),
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// "available: 256,128,64 (the reference), 512,256, …".
pub fn available() -> String {
    let names: Vec<String> = Arch::ALL.iter().map(|a| a.name()).collect();
    format!(
        "available: {} (the first is the reference)",
        names.join(" | ")
    )
}

fn join(widths: &[usize], sep: &str) -> String {
    let parts: Vec<String> = widths.iter().map(usize::to_string).collect();
    parts.join(sep)
}

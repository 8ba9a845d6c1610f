//! The text form of an enum whose values have names: `Display` writes the name, `FromStr`
//! reads it, and the parse error lists every name. One table per enum (its `ALL` and `name`),
//! shared by the command line, recipes and checkpoints.
#![forbid(unsafe_code)]

/// Implements `Display`, `FromStr` and the error type `$err` for `$ty`, which has
/// `const ALL: [$ty; N]` and `fn name(&self) -> &'static str`; `$what` names the kind in the
/// error ("unknown schedule, expected one of constant, step, cosine").
macro_rules! text_by_name {
    ($ty:ident, $err:ident, $what:literal) => {
        impl core::fmt::Display for $ty {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str(self.name())
            }
        }

        impl core::str::FromStr for $ty {
            type Err = $err;

            /// The value named `name`, with its default parameters (its entry in `ALL`).
            fn from_str(name: &str) -> Result<Self, Self::Err> {
                $ty::ALL.into_iter().find(|v| v.name() == name).ok_or($err)
            }
        }

        #[doc = concat!("A name that is none of [`", stringify!($ty), "::ALL`]'s.")]
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct $err;

        impl core::fmt::Display for $err {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str(concat!("unknown ", $what, ", expected one of"))?;
                for (i, v) in $ty::ALL.iter().enumerate() {
                    write!(f, "{}{v}", if i == 0 { " " } else { ", " })?;
                }
                Ok(())
            }
        }

        impl core::error::Error for $err {}
    };
}
pub(crate) use text_by_name;

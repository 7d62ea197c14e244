//! Which arithmetic the kernels' products use: f32 (the default) or bf16
//! operands with f32 accumulation, the opt-in reduced-precision path
//! (`training.precision: bf16`, `--precision bf16`).
//!
//! The choice is a per-thread setting rather than an argument of every
//! model's `forward`: it reaches every product of the fused layers (the
//! LSTM/GRU recurrences, their input projections, the models' Linear
//! layers, forward and backward) without threading a flag through each
//! model kind, and two trainings on two threads can use different
//! precisions. The kernels read it once on the calling thread at entry and
//! hand it to their worker threads, so a [`scoped`] call around a training
//! loop or a serving worker is all a caller does.
//!
//! Where they run: on a CPU with AMX (Intel Xeon from Sapphire Rapids on),
//! products of 16 rows or more take its tiles (`crate::amx`); on one with
//! AVX512-BF16 (Zen 4, those Xeons) the others run on its bf16 dot-product
//! instruction; elsewhere the same bf16-rounded operands are multiplied
//! and accumulated in f32 units in that instruction's order, which gives
//! its sums (see `crate::bf16`). So numbers are the same on every CPU
//! without AMX; the tiles add up each step's products in their own order,
//! which moves a sum by a rounding. On one machine, every path repeats
//! itself exactly. A model loaded to serve multiplies a few rows in bf16
//! against weights packed once already rounded
//! (`crate::packed::PackedLinear::new_bf16`): the same products in f32
//! units, summed in the packed kernel's order.

use std::cell::Cell;
use std::fmt;
use std::str::FromStr;

/// The arithmetic of the kernels' matrix products.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// f32 operands and sums.
    #[default]
    F32,
    /// Operands rounded to bf16 (to nearest even), products and sums in f32.
    Bf16,
}

impl Precision {
    /// The names a config file or command line uses.
    pub const NAMES: [&'static str; 2] = ["f32", "bf16"];
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
        })
    }
}

impl FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "f32" => Ok(Precision::F32),
            "bf16" => Ok(Precision::Bf16),
            _ => Err(format!("precision is f32 or bf16, got {s:?}")),
        }
    }
}

thread_local! {
    static CURRENT: Cell<Precision> = const { Cell::new(Precision::F32) };
}

/// The precision of products started on this thread.
pub fn current() -> Precision {
    CURRENT.with(Cell::get)
}

/// Runs `f` with products started on this thread in precision `p`, and
/// restores the previous setting afterwards (also when `f` panics).
pub fn scoped<R>(p: Precision, f: impl FnOnce() -> R) -> R {
    struct Restore(Precision);
    impl Drop for Restore {
        fn drop(&mut self) {
            CURRENT.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(CURRENT.with(|c| c.replace(p)));
    f()
}

/// `v` rounded to the nearest bf16 value (ties to even), as an f32: what
/// a bf16 product sees of an operand.
pub fn bf16_rounded(v: f32) -> f32 {
    crate::bf16::rounded(v)
}

/// The bf16 instructions the bf16 path runs on here, or `None` when this
/// CPU has none (or `RECUR_NO_BF16_UNITS` is set) and bf16 products are
/// computed in f32 units: the same numbers as AVX512-BF16's, slower than
/// f32. With AMX (and neither variable nor `RECUR_NO_AMX` set), products
/// of 16 rows or more take its tiles, fewer rows AVX512-BF16.
pub fn bf16_units() -> Option<&'static str> {
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    if crate::amx::available() {
        return Some(if crate::bf16::units() {
            "AMX, AVX512-BF16"
        } else {
            "AMX"
        });
    }
    crate::bf16::units().then_some("AVX512-BF16")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scoped_restores_the_previous_precision() {
        assert_eq!(current(), Precision::F32);
        let inner = scoped(Precision::Bf16, || {
            let nested = scoped(Precision::F32, current);
            (current(), nested)
        });
        assert_eq!(inner, (Precision::Bf16, Precision::F32));
        assert_eq!(current(), Precision::F32);
        let caught = std::panic::catch_unwind(|| scoped(Precision::Bf16, || panic!("boom")));
        assert!(caught.is_err());
        assert_eq!(current(), Precision::F32);
        assert_eq!("bf16".parse::<Precision>(), Ok(Precision::Bf16));
        assert!("fp16"
            .parse::<Precision>()
            .unwrap_err()
            .contains("f32 or bf16"));
    }
}

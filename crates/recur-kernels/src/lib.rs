//! Fused LSTM and GRU layers for the CPU, forward and backward through
//! time, in PyTorch's packed weight layout. This is recur's deliberate
//! exception to "use a crate": tensor frameworks run a recurrent layer as a
//! loop of small operations per step, which is 2-5x slower than one fused
//! kernel at the hidden sizes recur trains (ARCHITECTURE.md).
//!
//! - [`lstm`] and [`gru`]: the kernels on raw time-major buffers
//!   (`lstm_tile`: the LSTM's inference on AVX-512, each product tile
//!   finished by its cell in registers).
//! - [`op`]: the same as candle custom operations with backward, which is
//!   how models use them.
//! - [`linear`](mod@linear): `x @ w^T + b` as one node with a lean backward.
//! - [`layer_norm`]: a LayerNorm's normalisation, of a residual sum or
//!   not, as one node; [`scale_shift`](mod@scale_shift): its
//!   `x * gamma + beta` as another, its parameter gradients in row passes.
//! - [`act`]: vectorisable `exp`, `sigmoid`, `tanh`, `erf`, GELU;
//!   [`lanes`]: the arithmetic they are written in, for one f32 or an
//!   AVX-512 register.
//! - [`dense`]: row passes and attention on plain slices, for
//!   inference code outside candle's graph (the sentence encoder).
//! - [`packed`]: a `Linear` weight packed once, for inference products.
//! - [`partner`]: spinning partner threads for a batch-1 forward's
//!   column-split products, in place of a rayon fork-join per product.
//! - [`precision`]: f32 or the opt-in bf16 products (bf16 operands, f32
//!   sums), on AMX tiles or AVX512-BF16 where the CPU has them (`amx`,
//!   `bf16`).
//! - [`search`]: exact k-nearest rows by cosine, a bf16 pass to pick
//!   candidates and f32 to score them (the chat service's bank).

pub mod act;
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod amx;
mod bf16;
pub mod dense;
pub mod gru;
pub mod lanes;
pub mod layer_norm;
pub mod linear;
pub mod lstm;
// The tiles are AVX-512 only; elsewhere their panels and steps go unused.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
mod lstm_tile;
mod mat;
pub mod op;
pub mod packed;
pub mod partner;
pub mod precision;
mod rows;
pub mod scale_shift;
pub mod search;

pub use linear::linear;
pub use mat::poison_outputs;
pub use op::{
    gru as gru_op, gru_packed, linear_packed, lstm as lstm_op, lstm_fused as lstm_fused_op,
    lstm_fused_last as lstm_fused_last_op, lstm_packed,
};
pub use scale_shift::scale_shift;

/// Whether the A/B switch `var` (`RECUR_NO_PREPACK`, `RECUR_NO_WIDE`, ...)
/// turns its path off: set to anything but empty or `0`, so that
/// `RECUR_NO_X=0` leaves the path on, as a user reading `=1` would expect.
pub fn turned_off(var: &str) -> bool {
    std::env::var_os(var).is_some_and(|v| !v.is_empty() && v != "0")
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_switch_set_to_0_or_empty_leaves_the_path_on() {
        // A name of its own: the environment is the whole process's.
        let var = "RECUR_NO_SWITCH_TEST";
        assert!(!super::turned_off(var));
        for (v, off) in [("1", true), ("yes", true), ("0", false), ("", false)] {
            std::env::set_var(var, v);
            assert_eq!(super::turned_off(var), off, "{var}={v:?}");
        }
        std::env::remove_var(var);
    }
}

//! One LSTM layer in PyTorch's packed layout (`weight_ih [4H, I]`,
//! `weight_hh [4H, H]`, two biases, gate order i, f, g, o), written with
//! candle tensor operations so autograd gives the backward pass. The input
//! projection of all time steps is one matrix product; the recurrence is a
//! loop of small operations per step. This is the reference path; fused
//! kernels replace it where speed matters and are tested against it.

use candle_core::{IndexOp, Result, Tensor, D};

/// The four tensors of one layer.
pub struct LstmWeights<'a> {
    pub w_ih: &'a Tensor,
    pub w_hh: &'a Tensor,
    pub b_ih: &'a Tensor,
    pub b_hh: &'a Tensor,
}

/// Runs the layer over the steps `xs` (each `[B, I]`) from zero state and
/// returns the hidden state of every step (`[B, H]` each).
///
/// Each step's input is projected on its own rather than slicing one
/// `[B, L, 4H]` projection: candle's backward of a slice allocates a
/// zero-filled gradient of the whole sliced tensor, which per step made
/// training O(L^2) in memory traffic.
pub fn lstm_steps(xs: &[Tensor], w: &LstmWeights) -> Result<Vec<Tensor>> {
    let b = xs.first().map_or(Ok(0), |x| x.dim(0))?;
    let hs = w.w_ih.dim(0)? / 4;
    let bias = (w.b_ih + w.b_hh)?.unsqueeze(0)?;
    let (w_ih_t, w_hh_t) = (w.w_ih.t()?, w.w_hh.t()?);
    let dev = w.w_ih.device();
    let mut h = Tensor::zeros((b, hs), w.w_ih.dtype(), dev)?;
    let mut c = h.clone();
    let mut outs = Vec::with_capacity(xs.len());
    for x in xs {
        let gates = x
            .matmul(&w_ih_t)?
            .add(&h.matmul(&w_hh_t)?)?
            .broadcast_add(&bias)?;
        let ig = candle_nn::ops::sigmoid(&gates.narrow(D::Minus1, 0, hs)?)?;
        let fg = candle_nn::ops::sigmoid(&gates.narrow(D::Minus1, hs, hs)?)?;
        let gg = gates.narrow(D::Minus1, 2 * hs, hs)?.tanh()?;
        let og = candle_nn::ops::sigmoid(&gates.narrow(D::Minus1, 3 * hs, hs)?)?;
        c = ((fg * &c)? + (ig * gg)?)?;
        h = (og * c.tanh()?)?;
        outs.push(h.clone());
    }
    Ok(outs)
}

/// Splits `x [B, L, I]` into its `L` steps (`[B, I]` each, contiguous).
pub fn steps_of(x: &Tensor) -> Result<Vec<Tensor>> {
    let l = x.dim(1)?;
    (0..l).map(|t| x.i((.., t, ..))?.contiguous()).collect()
}

/// Runs the layer over `x [B, L, I]`. Returns every hidden state `[B, L, H]`
/// when `sequence` is true, else the last one `[B, H]`.
pub fn lstm_layer(x: &Tensor, w: &LstmWeights, sequence: bool) -> Result<Tensor> {
    let mut outs = lstm_steps(&steps_of(x)?, w)?;
    if sequence {
        Tensor::stack(&outs, 1)
    } else {
        outs.pop()
            .ok_or_else(|| candle_core::Error::Msg("empty sequence".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// A hand-computed step: H = 1, I = 1, one time step.
    #[test]
    fn one_step_matches_the_lstm_equations() {
        let dev = Device::Cpu;
        let w_ih = Tensor::new(&[[0.5f32], [-0.3], [0.8], [0.1]], &dev).unwrap();
        let w_hh = Tensor::new(&[[0.2f32], [0.4], [-0.6], [0.9]], &dev).unwrap();
        let b_ih = Tensor::new(&[0.1f32, 0.2, 0.0, -0.1], &dev).unwrap();
        let b_hh = Tensor::new(&[0.0f32, 0.1, 0.05, 0.0], &dev).unwrap();
        let x = Tensor::new(&[[[2.0f32]]], &dev).unwrap();
        let w = LstmWeights {
            w_ih: &w_ih,
            w_hh: &w_hh,
            b_ih: &b_ih,
            b_hh: &b_hh,
        };
        let h: Vec<f32> = lstm_layer(&x, &w, false)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let sig = |v: f32| 1.0 / (1.0 + (-v).exp());
        let (i, g, o) = (sig(1.1), (1.65f32).tanh(), sig(0.1));
        let c = i * g; // f * c0 with c0 = 0
        assert!(
            (h[0] - o * c.tanh()).abs() < 1e-6,
            "{} vs {}",
            h[0],
            o * c.tanh()
        );
    }
}

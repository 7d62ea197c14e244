//! Recurrent layers in PyTorch's packed layout (`weight_ih [4H, I]`,
//! `weight_hh [4H, H]`, two biases; LSTM gates i, f, g, o, GRU r, z, n).
//!
//! [`lstm_seq`] and [`gru_seq`] are what models use: the input projection
//! of every step as one candle matmul, then recur's fused recurrence
//! (`recur-kernels`) as one autograd node. [`lstm_steps`] is the same LSTM
//! written as a loop of candle operations per step; it stays as the test
//! oracle for the fused path.

use candle_core::{IndexOp, Result, Tensor, D};

/// The four tensors of one layer.
pub struct LstmWeights<'a> {
    pub w_ih: &'a Tensor,
    pub w_hh: &'a Tensor,
    pub b_ih: &'a Tensor,
    pub b_hh: &'a Tensor,
}

/// One GRU layer's tensors.
pub struct GruWeights<'a> {
    pub w_ih: &'a Tensor,
    pub w_hh: &'a Tensor,
    pub b_ih: &'a Tensor,
    pub b_hh: &'a Tensor,
}

/// The LSTM over time-major `x [L, B, I]` from zero state: every hidden
/// state, `[L, B, H]`.
///
/// Narrow inputs (at most half the hidden size, as the classifier's
/// features) take the kernel that projects inside the time loop; wider ones
/// (the LVM's 512 -> 512) one big projection GEMM first, which uses the
/// weights better.
pub fn lstm_seq(x: &Tensor, w: &LstmWeights) -> Result<Tensor> {
    let (i, h) = (w.w_ih.dim(1)?, w.w_hh.dim(1)?);
    let bias = (w.b_ih + w.b_hh)?;
    if 2 * i <= h && x.device().is_cpu() {
        let w_all = Tensor::cat(&[w.w_ih, w.w_hh, &bias.unsqueeze(1)?], 1)?;
        return recur_kernels::lstm_fused_op(x, &w_all);
    }
    let xp = recur_kernels::linear(&x.contiguous()?, w.w_ih, &bias)?;
    recur_kernels::lstm_op(&xp, w.w_hh)
}

/// The LSTM's last hidden state `[B, H]` over batch-major `x [B, L, I]`
/// (a model's input as it comes) from zero state, for inference: no
/// gradient. Narrow inputs take the fused kernel's last-state path, which
/// reads `x` in place and writes no other step's state out; the same bits
/// as the last step of [`lstm_seq`] on `x` time-major.
pub fn lstm_last(x: &Tensor, w: &LstmWeights) -> Result<Tensor> {
    let (i, h) = (w.w_ih.dim(1)?, w.w_hh.dim(1)?);
    if 2 * i <= h && x.device().is_cpu() {
        let bias = (w.b_ih + w.b_hh)?;
        let w_all = Tensor::cat(&[w.w_ih, w.w_hh, &bias.unsqueeze(1)?], 1)?;
        return recur_kernels::lstm_fused_last_op(x, &w_all);
    }
    let l = x.dim(1)?;
    lstm_seq(&x.transpose(0, 1)?, w)?.i(l - 1)
}

/// The GRU over time-major `x [L, B, I]` from zero state: `[L, B, H]`.
pub fn gru_seq(x: &Tensor, w: &GruWeights) -> Result<Tensor> {
    let xp = recur_kernels::linear(x, w.w_ih, w.b_ih)?;
    recur_kernels::gru_op(&xp, w.w_hh, w.b_hh)
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
    use candle_core::{Device, Var};

    /// The fused layer against the per-step candle oracle, output and every
    /// gradient, on a 2-layer stack.
    #[test]
    fn fused_lstm_matches_the_per_step_oracle() {
        // Unwritten output elements of the kernels show as NaN.
        recur_kernels::poison_outputs(true);
        let dev = Device::Cpu;
        let mut rng = recur_core::rng::Rng::new(3);
        let (b, l, i, h) = (4, 6, 3, 7);
        let mut var = |shape: &[usize], a: f32| {
            let n = shape.iter().product();
            let v: Vec<f32> = (0..n).map(|_| rng.uniform(-a, a)).collect();
            Var::from_tensor(&Tensor::from_vec(v, shape, &dev).unwrap()).unwrap()
        };
        let x = var(&[b, l, i], 1.0);
        let ws: Vec<[Var; 4]> = [i, h]
            .iter()
            .map(|&inp| {
                [
                    var(&[4 * h, inp], 0.5),
                    var(&[4 * h, h], 0.5),
                    var(&[4 * h], 0.3),
                    var(&[4 * h], 0.3),
                ]
            })
            .collect();
        let gy = var(&[b, h], 1.0);
        let weights = |k: usize| LstmWeights {
            w_ih: ws[k][0].as_tensor(),
            w_hh: ws[k][1].as_tensor(),
            b_ih: ws[k][2].as_tensor(),
            b_hh: ws[k][3].as_tensor(),
        };
        // Oracle: per-step ops.
        let steps = lstm_steps(
            &lstm_steps(&steps_of(&x).unwrap(), &weights(0)).unwrap(),
            &weights(1),
        )
        .unwrap();
        let y_ref = steps.last().unwrap().clone();
        // Fused, time-major.
        let xt = x.transpose(0, 1).unwrap().contiguous().unwrap();
        let y = lstm_seq(&lstm_seq(&xt, &weights(0)).unwrap(), &weights(1))
            .unwrap()
            .get(l - 1)
            .unwrap();
        let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let close = |a: &[f32], r: &[f32], what: &str| {
            let scale = r.iter().fold(0f32, |m, v| m.max(v.abs()));
            let err = a.iter().zip(r).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
            assert!(
                scale > 1e-4 && err / scale < 1e-5,
                "{what}: {err} vs scale {scale}"
            );
        };
        close(&flat(&y), &flat(&y_ref), "output");
        let g = (&y * gy.as_tensor())
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let g_ref = (&y_ref * gy.as_tensor())
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        close(
            &flat(g.get(&x).unwrap()),
            &flat(g_ref.get(&x).unwrap()),
            "grad x",
        );
        for (k, layer) in ws.iter().enumerate() {
            for (j, v) in layer.iter().enumerate() {
                close(
                    &flat(g.get(v).unwrap()),
                    &flat(g_ref.get(v).unwrap()),
                    &format!("layer {k} tensor {j}"),
                );
            }
        }
    }

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

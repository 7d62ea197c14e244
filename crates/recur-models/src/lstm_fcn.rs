//! LSTM-FCN (Karim et al. 2017, "LSTM Fully Convolutional Networks for
//! Time Series Classification"): an LSTM branch beside three temporal
//! convolution blocks (Conv1d, batch norm, ReLU; 128, 256, 128 filters with
//! kernels 8, 5, 3 in the paper) and global average pooling over time,
//! concatenated into a linear head. With the paper's dimension shuffle the
//! LSTM reads the series transposed: F steps of T values, so a univariate
//! series is one step, and the LSTM works as a learned summary of the whole
//! series rather than a recurrence over 150 steps.
//!
//! Tensor names and layouts are PyTorch's for the equivalent module
//! (`lstm.weight_ih_l0`, `conv1.weight [out, in, k]`, `bn1.weight`,
//! `bn1.running_mean`, `fc.weight`), with `padding="same"` (PyTorch's split:
//! the odd pixel on the right) and batch norm's defaults (momentum 0.1,
//! eps 1e-5, unbiased running variance). The running statistics are
//! buffers: kept beside the trainable parameters, updated by training
//! forwards, saved with them, and the only statistics evaluation uses.
//! The LSTM runs on recur's fused kernels; the convolutions are products
//! of the unfolded series with the weights (see `conv1d` below).

use crate::classifier::dropout;
use crate::init;
use crate::lstm::{lstm_seq, LstmWeights};
use crate::params::ParamSet;
use candle_core::{Device, IndexOp, Result, Tensor, Var, D};
use recur_core::checkpoint::TensorSpec;
use recur_core::rng::Rng;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

pub const KIND: &str = "lstm_fcn";
/// Batch norm's defaults in PyTorch.
pub const BN_MOMENTUM: f64 = 0.1;
pub const BN_EPS: f64 = 1e-5;

/// Everything that decides the function the model computes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LstmFcnArch {
    pub kind: String,
    /// Channels per time step (F).
    pub input_dim: usize,
    /// Series length (T); the shuffled LSTM's input width.
    pub sequence_length: usize,
    pub hidden_size: usize,
    /// Dropout after the LSTM branch (0.8 in the paper).
    pub dropout: f64,
    /// The paper's dimension shuffle: the LSTM reads F steps of T values.
    pub shuffle: bool,
    pub filters: [usize; 3],
    pub kernels: [usize; 3],
    /// Logits out: 1 for two classes, else the number of classes.
    pub outputs: usize,
}

impl LstmFcnArch {
    /// The paper's model for series of `sequence_length` steps of
    /// `input_dim` channels.
    pub fn new(
        input_dim: usize,
        sequence_length: usize,
        hidden_size: usize,
        outputs: usize,
    ) -> Self {
        LstmFcnArch {
            kind: KIND.into(),
            input_dim,
            sequence_length,
            hidden_size,
            dropout: 0.8,
            shuffle: true,
            filters: [128, 256, 128],
            kernels: [8, 5, 3],
            outputs,
        }
    }

    fn lstm_input(&self) -> usize {
        if self.shuffle {
            self.sequence_length
        } else {
            self.input_dim
        }
    }
}

/// The running statistics of the three batch norms, by PyTorch name.
fn buffer_specs(a: &LstmFcnArch) -> Vec<TensorSpec> {
    (0..3)
        .flat_map(|k| {
            let f = a.filters[k];
            [
                TensorSpec::new(format!("bn{}.running_mean", k + 1), &[f]),
                TensorSpec::new(format!("bn{}.running_var", k + 1), &[f]),
            ]
        })
        .collect()
}

pub struct LstmFcn {
    pub arch: LstmFcnArch,
    params: ParamSet,
    /// Batch norm running statistics: not trained (never handed to an
    /// optimiser), updated by training forwards through `Var::set`.
    buffers: ParamSet,
}

impl LstmFcn {
    /// The trainable tensors, by name and shape.
    pub fn param_specs(a: &LstmFcnArch) -> Vec<TensorSpec> {
        let h = a.hidden_size;
        let mut v = vec![
            TensorSpec::new("lstm.weight_ih_l0", &[4 * h, a.lstm_input()]),
            TensorSpec::new("lstm.weight_hh_l0", &[4 * h, h]),
            TensorSpec::new("lstm.bias_ih_l0", &[4 * h]),
            TensorSpec::new("lstm.bias_hh_l0", &[4 * h]),
        ];
        let mut c_in = a.input_dim;
        for k in 0..3 {
            let (f, ks) = (a.filters[k], a.kernels[k]);
            v.push(TensorSpec::new(
                format!("conv{}.weight", k + 1),
                &[f, c_in, ks],
            ));
            v.push(TensorSpec::new(format!("conv{}.bias", k + 1), &[f]));
            v.push(TensorSpec::new(format!("bn{}.weight", k + 1), &[f]));
            v.push(TensorSpec::new(format!("bn{}.bias", k + 1), &[f]));
            c_in = f;
        }
        v.push(TensorSpec::new("fc.weight", &[a.outputs, h + a.filters[2]]));
        v.push(TensorSpec::new("fc.bias", &[a.outputs]));
        v
    }

    /// Every tensor a checkpoint holds: the parameters, then the buffers.
    pub fn tensor_specs(a: &LstmFcnArch) -> Vec<TensorSpec> {
        let mut v = Self::param_specs(a);
        v.extend(buffer_specs(a));
        v
    }

    /// Fresh weights as PyTorch initialises the module: LSTM and Linear
    /// uniform(+-1/sqrt(fan)), convolutions Kaiming-uniform as `nn.Conv1d`
    /// (bound 1/sqrt(in * k) for weight and bias), batch norm scale 1,
    /// shift 0, running mean 0 and variance 1.
    pub fn init(arch: LstmFcnArch, rng: &mut Rng, dev: &Device) -> Result<Self> {
        let h = arch.hidden_size;
        let mut tensors = HashMap::new();
        // A convolution's bias is drawn with its weight's fan-in.
        let mut conv_fan = 1;
        for spec in Self::tensor_specs(&arch) {
            let n: usize = spec.shape.iter().product();
            let name = spec.name.as_str();
            let data = if name.starts_with("lstm.") {
                init::linear_default(rng, n, h)
            } else if name.starts_with("conv") {
                if name.ends_with(".weight") {
                    conv_fan = spec.shape[1] * spec.shape[2];
                }
                init::linear_default(rng, n, conv_fan)
            } else if name.ends_with("running_var")
                || (name.starts_with("bn") && name.ends_with(".weight"))
            {
                vec![1.0; n]
            } else if name.starts_with("bn") {
                vec![0.0; n]
            } else {
                init::linear_default(rng, n, h + arch.filters[2])
            };
            tensors.insert(
                spec.name.clone(),
                Tensor::from_vec(data, spec.shape.as_slice(), dev)?,
            );
        }
        Self::from_tensors(arch, tensors)
    }

    /// Builds the model from named tensors (checked against
    /// [`Self::tensor_specs`] by the checkpoint layer).
    pub fn from_tensors(arch: LstmFcnArch, mut tensors: HashMap<String, Tensor>) -> Result<Self> {
        let specs = buffer_specs(&arch);
        let stats: HashMap<String, Tensor> = specs
            .iter()
            .filter_map(|s| tensors.remove_entry(&s.name))
            .collect();
        let buffers = ParamSet::from_tensors(&specs, stats)?;
        let params = ParamSet::from_tensors(&Self::param_specs(&arch), tensors)?;
        Ok(LstmFcn {
            arch,
            params,
            buffers,
        })
    }

    /// The trainable parameters in a fixed order, with their PyTorch names.
    pub fn params(&self) -> &[(String, Var)] {
        self.params.all()
    }

    /// The batch norm running statistics, with their PyTorch names.
    pub fn buffers(&self) -> &[(String, Var)] {
        self.buffers.all()
    }

    pub fn n_params(&self) -> usize {
        self.params.n_params()
    }

    fn buffer(&self, name: &str) -> &Var {
        self.buffers.var(name)
    }

    /// A real copy of every weight and running statistic.
    pub fn snapshot(&self) -> Result<Vec<(String, Tensor)>> {
        let mut s = self.params.snapshot()?;
        s.extend(self.buffers.snapshot()?);
        Ok(s)
    }

    /// Overwrites weights and running statistics with a snapshot.
    pub fn restore(&self, snap: &[(String, Tensor)]) -> Result<()> {
        let n = self.params.all().len().min(snap.len());
        self.params.restore(&snap[..n])?;
        self.buffers.restore(&snap[n..])
    }

    /// Batch norm over `[B, C, T]`: in training, the batch's statistics
    /// (biased variance) normalise and the running ones move towards them
    /// (unbiased variance); in evaluation, the running ones alone.
    fn batch_norm(
        &self,
        x: &Tensor,
        k: usize,
        train: bool,
        p: &dyn Fn(&str) -> Tensor,
    ) -> Result<Tensor> {
        let (b, c, t) = x.dims3()?;
        let (mean, var) = if train {
            let mean = x.mean_keepdim(2)?.mean_keepdim(0)?; // [1, C, 1]
            let centred = x.broadcast_sub(&mean)?;
            let var = centred.sqr()?.mean_keepdim(2)?.mean_keepdim(0)?;
            let n = (b * t) as f64;
            let m = BN_MOMENTUM;
            let rm = self.buffer(&format!("bn{k}.running_mean"));
            let rv = self.buffer(&format!("bn{k}.running_var"));
            let bm = mean.detach().reshape(c)?;
            let bv = var.detach().reshape(c)?;
            let unbiased = if n > 1.0 { n / (n - 1.0) } else { 1.0 };
            rm.set(&((rm.as_tensor() * (1.0 - m))? + (bm * m)?)?)?;
            rv.set(&((rv.as_tensor() * (1.0 - m))? + (bv * (m * unbiased))?)?)?;
            (mean, var)
        } else {
            let rm = self
                .buffer(&format!("bn{k}.running_mean"))
                .as_tensor()
                .reshape((1, c, 1))?;
            let rv = self
                .buffer(&format!("bn{k}.running_var"))
                .as_tensor()
                .reshape((1, c, 1))?;
            (rm, rv)
        };
        let scale = p(&format!("bn{k}.weight")).reshape((1, c, 1))?;
        let shift = p(&format!("bn{k}.bias")).reshape((1, c, 1))?;
        x.broadcast_sub(&mean)?
            .broadcast_div(&(var + BN_EPS)?.sqrt()?)?
            .broadcast_mul(&scale)?
            .broadcast_add(&shift)
    }

    /// Logits for series `x [B, T, F]`: `[B]` for one output, `[B, K]` for
    /// K. With `dropout_rng` the model trains (dropout, batch statistics,
    /// running statistics updated, gradients kept); without, it evaluates
    /// on detached weights and the running statistics.
    pub fn forward(&self, x: &Tensor, dropout_rng: Option<&mut Rng>) -> Result<Tensor> {
        let a = &self.arch;
        let train = dropout_rng.is_some();
        let p = |name: &str| {
            let t = self.params.get(name);
            if train {
                t.clone()
            } else {
                t.detach()
            }
        };
        let (_, t_len, f) = x.dims3()?;
        if f != a.input_dim || (a.shuffle && t_len != a.sequence_length) {
            candle_core::bail!(
                "LSTM-FCN input [B, {t_len}, {f}]: the model takes [B, {}, {}]",
                a.sequence_length,
                a.input_dim
            );
        }
        // The LSTM branch, time-major: [F, B, T] shuffled, else [T, B, F].
        let seq = if a.shuffle {
            x.permute((2, 0, 1))?.contiguous()?
        } else {
            x.transpose(0, 1)?.contiguous()?
        };
        let (w_ih, w_hh, b_ih, b_hh) = (
            p("lstm.weight_ih_l0"),
            p("lstm.weight_hh_l0"),
            p("lstm.bias_ih_l0"),
            p("lstm.bias_hh_l0"),
        );
        let w = LstmWeights {
            w_ih: &w_ih,
            w_hh: &w_hh,
            b_ih: &b_ih,
            b_hh: &b_hh,
        };
        let steps = seq.dim(0)?;
        let mut h = lstm_seq(&seq, &w)?.i(steps - 1)?;
        if let Some(rng) = dropout_rng {
            h = dropout(&h, a.dropout, rng)?;
        }
        // The convolution branch on [B, C, T].
        let mut c = x.transpose(1, 2)?.contiguous()?;
        for k in 1..=3 {
            let ks = a.kernels[k - 1];
            let left = (ks - 1) / 2;
            let padded = c.pad_with_zeros(2, left, ks - 1 - left)?;
            let bias = p(&format!("conv{k}.bias")).reshape((1, a.filters[k - 1], 1))?;
            let y = conv1d(&padded, &p(&format!("conv{k}.weight")), t_len)?.broadcast_add(&bias)?;
            c = self.batch_norm(&y, k, train, &p)?.relu()?;
        }
        let pooled = c.mean(D::Minus1)?;
        let z = Tensor::cat(&[&h, &pooled], 1)?;
        let out = z
            .matmul(&p("fc.weight").t()?)?
            .broadcast_add(&p("fc.bias"))?;
        if a.outputs == 1 {
            out.squeeze(1)
        } else {
            Ok(out)
        }
    }
}

/// A "valid" 1-D convolution of `x [B, C, T + k - 1]` with `w [O, C, k]`
/// to `[B, O, T]`, as one product of the unfolded input (`[B, T, C * k]`)
/// with the weights (`[C * k, O]`). Written here rather than with candle's
/// `conv1d` because that one's backward gives wrong gradients for these
/// shapes (the PyTorch fixture test shows it); the product's backward is
/// the matmul's, and it runs on the same GEMM.
fn conv1d(x: &Tensor, w: &Tensor, t: usize) -> Result<Tensor> {
    let (b, c, _) = x.dims3()?;
    let (o, _, k) = w.dims3()?;
    let cols: Vec<Tensor> = (0..k).map(|j| x.narrow(2, j, t)).collect::<Result<_>>()?;
    // [B, C, k, T] -> [B, T, C * k], in the weights' (C, k) order.
    let unfolded = Tensor::stack(&cols, 2)?
        .reshape((b, c * k, t))?
        .transpose(1, 2)?
        .contiguous()?;
    let wm = w.reshape((o, c * k))?.t()?;
    unfolded
        .broadcast_matmul(&wm)?
        .transpose(1, 2)?
        .contiguous()
}

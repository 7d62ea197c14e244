//! The latent vector models of Job B (SYSTEM.md): the sentence embeddings
//! of the last C chunks `[B, C, D]` -> the next one `[B, D]`, L2-normalised
//! (bug 7 of the original left the LSTM's output raw).
//!
//! - `lstm` / `gru`: `Linear(D, d) -> n x [RNN(d, d) -> LayerNorm(out + x)]
//!   -> last position -> Linear(d, D)` on recur's fused kernels; tensor
//!   names are the original's (`input_proj.*`, `blocks.{i}.lstm.weight_ih_l0`,
//!   `blocks.{i}.norm.*`, `output_proj.*`).
//! - `amn`, the attention mixture network: `base = mean(x)`, `q = Wq base`,
//!   `K = Wk x` (D -> d), `a = softmax(q K^T / sqrt(d))`, `ctx = a x`,
//!   `out = normalize(base + MLP([base, ctx]))` with MLP = Linear(2D, 2d)
//!   GELU LayerNorm Linear(2d, d) GELU LayerNorm Linear(d, D); names
//!   `query.*`, `key.*` and `mlp.{0,2,3,5,6}.*` as an `nn.Sequential`.
//! - `transformer` and `mlp`: see [`crate::transformer`] and [`crate::mlp`].
//!
//! One struct serves every kind: the architecture picks the tensor list and
//! the forward pass.

use crate::init;
use crate::lstm::{gru_seq, lstm_seq, GruWeights, LstmWeights};
use crate::lvm_packed::Packed;
use crate::params::ParamSet;
use candle_core::{Device, IndexOp, Result, Tensor, Var, D};
use recur_core::checkpoint::TensorSpec;
pub use recur_core::lvm_config::LvmKind;
use recur_core::rng::Rng;
use recur_kernels::precision::Precision;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// LayerNorm's epsilon, PyTorch's default.
pub const LN_EPS: f32 = 1e-5;

/// Everything that decides the function the model computes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LvmArch {
    pub kind: LvmKind,
    pub input_dim: usize,
    pub d_model: usize,
    pub num_layers: usize,
    /// Context length the model was trained with.
    pub context: usize,
    /// Attention heads (transformer).
    #[serde(default = "default_heads")]
    pub heads: usize,
    /// Feed-forward width (transformer).
    #[serde(default = "default_ff")]
    pub ff: usize,
    /// Dropout in training (transformer).
    #[serde(default)]
    pub dropout: f64,
}

fn default_heads() -> usize {
    recur_core::lvm_config::DEFAULT_HEADS
}

fn default_ff() -> usize {
    recur_core::lvm_config::DEFAULT_FF
}

impl LvmArch {
    /// The architecture of an LVM of `kind` with these sizes.
    pub fn new(
        kind: LvmKind,
        input_dim: usize,
        d_model: usize,
        num_layers: usize,
        context: usize,
    ) -> Self {
        LvmArch {
            kind,
            input_dim,
            d_model,
            num_layers,
            context,
            heads: default_heads(),
            ff: default_ff(),
            dropout: if kind == LvmKind::Transformer {
                0.1
            } else {
                0.0
            },
        }
    }

    /// The architecture as stored in a checkpoint's metadata.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("architecture serialises")
    }

    /// Refuses sizes no model of the kind has (a zero width, context or
    /// layer count; transformer heads that do not divide d_model): a
    /// checkpoint or import that states them would load and then fail in
    /// the kernels.
    pub fn check(&self) -> Result<()> {
        let mut sizes = vec![
            ("input_dim", self.input_dim),
            ("d_model", self.d_model),
            ("context", self.context),
        ];
        if self.kind != LvmKind::Amn {
            sizes.push(("num_layers", self.num_layers));
        }
        if self.kind == LvmKind::Transformer {
            sizes.extend([("heads", self.heads), ("ff", self.ff)]);
        }
        let zero: Vec<&str> = sizes.iter().filter(|s| s.1 == 0).map(|s| s.0).collect();
        if !zero.is_empty() {
            candle_core::bail!(
                "the {} LVM's architecture has {} 0; every size must be at least 1",
                self.kind,
                zero.join(", ")
            );
        }
        // A header's sizes are read before any tensor: 3,000,000 layers in
        // a 253-byte file listed 18 million tensors (6 GB). The limits are
        // those of an LVM config, and sizes far past any sentence encoder.
        use recur_core::lvm_config::{MAX_LAYERS, MAX_SIZE};
        let limits = [
            ("num_layers", self.num_layers, MAX_LAYERS),
            ("input_dim", self.input_dim, MAX_SIZE),
            ("d_model", self.d_model, MAX_SIZE),
            ("context", self.context, MAX_SIZE),
            ("heads", self.heads, MAX_SIZE),
            ("ff", self.ff, 4 * MAX_SIZE),
        ];
        if let Some((name, v, max)) = limits.iter().find(|l| l.1 > l.2) {
            candle_core::bail!(
                "the {} LVM's architecture has {name} {v}; recur builds at most {max}",
                self.kind
            );
        }
        if self.kind == LvmKind::Transformer && !self.d_model.is_multiple_of(self.heads) {
            candle_core::bail!(
                "the transformer's d_model {} is not a multiple of its {} heads",
                self.d_model,
                self.heads
            );
        }
        Ok(())
    }

    /// Gates per recurrent cell: 4 for the LSTM, 3 for the GRU, 0 for AMN.
    fn gates(&self) -> usize {
        match self.kind {
            LvmKind::Lstm => 4,
            LvmKind::Gru => 3,
            LvmKind::Amn | LvmKind::Transformer | LvmKind::Mlp => 0,
        }
    }
}

/// Where training starts (`model.init` in the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// PyTorch's default initialisation.
    Pytorch,
    /// A recency-weighted average of the context (see [`crate::start`]).
    Average,
}

impl Start {
    /// The start named in a config (`pytorch` or `average`).
    pub fn parse(s: &str) -> Option<Start> {
        match s {
            "pytorch" => Some(Start::Pytorch),
            "average" => Some(Start::Average),
            _ => None,
        }
    }
}

pub struct Lvm {
    pub arch: LvmArch,
    params: ParamSet,
    /// The weights packed for serving ([`Lvm::for_inference`]).
    packed: Mutex<Packing>,
}

/// Whether a model packs its weights for forwards of a few contexts.
enum Packing {
    /// Not asked to ([`Lvm::for_inference`] was not called).
    No,
    /// Asked to: the first forward of a few contexts in a precision packs
    /// for it (f32, bf16).
    Allowed([Option<Arc<Packed>>; 2]),
    /// Never again: the variables were handed out or restored, so they
    /// may change under a packed copy.
    Never,
}

impl Lvm {
    /// The tensors this architecture has, by name and shape.
    pub fn tensor_specs(a: &LvmArch) -> Result<Vec<TensorSpec>> {
        a.check()?;
        let (dd, d, g) = (a.input_dim, a.d_model, a.gates());
        if a.kind == LvmKind::Transformer {
            return Ok(crate::transformer::specs(a));
        }
        if a.kind == LvmKind::Mlp {
            return Ok(crate::mlp::specs(a));
        }
        if a.kind == LvmKind::Amn {
            let lin = |n: &str, o: usize, i: usize| {
                [
                    TensorSpec::new(format!("{n}.weight"), &[o, i]),
                    TensorSpec::new(format!("{n}.bias"), &[o]),
                ]
            };
            let norm = |n: &str, w: usize| {
                [
                    TensorSpec::new(format!("{n}.weight"), &[w]),
                    TensorSpec::new(format!("{n}.bias"), &[w]),
                ]
            };
            return Ok([
                lin("query", d, dd),
                lin("key", d, dd),
                lin("mlp.0", 2 * d, 2 * dd),
                norm("mlp.2", 2 * d),
                lin("mlp.3", d, 2 * d),
                norm("mlp.5", d),
                lin("mlp.6", dd, d),
            ]
            .concat());
        }
        let mut v = vec![
            TensorSpec::new("input_proj.weight", &[d, dd]),
            TensorSpec::new("input_proj.bias", &[d]),
        ];
        for i in 0..a.num_layers {
            let p = format!("blocks.{i}.{}", a.kind);
            v.push(TensorSpec::new(format!("{p}.weight_ih_l0"), &[g * d, d]));
            v.push(TensorSpec::new(format!("{p}.weight_hh_l0"), &[g * d, d]));
            v.push(TensorSpec::new(format!("{p}.bias_ih_l0"), &[g * d]));
            v.push(TensorSpec::new(format!("{p}.bias_hh_l0"), &[g * d]));
            v.push(TensorSpec::new(format!("blocks.{i}.norm.weight"), &[d]));
            v.push(TensorSpec::new(format!("blocks.{i}.norm.bias"), &[d]));
        }
        v.push(TensorSpec::new("output_proj.weight", &[dd, d]));
        v.push(TensorSpec::new("output_proj.bias", &[dd]));
        Ok(v)
    }

    /// PyTorch's default initialisation: Linear tensors uniform in
    /// `±1/sqrt(fan_in)`, recurrent ones in `±1/sqrt(d)`, LayerNorm weight 1
    /// and bias 0.
    pub fn init(arch: LvmArch, rng: &mut Rng, dev: &Device) -> Result<Self> {
        Self::init_from(arch, Start::Pytorch, rng, dev)
    }

    /// The initialisation `start` names: PyTorch's default, or the
    /// average start of [`crate::start`] on top of it.
    pub fn init_from(arch: LvmArch, start: Start, rng: &mut Rng, dev: &Device) -> Result<Self> {
        let specs = Self::tensor_specs(&arch)?;
        let shape_of = |name: &str| {
            specs
                .iter()
                .find(|s| s.name == name)
                .map(|s| s.shape.clone())
        };
        let mut tensors = HashMap::new();
        for s in &specs {
            let n: usize = s.shape.iter().product();
            let (module, what) = s.name.rsplit_once('.').expect("names have a module");
            // A 1-D weight is a LayerNorm's.
            let is_norm = shape_of(&format!("{module}.weight")).is_some_and(|w| w.len() == 1);
            let data = if is_norm {
                vec![if what == "weight" { 1.0 } else { 0.0 }; n]
            } else if what.ends_with("_l0") {
                init::linear_default(rng, n, arch.d_model)
            } else {
                let fan_in = shape_of(&format!("{module}.weight")).map_or(arch.d_model, |w| w[1]);
                init::linear_default(rng, n, fan_in)
            };
            tensors.insert(
                s.name.clone(),
                Tensor::from_vec(data, s.shape.as_slice(), dev)?,
            );
        }
        if start == Start::Average {
            crate::start::average(&mut tensors, &arch, dev)?;
        }
        Self::from_tensors(arch, tensors)
    }

    /// A model of `arch` from tensors already checked against its specs.
    pub fn from_tensors(arch: LvmArch, tensors: HashMap<String, Tensor>) -> Result<Self> {
        let params = ParamSet::from_tensors(&Self::tensor_specs(&arch)?, tensors)?;
        Ok(Lvm {
            arch,
            params,
            packed: Mutex::new(Packing::No),
        })
    }

    /// This model for serving: a `lstm` or `gru` LVM packs its weights
    /// once (`crate::lvm_packed`; about twice the memory, three times
    /// when it serves both precisions), at its first forward of a few
    /// contexts in a precision, and such forwards then read the packed
    /// copy where the CPU has AVX-512: 1.6-1.8x faster for the w2 LVM in
    /// f32, 3x in bf16. Other kinds and CPUs are returned as they are. A model whose
    /// variables were handed out ([`Lvm::vars`], [`Lvm::params`]) or
    /// restored never packs: they may change. `RECUR_NO_PREPACK` set in the
    /// environment keeps every model unpacked, for A/B timing.
    pub fn for_inference(self) -> Result<Self> {
        let recurrent = matches!(self.arch.kind, LvmKind::Lstm | LvmKind::Gru);
        let off = recur_kernels::turned_off("RECUR_NO_PREPACK");
        if recurrent && !off && recur_kernels::packed::packs_for_few_rows() {
            let mut p = self.packed.lock().expect("packed weights");
            if matches!(*p, Packing::No) {
                *p = Packing::Allowed([None, None]);
            }
        }
        Ok(self)
    }

    /// Whether this model has packed its weights for serving, in some
    /// precision.
    pub fn is_packed(&self) -> bool {
        match &*self.packed.lock().expect("packed weights") {
            Packing::Allowed(w) => w.iter().any(Option::is_some),
            _ => false,
        }
    }

    /// The weights packed for products in `prec`, packing them first if
    /// this model may ([`Lvm::for_inference`]); `None` where it may not.
    fn packed(&self, prec: Precision) -> Result<Option<Arc<Packed>>> {
        let mut p = self.packed.lock().expect("packed weights");
        let Packing::Allowed(slots) = &mut *p else {
            return Ok(None);
        };
        let bf16 = prec == Precision::Bf16;
        let slot = &mut slots[usize::from(bf16)];
        if slot.is_none() {
            let packed = Packed::new(&self.arch, &|n| self.params.get(n).clone(), bf16)?;
            *slot = Some(Arc::new(packed));
        }
        Ok(slot.clone())
    }

    /// Drops the packed weights for good: the variables may change.
    fn unpack(&self) {
        *self.packed.lock().expect("packed weights") = Packing::Never;
    }

    /// The named parameters, in the order the model declares them.
    pub fn params(&self) -> &[(String, Var)] {
        self.unpack();
        self.params.all()
    }

    /// The parameters, for an optimiser.
    pub fn vars(&self) -> Vec<Var> {
        self.unpack();
        self.params.vars()
    }

    /// The number of trainable parameters.
    pub fn n_params(&self) -> usize {
        self.params.n_params()
    }

    /// A copy of every parameter (the best epoch's weights).
    pub fn snapshot(&self) -> Result<Vec<(String, Tensor)>> {
        self.params.snapshot()
    }

    /// Puts back the parameters of a `snapshot`.
    pub fn restore(&self, snap: &[(String, Tensor)]) -> Result<()> {
        self.unpack();
        self.params.restore(snap)
    }

    /// Predicted next vectors `[B, D]`, unit length, for contexts `[B, C, D]`,
    /// keeping what backward needs (training). `dropout_rng` drives the
    /// architecture's dropout, where it has one (the transformer).
    pub fn forward(&self, x: &Tensor, dropout_rng: Option<&mut Rng>) -> Result<Tensor> {
        self.run(x, true, dropout_rng)
    }

    /// The same prediction in evaluation mode: detached weights, so no layer
    /// keeps gradient state (PyTorch's `no_grad`).
    ///
    /// A few contexts at a time (batch-1 latency, as `/chat`) run with the
    /// pool's other threads spinning beside this one
    /// ([`recur_kernels::partner`]): the products are too small for rayon's
    /// sleep and wake-up. The numbers are the same either way.
    pub fn predict(&self, x: &Tensor) -> Result<Tensor> {
        if x.dims().first().is_some_and(|&b| b <= 6) {
            if let Some(p) = self.packed(recur_kernels::precision::current())? {
                let pt = |n: &str| self.params.get(n).detach();
                return recur_kernels::partner::with_partners(|| p.forward(x, &self.arch, &pt));
            }
            return recur_kernels::partner::with_partners(|| self.run(x, false, None));
        }
        self.run(x, false, None)
    }

    fn run(&self, x: &Tensor, train: bool, dropout_rng: Option<&mut Rng>) -> Result<Tensor> {
        let a = &self.arch;
        let pt = |name: &str| {
            let t = self.params.get(name);
            if train {
                t.clone()
            } else {
                t.detach()
            }
        };
        if a.kind == LvmKind::Amn {
            return amn_forward(x, a, &pt);
        }
        if a.kind == LvmKind::Transformer {
            return crate::transformer::forward(x, a, &pt, dropout_rng);
        }
        if a.kind == LvmKind::Mlp {
            return crate::mlp::forward(x, a, &pt, dropout_rng);
        }
        let (_, c, _) = input_dims(x, a)?;
        let mut h = recur_kernels::linear(
            &x.transpose(0, 1)?.contiguous()?,
            &pt("input_proj.weight"),
            &pt("input_proj.bias"),
        )?;
        for i in 0..a.num_layers {
            let p = |n: &str| pt(&format!("blocks.{i}.{}.{n}", a.kind));
            let (w_ih, w_hh, b_ih, b_hh) = (
                p("weight_ih_l0"),
                p("weight_hh_l0"),
                p("bias_ih_l0"),
                p("bias_hh_l0"),
            );
            let y = if a.kind == LvmKind::Lstm {
                lstm_seq(
                    &h,
                    &LstmWeights {
                        w_ih: &w_ih,
                        w_hh: &w_hh,
                        b_ih: &b_ih,
                        b_hh: &b_hh,
                    },
                )?
            } else {
                gru_seq(
                    &h,
                    &GruWeights {
                        w_ih: &w_ih,
                        w_hh: &w_hh,
                        b_ih: &b_ih,
                        b_hh: &b_hh,
                    },
                )?
            };
            let (gamma, beta) = (
                pt(&format!("blocks.{i}.norm.weight")),
                pt(&format!("blocks.{i}.norm.bias")),
            );
            // Only the last position leaves the last block: normalise just it.
            h = if i + 1 == a.num_layers {
                add_layer_norm(&y.i(c - 1)?, &h.i(c - 1)?, &gamma, &beta)?
            } else {
                add_layer_norm(&y, &h, &gamma, &beta)?
            };
        }
        if a.num_layers == 0 {
            h = h.i(c - 1)?;
        }
        let out = recur_kernels::linear(&h, &pt("output_proj.weight"), &pt("output_proj.bias"))?;
        l2_normalize(&out)
    }
}

/// The attention mixture network's forward pass (see the module comment).
fn amn_forward(x: &Tensor, a: &LvmArch, p: &dyn Fn(&str) -> Tensor) -> Result<Tensor> {
    input_dims(x, a)?;
    let lin = |h: &Tensor, n: &str| {
        recur_kernels::linear(h, &p(&format!("{n}.weight")), &p(&format!("{n}.bias")))
    };
    let norm =
        |h: &Tensor, n: &str| layer_norm(h, &p(&format!("{n}.weight")), &p(&format!("{n}.bias")));
    let base = x.mean(1)?; // [B, D]
    let q = lin(&base, "query")?; // [B, d]
    let k = lin(x, "key")?; // [B, C, d]
    let scores = k.matmul(&q.unsqueeze(2)?)?.squeeze(2)?; // [B, C]
    let att = candle_nn::ops::softmax(&(scores / (a.d_model as f64).sqrt())?, D::Minus1)?;
    let ctx = att.unsqueeze(1)?.matmul(x)?.squeeze(1)?; // [B, D]
    let h = Tensor::cat(&[&base, &ctx], 1)?;
    let h = norm(&lin(&h, "mlp.0")?.gelu_erf()?, "mlp.2")?;
    let h = norm(&lin(&h, "mlp.3")?.gelu_erf()?, "mlp.5")?;
    let h = lin(&h, "mlp.6")?;
    l2_normalize(&(base + h)?)
}

/// `(B, C, D)` of contexts `x`, refused unless D is the vector size `a`
/// takes.
pub(crate) fn input_dims(x: &Tensor, a: &LvmArch) -> Result<(usize, usize, usize)> {
    let (b, c, dd) = x.dims3()?;
    if dd != a.input_dim {
        candle_core::bail!(
            "input vectors have dimension {dd}; this model takes {}",
            a.input_dim
        );
    }
    Ok((b, c, dd))
}

/// LayerNorm over the last dimension with a backward pass (candle-nn's fused
/// `LayerNorm::forward` has none: ARCHITECTURE.md): candle-nn's
/// `layer_norm_slow` to the bit, output and gradients, as two nodes: the
/// normalisation ([`recur_kernels::layer_norm`]) and `* gamma + beta`
/// ([`recur_kernels::scale_shift()`]).
pub fn layer_norm(x: &Tensor, gamma: &Tensor, beta: &Tensor) -> Result<Tensor> {
    if x.dtype() != candle_core::DType::F32 {
        return candle_nn::ops::layer_norm_slow(x, gamma, beta, LN_EPS);
    }
    recur_kernels::scale_shift(
        &recur_kernels::layer_norm::normalize(x, LN_EPS)?,
        gamma,
        beta,
    )
}

/// `layer_norm(y + h, gamma, beta)` with the residual sum inside the
/// normalisation's node: the same bits.
pub fn add_layer_norm(y: &Tensor, h: &Tensor, gamma: &Tensor, beta: &Tensor) -> Result<Tensor> {
    if y.dtype() != candle_core::DType::F32 || h.dtype() != candle_core::DType::F32 {
        return layer_norm(&(y + h)?, gamma, beta);
    }
    recur_kernels::scale_shift(
        &recur_kernels::layer_norm::add_normalize(y, h, LN_EPS)?,
        gamma,
        beta,
    )
}

/// `x / max(|x|, 1e-12)` along the last dimension, as `F.normalize`.
/// The first row of `pred` (`[n, dim]`, row-major) that is not a unit
/// vector as every LVM's output is: NaN or infinity, or a norm far from 1.
/// A row whose sum of squares overflowed float32 before [`l2_normalize`]
/// divides by it comes out all zeros (huge but finite weights gave zero
/// vectors, served with a confidence of 0 and no error).
pub fn not_unit_row(pred: &[f32], dim: usize) -> Option<usize> {
    pred.chunks(dim.max(1)).position(|r| {
        let n: f64 = r.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
        !(0.25..=4.0).contains(&n)
    })
}

pub fn l2_normalize(x: &Tensor) -> Result<Tensor> {
    let n = x
        .sqr()?
        .sum_keepdim(D::Minus1)?
        .sqrt()?
        .clamp(1e-12, f64::MAX)?;
    x.broadcast_div(&n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::DType;

    /// Sizes past any LVM recur builds are refused before the tensor list
    /// is made (a 253-byte header of 3,000,000 layers took 6 GB).
    #[test]
    fn an_architecture_past_the_limits_is_refused_before_its_tensors_are_listed() {
        let mut a = LvmArch::new(LvmKind::Lstm, 16, 16, 3_000_000, 5);
        let e = Lvm::tensor_specs(&a).err().unwrap().to_string();
        assert!(
            e.contains("num_layers 3000000; recur builds at most 64"),
            "{e}"
        );
        a.num_layers = 2;
        a.context = 1 << 40;
        let e = Lvm::tensor_specs(&a).err().unwrap().to_string();
        assert!(e.contains("context 1099511627776"), "{e}");
        a.context = 5;
        assert_eq!(Lvm::tensor_specs(&a).unwrap().len(), 16);
    }

    /// recur's LayerNorm, and its form with the residual sum inside, are
    /// candle-nn's `layer_norm_slow` to the bit, output and gradients: the
    /// figures of models trained before them stay as they were.
    #[test]
    fn layer_norm_equals_candles_to_the_bit() -> Result<()> {
        let dev = Device::Cpu;
        let val = |n: usize, s: f32, o: usize| {
            (0..n)
                .map(|i| (((i + o) * 7919 % 1013) as f32 - 506.0) / 506.0 * s)
                .collect::<Vec<f32>>()
        };
        let x = candle_core::Var::from_vec(val(3 * 4 * 40, 2.0, 1), (3, 4, 40), &dev)?;
        let g = candle_core::Var::from_vec(val(40, 1.2, 2), 40, &dev)?;
        let b = candle_core::Var::from_vec(val(40, 0.3, 3), 40, &dev)?;
        let w = Tensor::from_vec(val(3 * 4 * 40, 1.0, 4), (3, 4, 40), &dev)?;
        let bits = |t: &Tensor| -> Result<Vec<u32>> {
            Ok(t.flatten_all()?
                .to_vec1::<f32>()?
                .iter()
                .map(|v| v.to_bits())
                .collect())
        };
        let ours = layer_norm(&x, &g, &b)?;
        let theirs = candle_nn::ops::layer_norm_slow(&x, &g, &b, LN_EPS)?;
        assert_eq!(bits(&ours)?, bits(&theirs)?);
        let go = (&ours * &w)?.sqr()?.sum_all()?.backward()?;
        let gt = (&theirs * &w)?.sqr()?.sum_all()?.backward()?;
        for v in [&x, &g, &b] {
            assert_eq!(bits(go.get(v).unwrap())?, bits(gt.get(v).unwrap())?);
        }
        let r = candle_core::Var::from_vec(val(3 * 4 * 40, 0.7, 5), (3, 4, 40), &dev)?;
        let ours = add_layer_norm(&x, &r, &g, &b)?;
        let theirs =
            candle_nn::ops::layer_norm_slow(&(x.as_tensor() + r.as_tensor())?, &g, &b, LN_EPS)?;
        assert_eq!(bits(&ours)?, bits(&theirs)?);
        let go = (&ours * &w)?.sqr()?.sum_all()?.backward()?;
        let gt = (&theirs * &w)?.sqr()?.sum_all()?.backward()?;
        for v in [&x, &r, &g, &b] {
            assert_eq!(bits(go.get(v).unwrap())?, bits(gt.get(v).unwrap())?);
        }
        Ok(())
    }

    #[test]
    fn parameter_counts_match_the_design() {
        for (kind, d, n) in [
            ("lstm", 512, 9_196_800),
            ("gru", 512, 7_095_552),
            ("amn", 256, 1_510_912),
        ] {
            let specs =
                Lvm::tensor_specs(&LvmArch::new(kind.parse().unwrap(), 768, d, 4, 5)).unwrap();
            let total: usize = specs
                .iter()
                .map(|s| s.shape.iter().product::<usize>())
                .sum();
            assert_eq!(total, n, "{kind}");
            if kind != "amn" {
                let name = format!("blocks.3.{kind}.weight_hh_l0");
                assert!(specs.iter().any(|s| s.name == name));
            }
        }
        assert!("rnn".parse::<LvmKind>().is_err());
        // Sizes no model has are refused by name, for every kind.
        for kind in ["lstm", "gru", "amn", "transformer", "mlp"] {
            let k: LvmKind = kind.parse().unwrap();
            for (what, arch) in [
                ("d_model", LvmArch::new(k, 8, 0, 1, 5)),
                ("context", LvmArch::new(k, 8, 8, 1, 0)),
                ("input_dim", LvmArch::new(k, 0, 8, 1, 5)),
            ] {
                let e = Lvm::tensor_specs(&arch).unwrap_err().to_string();
                assert!(e.contains(what) && e.contains("at least 1"), "{kind}: {e}");
            }
        }
        let t = LvmArch {
            ff: 0,
            ..LvmArch::new(LvmKind::Transformer, 8, 8, 1, 5)
        };
        let e = Lvm::tensor_specs(&t).unwrap_err().to_string();
        assert!(e.contains("ff"), "{e}");
    }

    /// Output weights so large (finite, 1e37 times the trained ones) that
    /// the sum of squares overflows before the normalisation: the rows
    /// come out all zeros, and `not_unit_row` names the first; a trained
    /// model's rows are unit vectors.
    #[test]
    fn an_output_that_overflowed_before_normalising_is_found() -> Result<()> {
        let dev = Device::Cpu;
        let arch = LvmArch::new(LvmKind::Lstm, 12, 8, 1, 5);
        let m = Lvm::init(arch.clone(), &mut Rng::new(3), &dev)?;
        let x = l2_normalize(&Tensor::ones((2, 5, 12), DType::F32, &dev)?)?;
        let y: Vec<f32> = m.predict(&x)?.flatten_all()?.to_vec1()?;
        assert_eq!(not_unit_row(&y, 12), None);
        let mut w: HashMap<String, Tensor> = m.snapshot()?.into_iter().collect();
        for name in ["output_proj.weight", "output_proj.bias"] {
            let t = w[name].clone();
            w.insert(name.into(), ((t + 0.5)? * 1e37)?);
        }
        let big = Lvm::from_tensors(arch, w)?;
        let y: Vec<f32> = big.predict(&x)?.flatten_all()?.to_vec1()?;
        assert!(y.iter().all(|v| v.is_finite()));
        assert_eq!(not_unit_row(&y, 12), Some(0));
        Ok(())
    }

    #[test]
    fn output_is_unit_length_and_every_tensor_gets_a_gradient() {
        for kind in ["lstm", "gru", "amn", "transformer", "mlp"] {
            let dev = Device::Cpu;
            let m = Lvm::init(
                LvmArch::new(kind.parse().unwrap(), 12, 8, 2, 5),
                &mut Rng::new(1),
                &dev,
            )
            .unwrap();
            let mut rng = Rng::new(2);
            let x: Vec<f32> = (0..3 * 5 * 12).map(|_| rng.normal()).collect();
            let x = Tensor::from_vec(x, (3, 5, 12), &dev).unwrap();
            let y = m.forward(&x, None).unwrap();
            assert_eq!(y.dims(), [3, 12]);
            // Evaluation gives the same numbers without a gradient graph.
            let p = m.predict(&x).unwrap();
            assert!(y.track_op() && !p.track_op());
            let diff: f32 = (&y - &p)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar()
                .unwrap();
            assert_eq!(diff, 0.0);
            let norms: Vec<f32> = y.sqr().unwrap().sum(1).unwrap().to_vec1().unwrap();
            assert!(norms.iter().all(|n| (n - 1.0).abs() < 1e-5), "{norms:?}");
            let t = Tensor::ones((3, 12), DType::F32, &dev).unwrap();
            let loss = (y - t).unwrap().sqr().unwrap().mean_all().unwrap();
            let g = loss.backward().unwrap();
            for (name, v) in m.params() {
                let gv = g
                    .get(v)
                    .unwrap_or_else(|| panic!("{kind}: no gradient for {name}"));
                let s: f32 = gv.abs().unwrap().sum_all().unwrap().to_scalar().unwrap();
                assert!(s > 0.0, "{kind}: zero gradient for {name}");
            }
        }
    }

    /// A model loaded for serving predicts what it predicted before packing
    /// (to 1e-5: the packed products add in another order) for 1 to 6
    /// contexts of every length and for 7 (which stays unpacked), LSTM and
    /// GRU; the packed copy goes when the variables are handed out, and a
    /// restored model predicts with its new weights. Packing needs AVX-512
    /// (`packs_for_few_rows`); elsewhere the model stays unpacked and the
    /// predictions are the same ones.
    #[test]
    fn a_model_loaded_for_serving_predicts_the_same() {
        let dev = Device::Cpu;
        let max_diff = |a: &Tensor, b: &Tensor| -> f32 {
            (a - b)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar()
                .unwrap()
        };
        for kind in [LvmKind::Lstm, LvmKind::Gru] {
            let arch = LvmArch::new(kind, 40, 24, 3, 5);
            let plain = Lvm::init(arch.clone(), &mut Rng::new(3), &dev).unwrap();
            let weights = |m: &Lvm| m.snapshot().unwrap().into_iter().collect();
            let served = Lvm::from_tensors(arch.clone(), weights(&plain))
                .unwrap()
                .for_inference()
                .unwrap();
            let fast = recur_kernels::packed::packs_for_few_rows();
            // Packed at the first forward of a few contexts, not before.
            assert!(!served.is_packed());
            let mut rng = Rng::new(4);
            for b in 1..=7 {
                for c in 1..=5 {
                    let x: Vec<f32> = (0..b * c * 40).map(|_| rng.normal()).collect();
                    let x = Tensor::from_vec(x, (b, c, 40), &dev).unwrap();
                    let (p, q) = (plain.predict(&x).unwrap(), served.predict(&x).unwrap());
                    assert_eq!(q.dims(), [b, 40]);
                    let d = max_diff(&p, &q);
                    assert!(d < 1e-5, "{kind}, {b} x {c}: {d}");
                    assert_eq!(served.is_packed(), fast, "{kind}");
                }
            }
            // In bf16: the packed bf16 copy (operands rounded as the bf16
            // path rounds them, sums in another order) against the
            // unpacked bf16 path; one rounding flipped by the order moves
            // a later operand by a bf16 step, so the bound is bf16's.
            let bf16 = recur_kernels::precision::Precision::Bf16;
            for b in [1, 3, 6] {
                let x: Vec<f32> = (0..b * 5 * 40).map(|_| rng.normal()).collect();
                let x = Tensor::from_vec(x, (b, 5, 40), &dev).unwrap();
                let (p, q) = recur_kernels::precision::scoped(bf16, || {
                    (plain.predict(&x).unwrap(), served.predict(&x).unwrap())
                });
                let d = max_diff(&p, &q);
                assert!(d < 4e-3, "{kind}, bf16, {b} contexts: {d}");
                let f = max_diff(&q, &plain.predict(&x).unwrap());
                assert!(
                    f > 0.0 && f < 2e-2,
                    "{kind}, bf16 against f32, {b} contexts: {f}"
                );
            }
            // Restoring other weights: the prediction follows them.
            let other = Lvm::init(arch.clone(), &mut Rng::new(9), &dev).unwrap();
            let x: Vec<f32> = (0..5 * 40).map(|_| rng.normal()).collect();
            let x = Tensor::from_vec(x, (1, 5, 40), &dev).unwrap();
            served.restore(&other.snapshot().unwrap()).unwrap();
            assert!(!served.is_packed());
            assert!(max_diff(&served.predict(&x).unwrap(), &other.predict(&x).unwrap()) == 0.0);
            // Handing out the variables (to an optimiser) unpacks too, and
            // a model whose variables are out never packs.
            let served = |m: Lvm| m.for_inference().unwrap();
            let again = served(Lvm::from_tensors(arch.clone(), weights(&plain)).unwrap());
            again.predict(&x).unwrap();
            assert_eq!(again.is_packed(), fast);
            let _ = again.vars();
            assert!(!again.is_packed());
            let out = Lvm::from_tensors(arch.clone(), weights(&plain)).unwrap();
            let vars = out.vars();
            let out = served(out);
            out.predict(&x).unwrap();
            assert!(!out.is_packed() && !vars.is_empty());
            // A model made from another's live tensors copies them: changing
            // that one leaves this one's (packed) predictions as they were.
            let live = plain
                .params()
                .iter()
                .map(|(n, v)| (n.clone(), v.as_tensor().clone()));
            let copy = served(Lvm::from_tensors(arch, live.collect()).unwrap());
            let before = copy.predict(&x).unwrap();
            plain.restore(&other.snapshot().unwrap()).unwrap();
            assert!(max_diff(&copy.predict(&x).unwrap(), &before) == 0.0);
            assert!(max_diff(&plain.predict(&x).unwrap(), &before) > 1e-3);
        }
    }
}

//! The recurrent LVMs' (`lstm`, `gru`) weights packed once for serving,
//! and the forward of a few contexts at a time against them.
//!
//! A batch-1 forward of the w2 LVM reads 37 MB of weights (most from L3 or
//! memory) for about 9 MFLOP: its time is the time to read them. Read as
//! they are (PyTorch's `[out, in]`, one dot product per output), four
//! weight rows at a time, they arrive at about half the pace of the same
//! floats laid out in the packed panels of [`PackedLinear`] and read panel
//! by panel (`recur_kernels::packed`; one core of an AMD EPYC, family 26:
//! 1.9 against 1.25 ms for the products of one forward). Packing costs more
//! than one forward's products, so it is done once, by a model that will
//! not change: one made with [`Lvm::for_inference`](crate::Lvm::for_inference),
//! which `recur_deploy::model_dir::load_lvm` calls (serve, `lvm
//! predict`/`eval`, Python), at its first forward of a few contexts (so a
//! model only evaluated in large batches never doubles its memory). A model
//! being trained never packs: its weights change at every step, and
//! [`Lvm`](crate::Lvm) drops the packed copy for good whenever it hands
//! out its variables or restores a snapshot.
//!
//! Same function, other sums: the products here add in the packed
//! kernel's order (that of a training batch of 7 to 96 rows per thread),
//! where the unpacked batch-1 path takes dot products in lanes of 16; the
//! two differ in the last bits (the tests hold them within 1e-5).

use crate::lvm::{add_layer_norm, input_dims, l2_normalize, LvmArch, LvmKind};
use candle_core::{IndexOp, Result, Tensor};
use recur_kernels::packed::PackedLinear;

/// One recurrent block's packed weights.
struct Block {
    /// `weight_ih` with the bias of the input projection (LSTM: both
    /// biases; GRU: `bias_ih`, as the unpacked forward adds them).
    w_ih: PackedLinear,
    w_hh: PackedLinear,
}

/// The packed weights of a `lstm` or `gru` LVM.
pub(crate) struct Packed {
    /// The kind packed (`lstm` or `gru`): the forward follows it, not the
    /// model's (public, mutable) architecture.
    kind: LvmKind,
    input: PackedLinear,
    blocks: Vec<Block>,
    output: PackedLinear,
}

/// A tensor's values, as a vector.
fn values(t: &Tensor) -> Result<Vec<f32>> {
    t.flatten_all()?.to_vec1::<f32>()
}

impl Packed {
    /// Packs the weights of `a` (a `lstm` or `gru` LVM), read by name
    /// through `p`.
    /// In bf16 (`bf16`), the operands are rounded as `Precision::Bf16`
    /// rounds them ([`PackedLinear::new_bf16`]).
    pub(crate) fn new(a: &LvmArch, p: &dyn Fn(&str) -> Tensor, bf16: bool) -> Result<Packed> {
        let pack = |w: &[f32], k: usize, b: Option<&[f32]>| {
            if bf16 {
                PackedLinear::new_bf16(w, k, b)
            } else {
                PackedLinear::new(w, k, b)
            }
        };
        let linear = |w: &str, b: &[f32]| -> Result<PackedLinear> {
            let w = p(w);
            Ok(pack(&values(&w)?, w.dim(1)?, Some(b)))
        };
        let input = linear("input_proj.weight", &values(&p("input_proj.bias"))?)?;
        let output = linear("output_proj.weight", &values(&p("output_proj.bias"))?)?;
        let blocks = (0..a.num_layers)
            .map(|i| {
                let t = |n: &str| p(&format!("blocks.{i}.{}.{n}", a.kind));
                let bias = match a.kind {
                    LvmKind::Lstm => (t("bias_ih_l0") + t("bias_hh_l0"))?,
                    _ => t("bias_ih_l0"),
                };
                let w_hh = t("weight_hh_l0");
                Ok(Block {
                    w_ih: linear(
                        &format!("blocks.{i}.{}.weight_ih_l0", a.kind),
                        &values(&bias)?,
                    )?,
                    w_hh: pack(&values(&w_hh)?, w_hh.dim(1)?, None),
                })
            })
            .collect::<Result<_>>()?;
        Ok(Packed {
            kind: a.kind,
            input,
            blocks,
            output,
        })
    }

    /// The prediction for contexts `x [B, C, D]`: the unpacked forward's
    /// steps, with the products on the packed weights.
    pub(crate) fn forward(
        &self,
        x: &Tensor,
        a: &LvmArch,
        p: &dyn Fn(&str) -> Tensor,
    ) -> Result<Tensor> {
        let (_, c, _) = input_dims(x, a)?;
        let mut h = recur_kernels::linear_packed(&x.transpose(0, 1)?.contiguous()?, &self.input)?;
        for (i, b) in self.blocks.iter().enumerate() {
            let t = |n: &str| p(&format!("blocks.{i}.{n}"));
            let xp = recur_kernels::linear_packed(&h, &b.w_ih)?;
            let y = match self.kind {
                LvmKind::Lstm => recur_kernels::lstm_packed(&xp, &b.w_hh)?,
                _ => recur_kernels::gru_packed(
                    &xp,
                    &b.w_hh,
                    &t(&format!("{}.bias_hh_l0", self.kind)),
                )?,
            };
            let (gamma, beta) = (t("norm.weight"), t("norm.bias"));
            h = if i + 1 == self.blocks.len() {
                add_layer_norm(&y.i(c - 1)?, &h.i(c - 1)?, &gamma, &beta)?
            } else {
                add_layer_norm(&y, &h, &gamma, &beta)?
            };
        }
        if self.blocks.is_empty() {
            h = h.i(c - 1)?;
        }
        l2_normalize(&recur_kernels::linear_packed(&h, &self.output)?)
    }
}

//! The MLP latent vector model (`model.type: mlp`): the context `[B, C, D]`
//! flattened to `[B, C * D]` (so each position keeps its own weights),
//! `Linear(C * D, d) -> GELU`, then `n` pre-norm residual blocks
//! `h + Dropout(GELU(Linear(d, d)(LayerNorm(h))))`, then `Linear(d, D)`
//! added to the context mean and L2-normalised.
//!
//! Why this shape: the public project Job B comes from found a plain MLP
//! beat its recurrent models on the same task, and on sentence embeddings
//! the context mean is already a strong answer, so the network learns a
//! correction to it. With the output layer at zero (the `average` start)
//! the untrained model predicts the context mean exactly.
//!
//! Tensor names follow PyTorch modules: `input.*`, `blocks.{i}.norm.*`,
//! `blocks.{i}.fc.*`, `output.*`. The context length is part of the
//! architecture (the width of `input.weight` is `C * D`), so an importer
//! reads it off the tensors.

use crate::classifier::dropout;
use crate::lvm::{l2_normalize, layer_norm, LvmArch};
use candle_core::{Result, Tensor};
use recur_core::checkpoint::TensorSpec;
use recur_core::rng::Rng;

/// The tensors an MLP LVM of `a` holds, with PyTorch's names.
pub fn specs(a: &LvmArch) -> Vec<TensorSpec> {
    let (dd, d, c) = (a.input_dim, a.d_model, a.context);
    let mut v = vec![
        TensorSpec::new("input.weight", &[d, c * dd]),
        TensorSpec::new("input.bias", &[d]),
    ];
    for i in 0..a.num_layers {
        v.push(TensorSpec::new(format!("blocks.{i}.norm.weight"), &[d]));
        v.push(TensorSpec::new(format!("blocks.{i}.norm.bias"), &[d]));
        v.push(TensorSpec::new(format!("blocks.{i}.fc.weight"), &[d, d]));
        v.push(TensorSpec::new(format!("blocks.{i}.fc.bias"), &[d]));
    }
    v.push(TensorSpec::new("output.weight", &[dd, d]));
    v.push(TensorSpec::new("output.bias", &[dd]));
    v
}

/// Predicted next vectors `[B, D]` for contexts `[B, C, D]`; `p` gives a
/// parameter by name, `dropout_rng` (training only) drives the dropout.
pub fn forward(
    x: &Tensor,
    a: &LvmArch,
    p: &dyn Fn(&str) -> Tensor,
    mut dropout_rng: Option<&mut Rng>,
) -> Result<Tensor> {
    let (b, c, dd) = crate::lvm::input_dims(x, a)?;
    if c != a.context {
        candle_core::bail!(
            "the context holds {c} vectors; this MLP was trained on exactly {} \
             (pad shorter contexts by repeating the earliest vector)",
            a.context
        );
    }
    let lin = |h: &Tensor, n: &str| {
        recur_kernels::linear(h, &p(&format!("{n}.weight")), &p(&format!("{n}.bias")))
    };
    let flat = x.contiguous()?.reshape((b, c * dd))?;
    let mut h = lin(&flat, "input")?.gelu_erf()?;
    for i in 0..a.num_layers {
        let n = format!("blocks.{i}.norm");
        let z = layer_norm(&h, &p(&format!("{n}.weight")), &p(&format!("{n}.bias")))?;
        let mut z = lin(&z, &format!("blocks.{i}.fc"))?.gelu_erf()?;
        if let Some(r) = dropout_rng.as_deref_mut() {
            z = dropout(&z, a.dropout, r)?;
        }
        h = (h + z)?;
    }
    let out = (x.mean(1)? + lin(&h, "output")?)?;
    l2_normalize(&out)
}

#[cfg(test)]
mod tests {
    use crate::lvm::{LvmKind, Start};
    use crate::{Lvm, LvmArch};
    use candle_core::{Device, Tensor};
    use recur_core::rng::Rng;

    #[test]
    fn the_context_length_is_part_of_the_architecture() {
        let a = LvmArch::new(LvmKind::Mlp, 6, 4, 2, 3);
        let specs = Lvm::tensor_specs(&a).unwrap();
        let input = specs.iter().find(|s| s.name == "input.weight").unwrap();
        assert_eq!(input.shape, [4, 18]);
        let m = Lvm::init_from(a, Start::Pytorch, &mut Rng::new(1), &Device::Cpu).unwrap();
        let x = |c: usize| Tensor::ones((2, c, 6), candle_core::DType::F32, &Device::Cpu).unwrap();
        assert_eq!(m.predict(&x(3)).unwrap().dims(), [2, 6]);
        let e = m.predict(&x(2)).err().unwrap().to_string();
        assert!(
            e.contains("holds 2 vectors") && e.contains("exactly 3"),
            "{e}"
        );
    }
}

//! The Transformer LVM of SYSTEM.md: `Linear(D, d)` plus sinusoidal
//! positions, `n` post-norm encoder layers (multi-head causal
//! self-attention, feed-forward with ReLU, dropout on both residual
//! branches, as `nn.TransformerEncoderLayer`), the last position, then the
//! head `Linear(d, d) -> GELU -> LayerNorm -> Linear(d, D)`.
//!
//! Tensor names follow PyTorch's modules: `input_proj.*`,
//! `encoder.layers.{i}.self_attn.in_proj_weight` (q, k, v stacked),
//! `.self_attn.out_proj.*`, `.linear1.*`, `.linear2.*`, `.norm1.*`,
//! `.norm2.*`, and `head.{0,2,3}.*` for the `nn.Sequential` head.

use crate::classifier::dropout;
use crate::lvm::{add_layer_norm, l2_normalize, layer_norm, LvmArch};
use candle_core::{Device, IndexOp, Result, Tensor, D};
use recur_core::checkpoint::TensorSpec;
use recur_core::rng::Rng;

/// The tensors a transformer LVM of `a` holds, with PyTorch's names.
pub fn specs(a: &LvmArch) -> Vec<TensorSpec> {
    let (dd, d, ff) = (a.input_dim, a.d_model, a.ff);
    let mut v = vec![
        TensorSpec::new("input_proj.weight", &[d, dd]),
        TensorSpec::new("input_proj.bias", &[d]),
    ];
    for i in 0..a.num_layers {
        let p = format!("encoder.layers.{i}");
        v.push(TensorSpec::new(
            format!("{p}.self_attn.in_proj_weight"),
            &[3 * d, d],
        ));
        v.push(TensorSpec::new(
            format!("{p}.self_attn.in_proj_bias"),
            &[3 * d],
        ));
        v.push(TensorSpec::new(
            format!("{p}.self_attn.out_proj.weight"),
            &[d, d],
        ));
        v.push(TensorSpec::new(
            format!("{p}.self_attn.out_proj.bias"),
            &[d],
        ));
        v.push(TensorSpec::new(format!("{p}.linear1.weight"), &[ff, d]));
        v.push(TensorSpec::new(format!("{p}.linear1.bias"), &[ff]));
        v.push(TensorSpec::new(format!("{p}.linear2.weight"), &[d, ff]));
        v.push(TensorSpec::new(format!("{p}.linear2.bias"), &[d]));
        for n in ["norm1", "norm2"] {
            v.push(TensorSpec::new(format!("{p}.{n}.weight"), &[d]));
            v.push(TensorSpec::new(format!("{p}.{n}.bias"), &[d]));
        }
    }
    v.push(TensorSpec::new("head.0.weight", &[d, d]));
    v.push(TensorSpec::new("head.0.bias", &[d]));
    v.push(TensorSpec::new("head.2.weight", &[d]));
    v.push(TensorSpec::new("head.2.bias", &[d]));
    v.push(TensorSpec::new("head.3.weight", &[dd, d]));
    v.push(TensorSpec::new("head.3.bias", &[dd]));
    v
}

/// Sinusoidal positions `[c, d]` as in "Attention is all you need":
/// column `2i` the sine and `2i + 1` the cosine of `pos / 10000^(2i/d)`.
/// With `d` odd the last column is a sine of its own (it was left 0).
fn positions(c: usize, d: usize, dev: &Device) -> Result<Tensor> {
    let mut pe = vec![0f32; c * d];
    for pos in 0..c {
        for i in 0..d.div_ceil(2) {
            let f = (pos as f64) / 10000f64.powf(2.0 * i as f64 / d as f64);
            pe[pos * d + 2 * i] = f.sin() as f32;
            if 2 * i + 1 < d {
                pe[pos * d + 2 * i + 1] = f.cos() as f32;
            }
        }
    }
    Tensor::from_vec(pe, (c, d), dev)
}

/// `[c, c]` additive mask: 0 on and below the diagonal, a large negative
/// number above (a position sees itself and the past).
fn causal(c: usize, dev: &Device) -> Result<Tensor> {
    let m: Vec<f32> = (0..c * c)
        .map(|k| if k % c > k / c { -1e9 } else { 0.0 })
        .collect();
    Tensor::from_vec(m, (c, c), dev)
}

/// The transformer LVM's forward pass.
pub fn forward(
    x: &Tensor,
    a: &LvmArch,
    p: &dyn Fn(&str) -> Tensor,
    mut rng: Option<&mut Rng>,
) -> Result<Tensor> {
    let (b, c, _) = crate::lvm::input_dims(x, a)?;
    let (d, heads) = (a.d_model, a.heads);
    if heads == 0 || d % heads != 0 {
        candle_core::bail!("d_model {d} must be a multiple of heads {heads}");
    }
    let dh = d / heads;
    let lin = |h: &Tensor, n: &str| {
        recur_kernels::linear(h, &p(&format!("{n}.weight")), &p(&format!("{n}.bias")))
    };
    let mut drop = |h: Tensor| -> Result<Tensor> {
        match rng.as_deref_mut() {
            Some(r) if a.dropout > 0.0 => dropout(&h, a.dropout, r),
            _ => Ok(h),
        }
    };
    let mut h = lin(x, "input_proj")?.broadcast_add(&positions(c, d, x.device())?)?;
    let mask = causal(c, x.device())?;
    for i in 0..a.num_layers {
        let l = format!("encoder.layers.{i}");
        // Self-attention: q, k, v from one product, split into heads.
        let qkv = recur_kernels::linear(
            &h,
            &p(&format!("{l}.self_attn.in_proj_weight")),
            &p(&format!("{l}.self_attn.in_proj_bias")),
        )?; // [B, C, 3d]
        let split = |k: usize| -> Result<Tensor> {
            qkv.narrow(D::Minus1, k * d, d)?
                .reshape((b, c, heads, dh))?
                .transpose(1, 2)?
                .contiguous()
        };
        let (q, k, v) = (split(0)?, split(1)?, split(2)?); // [B, H, C, dh]
        let scores = (q.matmul(&k.t()?)? / (dh as f64).sqrt())?.broadcast_add(&mask)?;
        let att = candle_nn::ops::softmax(&scores, D::Minus1)?;
        let att = drop(att)?;
        let ctx = att
            .matmul(&v)?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((b, c, d))?;
        let attn_out = lin(&ctx, &format!("{l}.self_attn.out_proj"))?;
        h = add_layer_norm(
            &h,
            &drop(attn_out)?,
            &p(&format!("{l}.norm1.weight")),
            &p(&format!("{l}.norm1.bias")),
        )?;
        let f = lin(
            &lin(&h, &format!("{l}.linear1"))?.relu()?,
            &format!("{l}.linear2"),
        )?;
        let f = drop(f)?;
        h = add_layer_norm(
            &h,
            &f,
            &p(&format!("{l}.norm2.weight")),
            &p(&format!("{l}.norm2.bias")),
        )?;
    }
    let last = h.i((.., c - 1, ..))?.contiguous()?;
    let z = lin(&last, "head.0")?.gelu_erf()?;
    let z = layer_norm(&z, &p("head.2.weight"), &p("head.2.bias"))?;
    l2_normalize(&lin(&z, "head.3")?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_column_of_an_odd_width_has_its_position() {
        let pe = positions(4, 5, &Device::Cpu)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        for (pos, row) in pe.iter().enumerate() {
            for (j, &v) in row.iter().enumerate() {
                let i = j / 2;
                let f = pos as f64 / 10000f64.powf(2.0 * i as f64 / 5.0);
                let want = if j % 2 == 0 { f.sin() } else { f.cos() };
                assert!(
                    (v as f64 - want).abs() < 1e-6,
                    "pos {pos} column {j}: {v} vs {want}"
                );
            }
        }
        assert!(pe[3][4] != 0.0);
    }
}

//! LayerNorm's normalisation `(x - mean) / sqrt(var + eps)` over the last
//! dimension as one candle node, optionally of a residual sum `y + h`: the
//! part of recur's LayerNorm before [`crate::scale_shift()`].
//!
//! Written as an op because candle runs it as ten nodes (two sums, a
//! subtraction, a square, a division, four scalar affines, a square root)
//! and its backward as about twenty more, each a pass over the tensor on
//! one thread: in a w2 LVM training step, with the residual add, that kept
//! one core busy while the other waited for the next product. Here the
//! forward is one pass per row and the backward recomputes the row's
//! statistics and gives the gradient in one more; rows run side by side.
//!
//! The numbers are candle's to the bit, forward and backward, so that a
//! model trains to the same weights as with candle's ops (and the figures
//! measured before this op stay): every step below is the candle operation
//! it replaces, rounded as candle rounds it; the two row sums of each pass
//! are candle's own reduction ([`VecOps::vec_reduce_sum`], which picks its
//! AVX path at run time as it does inside candle); nothing is fused into a
//! multiply-add; and the `+ 0.0` of candle's scalar affines and of its
//! zero-started gradient sums are kept (they turn `-0.0` into `0.0`). The
//! backward is what candle's autograd gives for that chain of nodes, worked
//! out node by node in `backward_row`. A test holds both to the same bits
//! as candle-nn's `layer_norm_slow`.

use crate::mat::output_vec;
use crate::op::{slice, with_slice};
use crate::rows::for_row_chunks;
use candle_core::cpu::kernels::VecOps;
use candle_core::{
    bail, CpuStorage, CustomOp1, CustomOp2, DType, Device, Layout, Result, Shape, Tensor, D,
};

/// `(x - mean(x)) / sqrt(var(x) + eps)` over the last dimension, with
/// gradient; equal to candle's ops to the bit (see the module comment).
pub fn normalize(x: &Tensor, eps: f32) -> Result<Tensor> {
    if !is_cpu_f32(&[x]) {
        return candle_chain(x, eps);
    }
    x.contiguous()?.apply_op1(Normalize { eps })
}

/// `normalize(y + h, eps)`: the residual sum and the normalisation as one
/// node, its gradient passed to `y` and `h` as candle's addition passes it.
pub fn add_normalize(y: &Tensor, h: &Tensor, eps: f32) -> Result<Tensor> {
    if y.dims() != h.dims() {
        bail!(
            "add_normalize: the two inputs must have the same shape; got {:?} and {:?}",
            y.dims(),
            h.dims()
        );
    }
    if !is_cpu_f32(&[y, h]) {
        return candle_chain(&(y + h)?, eps);
    }
    y.contiguous()?
        .apply_op2(&h.contiguous()?, AddNormalize { eps })
}

fn is_cpu_f32(ts: &[&Tensor]) -> bool {
    ts.iter()
        .all(|t| matches!(t.device(), Device::Cpu) && t.dtype() == DType::F32 && t.rank() > 0)
}

/// candle-nn's `layer_norm_slow` without its affine end: what the op
/// replaces, for other devices and types.
fn candle_chain(x: &Tensor, eps: f32) -> Result<Tensor> {
    let d = x.dim(D::Minus1)?;
    let x = x.broadcast_sub(&(x.sum_keepdim(D::Minus1)? / d as f64)?)?;
    let var = (x.sqr()?.sum_keepdim(D::Minus1)? / d as f64)?;
    x.broadcast_div(&(var + eps as f64)?.sqrt()?)
}

/// `1 / d` as candle's `tensor / d` applies it: an f64 rounded to f32.
fn inv(d: usize) -> f32 {
    (1.0f64 / d as f64) as f32
}

/// candle's row sum (`sum_keepdim` over a contiguous last dimension).
fn row_sum(v: &[f32]) -> f32 {
    let mut s = 0f32;
    // SAFETY: `v` is `v.len()` readable elements and `s` one writable one.
    unsafe { <f32 as VecOps>::vec_reduce_sum(v.as_ptr(), &mut s, v.len()) };
    s
}

/// The mean and `sqrt(var + eps)` of row `z`, as candle's nodes compute
/// them; `sq` is scratch of the row's length.
fn row_stats(z: &[f32], sq: &mut [f32], eps: f32) -> (f32, f32) {
    let inv_d = inv(z.len());
    // `z.sum_keepdim(-1) / d`: an affine with multiplier 1/d and offset 0.
    let mean = row_sum(z) * inv_d + 0.0;
    for (q, &v) in sq.iter_mut().zip(z) {
        let c = v - mean;
        *q = c * c;
    }
    let var = row_sum(sq) * inv_d + 0.0;
    // `var + eps`: an affine with multiplier 1.
    let ve = var * 1.0 + eps;
    (mean, ve.sqrt())
}

/// Normalises row `z` into `out` (which may hold `z` itself).
fn forward_row(out: &mut [f32], sq: &mut [f32], eps: f32) {
    let (mean, sd) = row_stats(out, sq, eps);
    for v in out.iter_mut() {
        *v = (*v - mean) / sd;
    }
}

/// The gradient of row `z` from the gradient `g` of its normalised row,
/// into `out`; `t` is scratch of the row's length. This is candle's
/// backward of the forward's nodes, last node first (`sd_b` and `mean_b`
/// are the broadcasts of the row's `sd` and `mean` to the row's length):
///
/// - `xn = xc / sd_b`: `xc` gets `g / sd`; `sd_b` gets
///   `-((g * xc) / (sd * sd))`, stored negated as the first gradient there;
/// - `sd_b`, a broadcast: `sd` gets the row sum of that, added to zero;
/// - `sd = sqrt(ve)`: `ve` gets `(r / sd) * 0.5 + 0`; `ve = var * 1 + eps`:
///   `var` gets `r * 1 + 0`; `var = vs * (1/d) + 0`: `vs` gets `r * (1/d) + 0`;
/// - `vs`, a row sum: every `sq` gets `vs`'s gradient; `sq = xc * xc`:
///   `xc` gets `(xc * r) * 2 + 0`, added to its first gradient;
/// - `xc = z - mean_b`: `z` gets `xc`'s gradient first, `mean_b` its
///   negation; `mean_b`, a broadcast: `mean` gets the row sum, added to
///   zero; `mean = s * (1/d) + 0`: `s` gets `r * (1/d) + 0`;
/// - `s`, a row sum of `z`: every `z` gets `s`'s gradient, added to the
///   first.
fn backward_row(z: &[f32], g: &[f32], out: &mut [f32], t: &mut [f32], eps: f32) {
    let inv_d = inv(z.len());
    let (mean, sd) = row_stats(z, t, eps);
    let sd2 = sd * sd;
    for ((t, &z), &g) in t.iter_mut().zip(z).zip(g) {
        *t = -((g * (z - mean)) / sd2);
    }
    let r_sd = 0.0 + row_sum(t);
    let r_ve = (r_sd / sd) * 0.5 + 0.0;
    let r_var = r_ve * 1.0 + 0.0;
    let r_vs = r_var * inv_d + 0.0;
    for (((o, t), &z), &g) in out.iter_mut().zip(t.iter_mut()).zip(z).zip(g) {
        let xc = z - mean;
        let xg = g / sd + ((xc * r_vs) * 2.0 + 0.0);
        *o = xg;
        *t = -xg;
    }
    let r_mean = 0.0 + row_sum(t);
    let r_s = r_mean * inv_d + 0.0;
    for o in out.iter_mut() {
        *o += r_s;
    }
}

/// The forward of both ops: `z` is the input, or `y` then `h` to add.
fn forward(y: &[f32], h: Option<&[f32]>, d: usize, eps: f32) -> Vec<f32> {
    // SAFETY: every element is written below, the sum or the copy first.
    let mut out = unsafe { output_vec(y.len()) };
    for_row_chunks(&mut out, d, d, |r0, o, sq| {
        let (y, h) = (
            &y[r0 * d..r0 * d + o.len()],
            h.map(|h| &h[r0 * d..r0 * d + o.len()]),
        );
        match h {
            Some(h) => o
                .iter_mut()
                .zip(y)
                .zip(h)
                .for_each(|((o, y), h)| *o = y + h),
            None => o.copy_from_slice(y),
        }
        for row in o.chunks_exact_mut(d) {
            forward_row(row, sq, eps);
        }
    });
    out
}

/// The gradient of `z` (`y`, or `y + h`) from `g`, the output's.
fn backward(y: &[f32], h: Option<&[f32]>, g: &[f32], d: usize, eps: f32) -> Vec<f32> {
    // SAFETY: every element is written by `backward_row`.
    let mut out = unsafe { output_vec(y.len()) };
    for_row_chunks(&mut out, d, 2 * d, |r0, o, scratch| {
        let (t, z) = scratch.split_at_mut(d);
        for (i, row) in o.chunks_exact_mut(d).enumerate() {
            let at = (r0 + i) * d..(r0 + i + 1) * d;
            let zr: &[f32] = match h {
                Some(h) => {
                    z.iter_mut()
                        .zip(&y[at.clone()])
                        .zip(&h[at.clone()])
                        .for_each(|((z, y), h)| *z = y + h);
                    &*z
                }
                None => &y[at.clone()],
            };
            backward_row(zr, &g[at], row, t, eps);
        }
    });
    out
}

/// The row length of a tensor the ops take.
fn row_len(l: &Layout) -> Result<usize> {
    match l.dims().last() {
        Some(&d) if d > 0 => Ok(d),
        _ => bail!(
            "layer norm: the input needs a last dimension of at least 1; got {:?}",
            l.dims()
        ),
    }
}

struct Normalize {
    eps: f32,
}

impl CustomOp1 for Normalize {
    fn name(&self) -> &'static str {
        "recur-normalize"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = slice(s, l, "layer norm input")?;
        let out = forward(x, None, row_len(l)?, self.eps);
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let d = x.dim(D::Minus1)?;
        let gx = with_slice(x, "layer norm input", |xv| {
            with_slice(grad, "layer norm gradient", |g| {
                backward(xv, None, g, d, self.eps)
            })
        })??;
        Ok(Some(Tensor::from_vec(gx, x.shape(), &Device::Cpu)?))
    }
}

struct AddNormalize {
    eps: f32,
}

impl CustomOp2 for AddNormalize {
    fn name(&self) -> &'static str {
        "recur-add-normalize"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let y = slice(s1, l1, "layer norm input")?;
        let h = slice(s2, l2, "layer norm residual")?;
        let out = forward(y, Some(h), row_len(l1)?, self.eps);
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        y: &Tensor,
        h: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let d = y.dim(D::Minus1)?;
        let gz = with_slice(y, "layer norm input", |yv| {
            with_slice(h, "layer norm residual", |hv| {
                with_slice(grad, "layer norm gradient", |g| {
                    backward(yv, Some(hv), g, d, self.eps)
                })
            })
        })???;
        let gz = Tensor::from_vec(gz, y.shape(), &Device::Cpu)?;
        // candle's addition hands its gradient to both sides.
        Ok((Some(gz.clone()), Some(gz)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Var;

    fn bits(t: &Tensor) -> Result<Vec<u32>> {
        Ok(t.flatten_all()?
            .to_vec1::<f32>()?
            .iter()
            .map(|v| v.to_bits())
            .collect())
    }

    /// Values of mixed scale and sign, with exact zeros and repeated rows
    /// (a constant row has zero variance).
    fn val(n: usize, s: f32, o: usize) -> Vec<f32> {
        (0..n)
            .map(|i| {
                let k = (i + o) * 7919 % 1013;
                match k % 11 {
                    0 => 0.0,
                    1 => -0.0,
                    _ => {
                        (k as f32 - 506.0) / 506.0 * s * if k.is_multiple_of(7) { 1e3 } else { 1.0 }
                    }
                }
            })
            .collect()
    }

    /// Both ops against candle's chain of nodes they replace: output and
    /// input gradients to the bit, under a loss that weighs each element
    /// differently, for row lengths with and without a tail past candle's
    /// 32-wide sum, a constant row, and tensors large enough to run side
    /// by side.
    #[test]
    fn equal_candles_nodes_bit_for_bit() -> Result<()> {
        crate::poison_outputs(true);
        let dev = Device::Cpu;
        for (shape, eps) in [
            (vec![1usize, 1], 1e-5f32),
            (vec![3, 7], 1e-5),
            (vec![2, 4, 33], 1e-5),
            (vec![5, 64, 512], 1e-5),
            (vec![9, 768], 1e-12),
            (vec![130, 300], 1e-5),
        ] {
            let n: usize = shape.iter().product();
            let d = *shape.last().unwrap();
            let mut yv = val(n, 2.0, 1);
            // The first row constant: zero variance.
            yv[..d].iter_mut().for_each(|v| *v = 0.75);
            let y = Var::from_vec(yv, shape.as_slice(), &dev)?;
            let h = Var::from_vec(val(n, 0.5, 5), shape.as_slice(), &dev)?;
            let w = Tensor::from_vec(val(n, 1.0, 9), shape.as_slice(), &dev)?;
            let loss = |t: &Tensor| (t * &w)?.sqr()?.sum_all();

            let ours = normalize(&y, eps)?;
            let theirs = candle_chain(&y, eps)?;
            assert_eq!(bits(&ours)?, bits(&theirs)?, "forward {shape:?}");
            let (go, gt) = (loss(&ours)?.backward()?, loss(&theirs)?.backward()?);
            assert_eq!(
                bits(go.get(&y).unwrap())?,
                bits(gt.get(&y).unwrap())?,
                "gradient {shape:?}"
            );

            let ours = add_normalize(&y, &h, eps)?;
            let theirs = candle_chain(&(y.as_tensor() + h.as_tensor())?, eps)?;
            assert_eq!(bits(&ours)?, bits(&theirs)?, "forward of the sum {shape:?}");
            // `h` also feeds the loss directly, as a residual stream does.
            let (go, gt) = (
                (loss(&ours)? + loss(&h)?)?.backward()?,
                (loss(&theirs)? + loss(&h)?)?.backward()?,
            );
            for (v, name) in [(&y, "y"), (&h, "h")] {
                assert_eq!(
                    bits(go.get(v).unwrap())?,
                    bits(gt.get(v).unwrap())?,
                    "gradient of {name} {shape:?}"
                );
            }
        }
        Ok(())
    }

    /// Inputs that do not fit are errors, not panics.
    #[test]
    fn mismatched_inputs_are_errors() -> Result<()> {
        let dev = Device::Cpu;
        let y = Tensor::zeros((2, 3), DType::F32, &dev)?;
        let h = Tensor::zeros((3, 2), DType::F32, &dev)?;
        let e = add_normalize(&y, &h, 1e-5).unwrap_err().to_string();
        assert!(e.contains("same shape"), "{e}");
        let empty = Tensor::zeros((2, 0), DType::F32, &dev)?;
        assert!(normalize(&empty, 1e-5).is_err());
        Ok(())
    }
}

//! `y = x * gamma + beta` over the last dimension as one candle node: the
//! affine end of a LayerNorm.
//!
//! Written as an op because candle's backward of `broadcast_mul(gamma)` and
//! `broadcast_add(beta)` sums the gradients of `gamma` and `beta` over the
//! leading dimensions with its generic reduction, two integer divisions per
//! element and one thread: 5% of a w2 LVM training step on an Intel Xeon
//! (`perf`), for tensors of 160k elements. Here the same sums run as row
//! passes, side by side for large tensors (rows for the output and the
//! input gradient, columns for the parameter gradients). The numbers are candle's to the bit: the product and the sum are
//! rounded separately (no fused multiply-add), and each column's gradient
//! is added row by row from the first, the order candle's reduction adds
//! them in (a test holds the two to the same bits).

use crate::mat::{output_vec, SendPtr};
use crate::op::{slice, with_slice};
use crate::rows::{for_column_chunks2, for_row_chunks};
use candle_core::{bail, CpuStorage, CustomOp3, DType, Device, Layout, Result, Shape, Tensor};

/// `x [..., D] * gamma [D] + beta [D]` -> `[..., D]`.
pub fn scale_shift(x: &Tensor, gamma: &Tensor, beta: &Tensor) -> Result<Tensor> {
    let d = gamma.dims1()?;
    if !matches!(x.device(), Device::Cpu)
        || [x.dtype(), gamma.dtype(), beta.dtype()] != [DType::F32; 3]
    {
        // Other devices and types take candle's own ops.
        return x.broadcast_mul(gamma)?.broadcast_add(beta);
    }
    if x.dims().last() != Some(&d) || beta.dims() != [d] {
        bail!(
            "scale_shift: gamma [{d}] needs input [..., {d}] and beta [{d}]; got input {:?} and beta {:?}",
            x.dims(),
            beta.dims()
        );
    }
    x.contiguous()?
        .apply_op3(&gamma.contiguous()?, &beta.contiguous()?, ScaleShift)
}

struct ScaleShift;

impl CustomOp3 for ScaleShift {
    fn name(&self) -> &'static str {
        "recur-scale-shift"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, g, b) = (
            slice(s1, l1, "scale_shift input")?,
            slice(s2, l2, "scale_shift gamma")?,
            slice(s3, l3, "scale_shift beta")?,
        );
        let d = g.len().max(1);
        // SAFETY: every row is written below.
        let mut y = unsafe { output_vec(x.len()) };
        for_row_chunks(&mut y, d, 0, |r0, out, _| {
            let x = &x[r0 * d..r0 * d + out.len()];
            for (out, x) in out.chunks_exact_mut(d).zip(x.chunks_exact(d)) {
                for (((o, x), g), b) in out.iter_mut().zip(x).zip(g).zip(b) {
                    *o = x * g + b;
                }
            }
        });
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        _beta: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let d = gamma.dims1()?;
        let rows = x.elem_count().checked_div(d).unwrap_or(0);
        // SAFETY: every element is written below, each column of every row
        // by the call that holds that column.
        let mut dx = unsafe { output_vec(x.elem_count()) };
        let (mut dg, mut db) = (vec![0f32; d], vec![0f32; d]);
        let dxp = SendPtr(dx.as_mut_ptr());
        with_slice(grad, "scale_shift output gradient", |gr| {
            with_slice(x, "scale_shift input", |xv| {
                with_slice(gamma, "scale_shift gamma", |gm| {
                    for_column_chunks2(&mut dg, &mut db, rows, |c0, dg, db| {
                        let cols = c0..c0 + dg.len();
                        for r in 0..rows {
                            let at = r * d + c0..r * d + cols.end;
                            // SAFETY: row r's columns of this call, inside
                            // `dx`; no other call writes them.
                            let dx = unsafe {
                                std::slice::from_raw_parts_mut(dxp.get().add(at.start), cols.len())
                            };
                            let (gr, xv) = (&gr[at.clone()], &xv[at]);
                            for (((((dx, sg), sb), g), w), x) in dx
                                .iter_mut()
                                .zip(dg.iter_mut())
                                .zip(db.iter_mut())
                                .zip(gr)
                                .zip(&gm[cols.clone()])
                                .zip(xv)
                            {
                                *dx = g * w;
                                *sg += g * x;
                                *sb += g;
                            }
                        }
                    })
                })
            })
        })???;
        let dev = Device::Cpu;
        Ok((
            Some(Tensor::from_vec(dx, x.shape(), &dev)?),
            Some(Tensor::from_vec(dg, d, &dev)?),
            Some(Tensor::from_vec(db, d, &dev)?),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Var;

    /// The op and candle's `broadcast_mul` + `broadcast_add` give the same
    /// bits, output and the three gradients, under a loss that weighs
    /// every element differently.
    #[test]
    fn equals_candles_broadcast_ops_bit_for_bit() -> Result<()> {
        let dev = Device::Cpu;
        let val = |n: usize, s: f32, o: usize| {
            (0..n)
                .map(|i| (((i + o) * 7919 % 1013) as f32 - 506.0) / 506.0 * s)
                .collect::<Vec<f32>>()
        };
        // One small enough for one thread, one split by rows and columns
        // (300 columns: a last column chunk of 44).
        for (l, b, d) in [(5, 7, 33), (6, 64, 300)] {
            let x = Var::from_vec(val(l * b * d, 3.0, 1), (l, b, d), &dev)?;
            let g = Var::from_vec(val(d, 1.5, 2), d, &dev)?;
            let be = Var::from_vec(val(d, 0.7, 3), d, &dev)?;
            let weights = Tensor::from_vec(val(l * b * d, 2.0, 4), (l, b, d), &dev)?;
            let bits = |t: &Tensor| -> Result<Vec<u32>> {
                Ok(t.flatten_all()?
                    .to_vec1::<f32>()?
                    .iter()
                    .map(|v| v.to_bits())
                    .collect())
            };
            let mine = scale_shift(&x, &g, &be)?;
            let theirs = x.broadcast_mul(&g)?.broadcast_add(&be)?;
            assert_eq!(bits(&mine)?, bits(&theirs)?, "forward {d}");
            let gm = (&mine * &weights)?.sqr()?.sum_all()?.backward()?;
            let gt = (&theirs * &weights)?.sqr()?.sum_all()?.backward()?;
            for (v, name) in [(&x, "x"), (&g, "gamma"), (&be, "beta")] {
                let (a, b) = (gm.get(v).expect(name), gt.get(v).expect(name));
                assert_eq!(bits(a)?, bits(b)?, "gradient of {name}, {d}");
            }
            // Shapes that do not fit are an error, not a panic.
            assert!(scale_shift(&x, &g.narrow(0, 0, 5)?, &be).is_err());
        }
        Ok(())
    }
}

//! `y = x @ w^T + b` over the last dimension as one candle node, for the
//! input projections of the recurrent layers and the models' Linear layers.
//!
//! Written as an op rather than candle's `matmul` + `broadcast_add` because
//! candle's backward computes the input gradient of a matmul even when the
//! input is data, and every extra node costs a zero-filled gradient buffer
//! plus an add in backward; at `[L*B, 4H]` those passes were a fifth of a
//! training step. Here the bias is the GEMM's starting value, and the
//! backward computes `dx` only when `x` needs it.

use crate::mat::{matmul, output_vec, View};
use crate::op::{slice, with_slice};
use crate::rows::{add_column_sums, for_row_chunks};
use candle_core::{bail, CpuStorage, CustomOp3, DType, Device, Layout, Result, Shape, Tensor};

/// `x [..., I] @ w[O, I]^T + b [O]` -> `[..., O]`.
pub fn linear(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    if !matches!(x.device(), Device::Cpu) {
        // Other devices take candle's own ops.
        return x.broadcast_matmul(&w.t()?)?.broadcast_add(b);
    }
    let (o, i) = w.dims2()?;
    if x.dims().last() != Some(&i) || b.dims() != [o] {
        bail!(
            "linear: weight [{o}, {i}] needs input [..., {i}] and bias [{o}]; got input {:?} and bias {:?}",
            x.dims(),
            b.dims()
        );
    }
    if [x.dtype(), w.dtype(), b.dtype()] != [DType::F32; 3] {
        bail!("linear: the fused kernels take f32");
    }
    let mut out_dims = x.dims().to_vec();
    *out_dims.last_mut().expect("checked above") = o;
    x.contiguous()?.apply_op3(
        &w.contiguous()?,
        &b.contiguous()?,
        Linear {
            out_dims,
            x_needs_grad: x.track_op(),
        },
    )
}

struct Linear {
    out_dims: Vec<usize>,
    x_needs_grad: bool,
}

impl CustomOp3 for Linear {
    fn name(&self) -> &'static str {
        "recur-linear"
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
        let (x, w, b) = (
            slice(s1, l1, "linear input")?,
            slice(s2, l2, "linear weight")?,
            slice(s3, l3, "linear bias")?,
        );
        let o = b.len();
        let i = l2.dims()[1];
        // The rows from the shape, not from x's length: with no inputs
        // (I = 0) that is 0 whatever the rows, and the output was left
        // shorter than its shape.
        let n: usize = self.out_dims[..self.out_dims.len() - 1].iter().product();
        debug_assert_eq!(x.len(), n * i);
        // SAFETY: every row is filled with the bias here.
        let mut y = unsafe { output_vec(n * o) };
        for_row_chunks(&mut y, o, 0, |_, rows, _| {
            for row in rows.chunks_exact_mut(o.max(1)) {
                row.copy_from_slice(b);
            }
        });
        // SAFETY: x is [n, i], w is [o, i], y is [n, o].
        unsafe {
            matmul(
                n,
                o,
                i,
                y.as_mut_ptr(),
                View::rows(x.as_ptr(), i),
                View::t(w.as_ptr(), i),
                true,
                rayon::current_num_threads(),
                crate::precision::current(),
            );
        }
        Ok((CpuStorage::F32(y), Shape::from(self.out_dims.clone())))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (o, i) = w.dims2()?;
        let n = x.elem_count() / i.max(1);
        let threads = rayon::current_num_threads();
        // SAFETY: both are products that do not accumulate (zeros when
        // there are no rows).
        let mut dw = unsafe { output_vec(o * i) };
        let mut db = vec![0.0f32; o];
        let mut dx = self.x_needs_grad.then(|| unsafe { output_vec(n * i) });
        // Borrow the three tensors' data instead of copying them out.
        with_slice(grad, "linear output gradient", |g| {
            with_slice(x, "linear input", |xv| {
                with_slice(w, "linear weight", |wv| {
                    add_column_sums(&mut db, g);
                    // SAFETY: g is [n, o], x is [n, i], w is [o, i], dw is
                    // [o, i] and dx [n, i].
                    unsafe {
                        matmul(
                            o,
                            i,
                            n,
                            dw.as_mut_ptr(),
                            View::t(g.as_ptr(), o),
                            View::rows(xv.as_ptr(), i),
                            false,
                            threads,
                            crate::precision::current(),
                        );
                        if let Some(dx) = dx.as_mut() {
                            matmul(
                                n,
                                i,
                                o,
                                dx.as_mut_ptr(),
                                View::rows(g.as_ptr(), o),
                                View::rows(wv.as_ptr(), i),
                                false,
                                threads,
                                crate::precision::current(),
                            );
                        }
                    }
                })
            })
        })???;
        let dx = dx
            .map(|v| Tensor::from_vec(v, x.shape(), &Device::Cpu))
            .transpose()?;
        let dev = Device::Cpu;
        Ok((
            dx,
            Some(Tensor::from_vec(dw, (o, i), &dev)?),
            Some(Tensor::from_vec(db, o, &dev)?),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Var;

    /// No inputs: every row is the bias (the output had no rows).
    #[test]
    fn a_layer_of_no_inputs_gives_the_bias_on_every_row() -> Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::zeros((5, 0), DType::F32, &dev)?;
        let w = Tensor::zeros((3, 0), DType::F32, &dev)?;
        let b = Tensor::new(&[1f32, 2.0, 3.0], &dev)?;
        let y = linear(&x, &w, &b)?;
        assert_eq!(y.dims(), [5, 3]);
        assert_eq!(y.to_vec2::<f32>()?, vec![vec![1f32, 2.0, 3.0]; 5]);
        Ok(())
    }

    /// The bias gradient is each column's sum row by row from the first
    /// (the order the one-thread loop had), also where the columns are
    /// split between threads (300 columns: a last chunk of 44); the output
    /// starts from the bias in every row.
    #[test]
    fn bias_gradient_is_the_column_sum_in_row_order() -> Result<()> {
        let dev = Device::Cpu;
        let (n, i, o) = (200, 3, 300);
        let val = |k: usize, s: f32| {
            (0..k)
                .map(|j| ((j * 7919 % 1013) as f32 - 506.0) / 506.0 * s)
                .collect::<Vec<f32>>()
        };
        let x = Tensor::from_vec(vec![0f32; n * i], (n, i), &dev)?;
        let w = Var::from_vec(val(o * i, 1.0), (o, i), &dev)?;
        let b = Var::from_vec(val(o, 0.5), o, &dev)?;
        let y = linear(&x, &w, &b)?;
        let bias = b.as_tensor().to_vec1::<f32>()?;
        for row in y.to_vec2::<f32>()? {
            assert_eq!(row, bias);
        }
        let up = val(n * o, 3.0);
        let grads = (&y * Tensor::from_vec(up.clone(), (n, o), &dev)?)?
            .sum_all()?
            .backward()?;
        let db = grads.get(&b).expect("bias gradient").to_vec1::<f32>()?;
        for (c, got) in db.iter().enumerate() {
            let mut want = 0f32;
            for r in 0..n {
                want += up[r * o + c];
            }
            assert_eq!(got.to_bits(), want.to_bits(), "column {c}");
        }
        Ok(())
    }
}

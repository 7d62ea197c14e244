//! The kernels as candle custom operations, so a model built from candle
//! tensors gets the fused recurrence inside its autograd graph: the input
//! projection stays an ordinary candle matmul (its backward is candle's),
//! and the recurrence is one node whose backward is [`crate::lstm::backward`]
//! or [`crate::gru::backward`].
//!
//! A forward keeps its gates for the backward only when some input tracks
//! gradients; inference runs keep one step of scratch per thread.

use crate::mat::output_vec;
use crate::packed::PackedLinear;
use crate::{gru, lstm, lstm::Dims};
use candle_core::{
    bail, CpuStorage, CustomOp2, CustomOp3, DType, Device, Layout, Result, Shape, Storage, Tensor,
};
use std::sync::Mutex;

/// Borrows a contiguous f32 CPU tensor's data and runs `f` on it.
pub(crate) fn with_slice<R>(t: &Tensor, what: &str, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    let t = t.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    match &*storage {
        Storage::Cpu(CpuStorage::F32(v)) => {
            let n = layout.shape().elem_count();
            Ok(f(&v[layout.start_offset()..layout.start_offset() + n]))
        }
        _ => bail!("{what}: the fused kernels take f32 tensors on the CPU"),
    }
}

/// A contiguous f32 CPU storage as a slice; `what` names it in errors.
pub(crate) fn slice<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    match s {
        CpuStorage::F32(v) if l.is_contiguous() => {
            Ok(&v[l.start_offset()..l.start_offset() + l.shape().elem_count()])
        }
        CpuStorage::F32(_) => bail!("{what}: expected a contiguous tensor"),
        _ => bail!("{what}: the fused kernels take f32 tensors"),
    }
}

fn check_input(xp: &Tensor, w_hh: &Tensor, gates: usize, name: &str) -> Result<Dims> {
    check_recurrence(xp, w_hh.dims2()?, w_hh.dtype(), gates, name)
}

/// The sizes of a recurrence over `xp [L, B, G * H]` against a `w_hh [G *
/// H, H]` of dimensions `(wg, h)` and type `w_dtype`, refused with what
/// would be right unless they fit.
fn check_recurrence(
    xp: &Tensor,
    (wg, h): (usize, usize),
    w_dtype: DType,
    gates: usize,
    name: &str,
) -> Result<Dims> {
    if !matches!(xp.device(), Device::Cpu) {
        bail!(
            "{name}: the fused kernels run on the CPU; this tensor is on {:?}",
            xp.device()
        );
    }
    if xp.dtype() != DType::F32 || w_dtype != DType::F32 {
        bail!(
            "{name}: the fused kernels take f32, got {:?} and {:?}",
            xp.dtype(),
            w_dtype
        );
    }
    let (l, b, g) = xp.dims3()?;
    if wg != gates * h || g != gates * h {
        bail!(
            "{name}: with hidden size {h} the projection must be [L, B, {}] and weight_hh \
             [{}, {h}]; got {:?} and [{wg}, {h}]",
            gates * h,
            gates * h,
            xp.dims(),
        );
    }
    Ok(Dims {
        steps: l,
        batch: b,
        hidden: h,
    })
}

/// The LSTM recurrence: `xp [L, B, 4H]` (input projection plus both
/// biases, time-major) and `w_hh [4H, H]` -> every hidden state `[L, B, H]`.
pub fn lstm(xp: &Tensor, w_hh: &Tensor) -> Result<Tensor> {
    let dims = check_input(xp, w_hh, 4, "lstm")?;
    let train = xp.track_op() || w_hh.track_op();
    xp.contiguous()?.apply_op2(
        &w_hh.contiguous()?,
        LstmOp {
            dims,
            train,
            saved: Mutex::new(None),
        },
    )
}

/// The GRU recurrence: `xp [L, B, 3H]` (input projection plus `b_ih`),
/// `w_hh [3H, H]`, `b_hh [3H]` -> every hidden state `[L, B, H]`.
pub fn gru(xp: &Tensor, w_hh: &Tensor, b_hh: &Tensor) -> Result<Tensor> {
    let dims = check_input(xp, w_hh, 3, "gru")?;
    if b_hh.dims() != [3 * dims.hidden] {
        bail!(
            "gru: bias_hh must be [{}], got {:?}",
            3 * dims.hidden,
            b_hh.dims()
        );
    }
    let train = xp.track_op() || w_hh.track_op() || b_hh.track_op();
    xp.contiguous()?.apply_op3(
        &w_hh.contiguous()?,
        &b_hh.contiguous()?,
        GruOp {
            dims,
            train,
            saved: Mutex::new(None),
        },
    )
}

/// The LSTM with the input projection inside the time loop (see
/// [`lstm::forward_fused`]): `x [L, B, I]` and `w_all [4H, I + H + 1]` =
/// `[w_ih | w_hh | b_ih + b_hh]` -> `[L, B, H]`. Two inputs, so the bias
/// rides in the weight's last column (candle's custom ops take at most three
/// tensors and the layer has four).
pub fn lstm_fused(x: &Tensor, w_all: &Tensor) -> Result<Tensor> {
    let (l, b, i) = x.dims3()?;
    let dims = fused_dims(x, w_all, (l, b, i))?;
    x.contiguous()?.apply_op2(
        &w_all.contiguous()?,
        LstmFusedOp {
            dims,
            train: x.track_op() || w_all.track_op(),
            x_needs_grad: x.track_op(),
            saved: Mutex::new(None),
        },
    )
}

/// [`lstm_fused`] for inference, the last hidden state alone
/// ([`lstm::forward_fused_last`]): `x [B, L, I]` batch-major, as a model's
/// input comes, and `w_all` as there -> `[B, H]`, no gradient.
pub fn lstm_fused_last(x: &Tensor, w_all: &Tensor) -> Result<Tensor> {
    let (b, l, i) = x.dims3()?;
    let d = fused_dims(x, w_all, (l, b, i))?;
    let y = with_slice(x, "lstm input", |x| {
        with_slice(w_all, "lstm weights", |w| {
            // SAFETY: the layer writes every row's last state.
            let mut y = unsafe { output_vec(d.batch * d.hidden) };
            lstm::forward_fused_last(d, x, w, &mut y);
            y
        })
    })??;
    Tensor::from_vec(y, (d.batch, d.hidden), &Device::Cpu)
}

/// The sizes of the input-fused layer over an input of `(l, b, i)` and
/// `w_all`, refused with what would be right unless they fit.
fn fused_dims(x: &Tensor, w_all: &Tensor, (l, b, i): (usize, usize, usize)) -> Result<Dims> {
    if !matches!(x.device(), Device::Cpu) {
        bail!(
            "lstm: the fused kernels run on the CPU; this tensor is on {:?}",
            x.device()
        );
    }
    if x.dtype() != DType::F32 || w_all.dtype() != DType::F32 {
        bail!("lstm: the fused kernels take f32");
    }
    let (g, k1) = w_all.dims2()?;
    let h = g / 4;
    if g % 4 != 0 || k1 != i + h + 1 {
        bail!(
            "lstm: input [L, B, {i}] needs [w_ih | w_hh | bias] of [4H, {i} + H + 1]; got {:?}",
            w_all.dims()
        );
    }
    Ok(Dims {
        steps: l,
        batch: b,
        hidden: h,
    })
}

struct LstmFusedOp {
    dims: Dims,
    train: bool,
    x_needs_grad: bool,
    saved: Mutex<Option<lstm::SavedFused>>,
}

impl CustomOp2 for LstmFusedOp {
    fn name(&self) -> &'static str {
        "recur-fused-lstm-input"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let d = self.dims;
        let x = slice(s1, l1, "lstm input")?;
        let w = slice(s2, l2, "lstm weights")?;
        // SAFETY: the kernel writes every step's hidden state.
        let mut y = unsafe { output_vec(d.steps * d.batch * d.hidden) };
        if self.train {
            let mut s = lstm::SavedFused::default();
            lstm::forward_fused(d, x, w, &mut y, Some(&mut s));
            *self.saved.lock().expect("lstm saved state") = Some(s);
        } else {
            lstm::forward_fused(d, x, w, &mut y, None);
        }
        Ok((
            CpuStorage::F32(y),
            Shape::from((d.steps, d.batch, d.hidden)),
        ))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w_all: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let d = self.dims;
        let guard = self.saved.lock().expect("lstm saved state");
        let Some(saved) = guard.as_ref() else {
            bail!("lstm backward: the forward kept no state (it ran without gradients)");
        };
        // SAFETY: both are products that do not accumulate, and the bias
        // column of dw is written from the bias gradient.
        let mut dw = unsafe { output_vec(w_all.elem_count()) };
        let mut dx = self
            .x_needs_grad
            .then(|| unsafe { output_vec(x.elem_count()) });
        with_slice(w_all, "lstm weights", |w| {
            with_slice(grad_res, "lstm output gradient", |gy| {
                lstm::backward_fused(d, w, saved, gy, &mut dw, dx.as_deref_mut())
            })
        })??;
        let dev = Device::Cpu;
        Ok((
            dx.map(|v| Tensor::from_vec(v, x.shape(), &dev))
                .transpose()?,
            Some(Tensor::from_vec(dw, w_all.shape(), &dev)?),
        ))
    }
}

struct LstmOp {
    dims: Dims,
    train: bool,
    saved: Mutex<Option<lstm::Saved>>,
}

impl CustomOp2 for LstmOp {
    fn name(&self) -> &'static str {
        "recur-fused-lstm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let d = self.dims;
        let xp = slice(s1, l1, "lstm input projection")?;
        let w = slice(s2, l2, "lstm weight_hh")?;
        // SAFETY: the layer writes every hidden state.
        let mut y = unsafe { output_vec(d.steps * d.batch * d.hidden) };
        if self.train {
            let mut s = lstm::Saved::default();
            lstm::forward(d, xp, w, &mut y, Some(&mut s));
            *self.saved.lock().expect("lstm saved state") = Some(s);
        } else {
            lstm::forward(d, xp, w, &mut y, None);
        }
        Ok((
            CpuStorage::F32(y),
            Shape::from((d.steps, d.batch, d.hidden)),
        ))
    }

    fn bwd(
        &self,
        _xp: &Tensor,
        w_hh: &Tensor,
        res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let d = self.dims;
        let guard = self.saved.lock().expect("lstm saved state");
        let Some(saved) = guard.as_ref() else {
            bail!("lstm backward: the forward kept no state (it ran without gradients)");
        };
        // SAFETY: backward through time writes every step's gate
        // gradients, and the weight gradient is one product that does not
        // accumulate (zeros when there is a single step).
        let (mut dxp, mut dw) = unsafe {
            (
                output_vec(d.steps * d.batch * 4 * d.hidden),
                output_vec(4 * d.hidden * d.hidden),
            )
        };
        with_slice(w_hh, "lstm weight_hh", |w| {
            with_slice(res, "lstm output", |y| {
                with_slice(grad_res, "lstm output gradient", |gy| {
                    lstm::backward(d, w, y, saved, gy, &mut dxp, &mut dw)
                })
            })
        })???;
        let dev = Device::Cpu;
        Ok((
            Some(Tensor::from_vec(
                dxp,
                (d.steps, d.batch, 4 * d.hidden),
                &dev,
            )?),
            Some(Tensor::from_vec(dw, (4 * d.hidden, d.hidden), &dev)?),
        ))
    }
}

struct GruOp {
    dims: Dims,
    train: bool,
    saved: Mutex<Option<gru::Saved>>,
}

impl CustomOp3 for GruOp {
    fn name(&self) -> &'static str {
        "recur-fused-gru"
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
        let d = self.dims;
        let xp = slice(s1, l1, "gru input projection")?;
        let w = slice(s2, l2, "gru weight_hh")?;
        let bh = slice(s3, l3, "gru bias_hh")?;
        // SAFETY: the layer writes every hidden state.
        let mut y = unsafe { output_vec(d.steps * d.batch * d.hidden) };
        if self.train {
            let mut s = gru::Saved::default();
            gru::forward(d, xp, w, bh, &mut y, Some(&mut s));
            *self.saved.lock().expect("gru saved state") = Some(s);
        } else {
            gru::forward(d, xp, w, bh, &mut y, None);
        }
        Ok((
            CpuStorage::F32(y),
            Shape::from((d.steps, d.batch, d.hidden)),
        ))
    }

    fn bwd(
        &self,
        _xp: &Tensor,
        w_hh: &Tensor,
        _b_hh: &Tensor,
        res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let d = self.dims;
        let guard = self.saved.lock().expect("gru saved state");
        let Some(saved) = guard.as_ref() else {
            bail!("gru backward: the forward kept no state (it ran without gradients)");
        };
        let h = d.hidden;
        // SAFETY: backward through time writes every step's gate
        // gradients, and the weight gradient is one product that does not
        // accumulate (zeros when there is a single step).
        let (mut dxp, mut dw) =
            unsafe { (output_vec(d.steps * d.batch * 3 * h), output_vec(3 * h * h)) };
        let mut db = vec![0.0f32; 3 * h];
        with_slice(w_hh, "gru weight_hh", |w| {
            with_slice(res, "gru output", |y| {
                with_slice(grad_res, "gru output gradient", |gy| {
                    gru::backward(d, w, y, saved, gy, &mut dxp, &mut dw, &mut db)
                })
            })
        })???;
        let dev = Device::Cpu;
        Ok((
            Some(Tensor::from_vec(dxp, (d.steps, d.batch, 3 * h), &dev)?),
            Some(Tensor::from_vec(dw, (3 * h, h), &dev)?),
            Some(Tensor::from_vec(db, 3 * h, &dev)?),
        ))
    }
}

/// `x [..., I] @ W^T + b` against a weight packed once ([`PackedLinear::new`],
/// bias included) -> `[..., O]`, for inference: the result tracks no
/// gradient. The sums are the packed product's ([`crate::packed`]).
pub fn linear_packed(x: &Tensor, w: &PackedLinear) -> Result<Tensor> {
    let i = w.inputs();
    if x.dims().last() != Some(&i) {
        bail!(
            "linear: a packed weight of {i} inputs got input {:?}",
            x.dims()
        );
    }
    let mut dims = x.dims().to_vec();
    *dims.last_mut().expect("checked above") = w.outputs();
    let y = with_slice(x, "linear input", |x| {
        // SAFETY: the product overwrites every element.
        let mut y = unsafe { output_vec(x.len() / i * w.outputs()) };
        w.forward(x, &mut y, rayon::current_num_threads());
        y
    })?;
    Tensor::from_vec(y, dims, &Device::Cpu)
}

/// [`lstm()`] for inference against `w_hh [4H, H]` packed once
/// ([`lstm::forward_packed`]): `xp [L, B, 4H]` -> `[L, B, H]`, no gradient.
pub fn lstm_packed(xp: &Tensor, w_hh: &PackedLinear) -> Result<Tensor> {
    let d = packed_dims(xp, w_hh, 4, "lstm")?;
    let y = with_slice(xp, "lstm projection", |xp| {
        // SAFETY: the recurrence writes every step's hidden state.
        let mut y = unsafe { output_vec(d.steps * d.batch * d.hidden) };
        lstm::forward_packed(d, xp, w_hh, &mut y);
        y
    })?;
    Tensor::from_vec(y, (d.steps, d.batch, d.hidden), &Device::Cpu)
}

/// [`gru()`] for inference against `w_hh [3H, H]` packed once
/// ([`gru::forward_packed`]): `xp [L, B, 3H]`, `b_hh [3H]` -> `[L, B, H]`,
/// no gradient.
pub fn gru_packed(xp: &Tensor, w_hh: &PackedLinear, b_hh: &Tensor) -> Result<Tensor> {
    let d = packed_dims(xp, w_hh, 3, "gru")?;
    if b_hh.dims() != [3 * d.hidden] {
        bail!(
            "gru: bias_hh must be [{}], got {:?}",
            3 * d.hidden,
            b_hh.dims()
        );
    }
    let y = with_slice(xp, "gru projection", |xp| {
        with_slice(b_hh, "gru bias_hh", |b| {
            // SAFETY: the recurrence writes every step's hidden state.
            let mut y = unsafe { output_vec(d.steps * d.batch * d.hidden) };
            gru::forward_packed(d, xp, w_hh, b, &mut y);
            y
        })
    })??;
    Tensor::from_vec(y, (d.steps, d.batch, d.hidden), &Device::Cpu)
}

/// The sizes of a recurrence over `xp [L, B, G * H]` against a packed
/// `w_hh [G * H, H]`.
fn packed_dims(xp: &Tensor, w_hh: &PackedLinear, gates: usize, name: &str) -> Result<Dims> {
    let dims = (w_hh.outputs(), w_hh.inputs());
    check_recurrence(xp, dims, DType::F32, gates, name)
}

//! The fused LSTM layer on raw f32 buffers, time-major.
//!
//! Shapes (L steps, B batch rows, H hidden): `xp [L, B, 4H]` is the input
//! projection of every step with both biases already added (one GEMM done
//! by the caller), `w_hh [4H, H]` in PyTorch's packed layout with gate order
//! i, f, g, o, the output `y [L, B, H]` holds every hidden state. The state
//! starts at zero, as in the models that use it.
//!
//! Forward, per step: one GEMM `h_{t-1} @ w_hh^T` into the gate buffer, then
//! one pass that adds the projection, applies the nonlinearities and updates
//! the cell. Backward, per step: one pass for the gate gradients, one GEMM
//! `dG_t @ w_hh` for the recurrent gradient; `dW_hh` is one GEMM over all
//! steps afterwards. Batch rows are split into one chunk per thread, each
//! running the whole recurrence on its rows with no synchronisation; every
//! buffer is allocated before the time loop. Inference (no saved state) on
//! AVX-512 runs in `lstm_tile` instead where it applies: the same
//! sums with the cell applied to each product tile in registers.

use crate::act::{sigmoid_lanes, tanh, tanh_lanes};
use crate::lanes::Lanes;
use crate::mat::{matmul, matmul_into, output_vec, plan, SendConst, SendPtr, StepRhs, View};
use crate::packed::PackedLinear;
use crate::rows::add_column_sums;
use multiversion::multiversion;
use rayon::prelude::*;

/// Sizes of one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dims {
    pub steps: usize,
    pub batch: usize,
    pub hidden: usize,
}

/// What a training forward keeps for the backward pass: the activated
/// gates `[L, B, 4H]` and the cell states `[L, B, H]`.
#[derive(Default)]
pub struct Saved {
    pub gates: Vec<f32>,
    pub cells: Vec<f32>,
}

/// Runs the layer. With `saved`, keeps what [`backward`] needs.
pub fn forward(d: Dims, xp: &[f32], w_hh: &[f32], y: &mut [f32], saved: Option<&mut Saved>) {
    let Dims {
        steps: l,
        batch: b,
        hidden: h,
    } = d;
    assert_eq!(xp.len(), l * b * 4 * h, "xp is [L, B, 4H]");
    assert_eq!(w_hh.len(), 4 * h * h, "w_hh is [4H, H]");
    assert_eq!(y.len(), l * b * h, "y is [L, B, H]");
    // Up to six rows the dot-product path reads `w_hh` as it is; the tiles
    // would pack it first.
    if saved.is_none() && b > crate::mat::SKINNY_ROWS && crate::lstm_tile::takes(h) {
        crate::lstm_tile::forward_projected(d, xp, w_hh, y);
        return;
    }
    let threads = rayon::current_num_threads();
    // SAFETY: w_hh is [4H, H] (checked above) and outlives `rec`.
    let rec = unsafe {
        StepRhs::new(
            h,
            4 * h,
            View::t(w_hh.as_ptr(), h),
            plan(b, threads).0[0].len(),
            threads,
        )
    };
    recur(d, xp, &rec, y, saved);
}

/// [`forward`] for inference against `w_hh` packed once beforehand
/// (`PackedLinear::new(w_hh, H, None)`) by the owner of a model that does
/// not change (a model loaded to serve), for any batch. Each step's sums
/// are those of the packed product ([`crate::packed`]), as in the forward
/// of a training batch of 7 to 96 rows per thread; at up to six rows, the
/// forward above takes dot products instead, over the weight as it is.
pub fn forward_packed(d: Dims, xp: &[f32], w_hh: &PackedLinear, y: &mut [f32]) {
    let Dims {
        steps: l,
        batch: b,
        hidden: h,
    } = d;
    assert_eq!(xp.len(), l * b * 4 * h, "xp is [L, B, 4H]");
    assert_eq!(
        (w_hh.outputs(), w_hh.inputs()),
        (4 * h, h),
        "w_hh is [4H, H]"
    );
    assert_eq!(y.len(), l * b * h, "y is [L, B, H]");
    recur(d, xp, &StepRhs::Shared(w_hh), y, None);
}

/// The time loop of [`forward`] with its recurrent product.
fn recur(d: Dims, xp: &[f32], rec: &StepRhs, y: &mut [f32], saved: Option<&mut Saved>) {
    let Dims {
        steps: l,
        batch: b,
        hidden: h,
    } = d;
    let train = saved.is_some();
    let (gates, cells) = match saved {
        Some(s) => {
            // SAFETY: every step writes its rows of both (the gates by the
            // copy or the product, then the cell pass).
            unsafe {
                s.gates = output_vec(l * b * 4 * h);
                s.cells = output_vec(l * b * h);
            }
            (SendPtr(s.gates.as_mut_ptr()), SendPtr(s.cells.as_mut_ptr()))
        }
        None => (SendPtr(std::ptr::null_mut()), SendPtr(std::ptr::null_mut())),
    };
    let (chunks, gt) = plan(b, rayon::current_num_threads());
    let (xp, yp) = (SendConst(xp.as_ptr()), SendPtr(y.as_mut_ptr()));
    chunks.into_par_iter().for_each(|rows| {
        // Whole-struct copies, so the closure captures the Send wrappers and
        // not their raw-pointer fields.
        let (gates, cells, xp, yp) = (gates, cells, xp, yp);
        let (r0, nr) = (rows.start, rows.len());
        // Inference keeps one step of gates and two of cells per chunk.
        let mut g_scratch = if train {
            Vec::new()
        } else {
            vec![0.0f32; nr * 4 * h]
        };
        let mut c_scratch = if train {
            Vec::new()
        } else {
            vec![0.0f32; 2 * nr * h]
        };
        for t in 0..l {
            // SAFETY: every pointer below addresses rows r0..r0+nr of step t
            // (or t-1) of a buffer sized above; chunks are disjoint.
            unsafe {
                let g: &mut [f32] = if train {
                    std::slice::from_raw_parts_mut(gates.0.add((t * b + r0) * 4 * h), nr * 4 * h)
                } else {
                    &mut g_scratch
                };
                let xpt = std::slice::from_raw_parts(xp.0.add((t * b + r0) * 4 * h), nr * 4 * h);
                let hout = std::slice::from_raw_parts_mut(yp.0.add((t * b + r0) * h), nr * h);
                let (cprev, c): (Option<&[f32]>, &mut [f32]) = if train {
                    let c = std::slice::from_raw_parts_mut(cells.0.add((t * b + r0) * h), nr * h);
                    let p = (t > 0).then(|| {
                        std::slice::from_raw_parts(cells.0.add(((t - 1) * b + r0) * h), nr * h)
                    });
                    (p, c)
                } else {
                    let (a, bb) = c_scratch.split_at_mut(nr * h);
                    let (prev, cur) = if t % 2 == 0 { (bb, a) } else { (a, bb) };
                    ((t > 0).then_some(&*prev), cur)
                };
                if t > 0 {
                    let hprev = yp.0.add(((t - 1) * b + r0) * h) as *const f32;
                    rec.product(nr, 4 * h, h, g.as_mut_ptr(), hprev, false, gt);
                    cell_forward(h, g, Some(xpt), cprev, c, hout);
                } else {
                    // No recurrent product at the first step: the gates are
                    // the projection.
                    g.copy_from_slice(xpt);
                    cell_forward(h, g, None, None, c, hout);
                }
            }
        }
    });
}

/// One step for `nr` rows: `g` holds the gate pre-activations less `xp`
/// (added here when given: one row per gate row, or a single `[4H]` bias
/// row for all), and the pass leaves the activated gates in `g`, the new cell in `c`, the hidden
/// state in `hout`.
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma", "aarch64+neon"))]
fn cell_forward(
    h: usize,
    g: &mut [f32],
    xp: Option<&[f32]>,
    cprev: Option<&[f32]>,
    c: &mut [f32],
    hout: &mut [f32],
) {
    let nr = c.len() / h;
    for r in 0..nr {
        let gr = &mut g[r * 4 * h..(r + 1) * 4 * h];
        if let Some(xp) = xp {
            let xr = if xp.len() == 4 * h {
                xp
            } else {
                &xp[r * 4 * h..(r + 1) * 4 * h]
            };
            for (a, x) in gr.iter_mut().zip(xr) {
                *a += *x;
            }
        }
        let (gi, rest) = gr.split_at_mut(h);
        let (gf, rest) = rest.split_at_mut(h);
        let (gg, go) = rest.split_at_mut(h);
        // Every slice re-cut to exactly h so the loops below carry no bounds
        // checks and vectorise.
        let (gi, gf, gg, go) = (&mut gi[..h], &mut gf[..h], &mut gg[..h], &mut go[..h]);
        let cr = &mut c[r * h..][..h];
        let hr = &mut hout[r * h..][..h];
        let cp = cprev.map(|cp| &cp[r * h..][..h]);
        row_forward(gi, gf, gg, go, cp, cr, hr);
    }
}

/// One row of [`cell_forward`]. Separate `&mut` parameters tell the compiler
/// the slices do not overlap; without that it gives up vectorising a loop
/// over seven arrays (too many run-time overlap checks).
#[inline(always)]
fn row_forward(
    gi: &mut [f32],
    gf: &mut [f32],
    gg: &mut [f32],
    go: &mut [f32],
    cprev: Option<&[f32]>,
    c: &mut [f32],
    hout: &mut [f32],
) {
    let h = c.len();
    let (gi, gf, gg, go, hout) = (
        &mut gi[..h],
        &mut gf[..h],
        &mut gg[..h],
        &mut go[..h],
        &mut hout[..h],
    );
    // The two loops differ in the constant `cprev`, so each inlines `cell`
    // without a branch.
    match cprev {
        Some(cp) => {
            let cp = &cp[..h];
            for j in 0..h {
                let [i, f, gv, o, cv, hv] = cell(gi[j], gf[j], gg[j], go[j], Some(cp[j]));
                (gi[j], gf[j], gg[j], go[j], c[j], hout[j]) = (i, f, gv, o, cv, hv);
            }
        }
        None => {
            for j in 0..h {
                let [i, f, gv, o, cv, hv] = cell(gi[j], gf[j], gg[j], go[j], None);
                (gi[j], gf[j], gg[j], go[j], c[j], hout[j]) = (i, f, gv, o, cv, hv);
            }
        }
    }
}

/// The cell update on lanes (one f32, or an AVX-512 register in
/// [`crate::lstm_tile`]): gate pre-activations and the previous cell (none
/// at the first step) in; the activated gates i, f, g, o, the new cell and
/// the hidden state out.
#[inline(always)]
pub(crate) fn cell<V: Lanes>(gi: V, gf: V, gg: V, go: V, cprev: Option<V>) -> [V; 6] {
    let i = sigmoid_lanes(gi);
    let f = sigmoid_lanes(gf);
    let gv = tanh_lanes(gg);
    let o = sigmoid_lanes(go);
    let cv = match cprev {
        Some(cp) => f * cp + i * gv,
        None => i * gv,
    };
    [i, f, gv, o, cv, o * tanh_lanes(cv)]
}

/// Gradients of one layer: `dxp [L, B, 4H]` (the gate pre-activations, which
/// is also the gradient of both biases summed over rows and steps) and
/// `dw_hh [4H, H]`, from the upstream gradient `gy [L, B, H]` of every
/// hidden state, the forward's output `y` and what it saved.
pub fn backward(
    d: Dims,
    w_hh: &[f32],
    y: &[f32],
    saved: &Saved,
    gy: &[f32],
    dxp: &mut [f32],
    dw_hh: &mut [f32],
) {
    let Dims {
        steps: l,
        batch: b,
        hidden: h,
    } = d;
    assert_eq!(w_hh.len(), 4 * h * h, "w_hh is [4H, H]");
    assert_eq!(y.len(), l * b * h, "y is [L, B, H]");
    assert_eq!(gy.len(), l * b * h, "grad of y is [L, B, H]");
    assert_eq!(saved.gates.len(), l * b * 4 * h, "saved gates");
    assert_eq!(saved.cells.len(), l * b * h, "saved cells");
    assert_eq!(dxp.len(), l * b * 4 * h, "dxp is [L, B, 4H]");
    assert_eq!(dw_hh.len(), 4 * h * h, "dw_hh is [4H, H]");
    bptt(d, View::rows(w_hh.as_ptr(), h), saved, gy, dxp);
    let threads = rayon::current_num_threads();
    // dW_hh = sum over t >= 1 of dG_t^T h_{t-1}: one product with K = (L-1) B.
    // SAFETY: dxp rows B.. and y rows ..(L-1)B exist; dw_hh is [4H, H].
    // With one step or none, K is 0 and nothing is read: the offset may
    // then lie past the buffer, so it is `wrapping_add`, not `add`.
    unsafe {
        matmul(
            4 * h,
            h,
            (l.saturating_sub(1)) * b,
            dw_hh.as_mut_ptr(),
            View::t(dxp.as_ptr().wrapping_add(b * 4 * h), 4 * h),
            View::rows(y.as_ptr(), h),
            false,
            threads,
            crate::precision::current(),
        );
    }
}

/// Backward through time: the gate pre-activation gradients of every step
/// into `dg [L, B, 4H]`, from the saved gates and cells and the upstream
/// gradient `gy`. `w_hh` views the recurrent weight `[4H, H]` (a slice of
/// `[w_ih | w_hh | b]` in the fused-input layer). Batch chunks run in
/// parallel, each over all steps; only `dh @ w_hh` crosses steps.
fn bptt(d: Dims, w_hh: View, saved: &Saved, gy: &[f32], dg: &mut [f32]) {
    let Dims {
        steps: l,
        batch: b,
        hidden: h,
    } = d;
    let threads = rayon::current_num_threads();
    let (chunks, gt) = plan(b, threads);
    // SAFETY: the callers' view covers [4H, H].
    let rec = unsafe { StepRhs::new(4 * h, h, w_hh, chunks[0].len(), threads) };
    let rec = &rec;
    let (gates, cells, gyp, dgp) = (
        SendConst(saved.gates.as_ptr()),
        SendConst(saved.cells.as_ptr()),
        SendConst(gy.as_ptr()),
        SendPtr(dg.as_mut_ptr()),
    );
    chunks.into_par_iter().for_each(|rows| {
        let (gates, cells, gyp, dgp) = (gates, cells, gyp, dgp);
        let (r0, nr) = (rows.start, rows.len());
        let mut dh_rec = vec![0.0f32; nr * h];
        let mut dc = vec![0.0f32; nr * h];
        let zeros = vec![0.0f32; nr * h];
        for t in (0..l).rev() {
            // SAFETY: rows r0..r0+nr of step t (or t-1) of buffers the
            // callers checked; each chunk writes only its own rows of dg.
            unsafe {
                let at = |p: *const f32, width: usize, t: usize| {
                    std::slice::from_raw_parts(p.add((t * b + r0) * width), nr * width)
                };
                let g = at(gates.0, 4 * h, t);
                let c = at(cells.0, h, t);
                let cprev = if t > 0 { at(cells.0, h, t - 1) } else { &zeros };
                let gyt = at(gyp.0, h, t);
                let dgt =
                    std::slice::from_raw_parts_mut(dgp.0.add((t * b + r0) * 4 * h), nr * 4 * h);
                // dh_rec is still zero at the last step.
                cell_backward(h, g, c, cprev, gyt, &dh_rec, &mut dc, dgt);
                if t > 0 {
                    rec.product(nr, h, 4 * h, dh_rec.as_mut_ptr(), dgt.as_ptr(), false, gt);
                }
            }
        }
    });
}

/// Gate gradients of one step for `nr` rows. `dc` carries the cell
/// gradient from step t+1 in and to step t-1 out; `rec` is the hidden-state
/// gradient coming back from step t+1 (zero at the last step), `cprev` the
/// previous cell (zero at the first).
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma", "aarch64+neon"))]
#[allow(clippy::too_many_arguments)]
fn cell_backward(
    h: usize,
    g: &[f32],
    c: &[f32],
    cprev: &[f32],
    gy: &[f32],
    rec: &[f32],
    dc: &mut [f32],
    dg: &mut [f32],
) {
    let nr = c.len() / h;
    for r in 0..nr {
        let gr = &g[r * 4 * h..(r + 1) * 4 * h];
        let (gi, gf, gg, go) = (
            &gr[..h],
            &gr[h..][..h],
            &gr[2 * h..][..h],
            &gr[3 * h..][..h],
        );
        let dgr = &mut dg[r * 4 * h..(r + 1) * 4 * h];
        let (di, rest) = dgr.split_at_mut(h);
        let (df, rest) = rest.split_at_mut(h);
        let (dgg, d_o) = rest.split_at_mut(h);
        let (di, df, dgg, d_o) = (&mut di[..h], &mut df[..h], &mut dgg[..h], &mut d_o[..h]);
        let cr = &c[r * h..][..h];
        let gyr = &gy[r * h..][..h];
        let dcr = &mut dc[r * h..][..h];
        let recr = &rec[r * h..][..h];
        let cpr = &cprev[r * h..][..h];
        row_backward(
            [gi, gf, gg, go],
            cr,
            cpr,
            gyr,
            recr,
            dcr,
            [di, df, dgg, d_o],
        );
    }
}

/// One row of [`cell_backward`]; separate parameters for vectorisation as
/// in [`row_forward`].
#[inline(always)]
fn row_backward(
    g: [&[f32]; 4],
    c: &[f32],
    cprev: &[f32],
    gy: &[f32],
    rec: &[f32],
    dc: &mut [f32],
    d: [&mut [f32]; 4],
) {
    let h = dc.len();
    let [gi, gf, gg, go] = g;
    let (gi, gf, gg, go) = (&gi[..h], &gf[..h], &gg[..h], &go[..h]);
    let (c, cprev, gy, rec) = (&c[..h], &cprev[..h], &gy[..h], &rec[..h]);
    let [di, df, dgg, d_o] = d;
    row_backward_out(gi, gf, gg, go, c, cprev, gy, rec, dc, di, df, dgg, d_o);
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn row_backward_out(
    gi: &[f32],
    gf: &[f32],
    gg: &[f32],
    go: &[f32],
    c: &[f32],
    cprev: &[f32],
    gy: &[f32],
    rec: &[f32],
    dc: &mut [f32],
    di: &mut [f32],
    df: &mut [f32],
    dgg: &mut [f32],
    d_o: &mut [f32],
) {
    let h = dc.len();
    let (gi, gf, gg, go) = (&gi[..h], &gf[..h], &gg[..h], &go[..h]);
    let (c, cprev, gy, rec) = (&c[..h], &cprev[..h], &gy[..h], &rec[..h]);
    let (di, df, dgg, d_o) = (&mut di[..h], &mut df[..h], &mut dgg[..h], &mut d_o[..h]);
    for j in 0..h {
        let dh = gy[j] + rec[j];
        let (i, f, gv, o) = (gi[j], gf[j], gg[j], go[j]);
        let tc = tanh(c[j]);
        let dcc = dc[j] + dh * o * (1.0 - tc * tc);
        di[j] = dcc * gv * i * (1.0 - i);
        df[j] = dcc * cprev[j] * f * (1.0 - f);
        dgg[j] = dcc * i * (1.0 - gv * gv);
        d_o[j] = dh * tc * o * (1.0 - o);
        dc[j] = dcc * f;
    }
}

/// What the fused-input forward keeps: gates and cells as [`Saved`], and
/// each step's GEMM input `[x_t | h_{t-1}]`, `[L, B, I + H]`.
#[derive(Default)]
pub struct SavedFused {
    pub base: Saved,
    pub inputs: Vec<f32>,
}

/// `K = I + H` and `I` of the input-fused layer's `w_all [4H, K + 1]`.
fn fused_sizes(w_all: &[f32], h: usize) -> (usize, usize) {
    let k = w_all.len() / (4 * h) - 1;
    assert_eq!(w_all.len(), 4 * h * (k + 1), "w_all is [4H, I + H + 1]");
    (k, k - h)
}

/// [`forward_fused`] in inference on the model's input as it comes,
/// batch-major `x [B, L, I]`, for its last hidden state alone, `y [B, H]`
/// (a classifier's last layer): the register tiles read the input in
/// place, so the transposed copy the layer takes otherwise is never made
/// (with it, 3.6% of the rainfall classifier's batch-512 inference,
/// `perf`), and keep the other steps' states in two buffers of each
/// thread's rows instead of writing `[L, B, H]` out. Where the tiles do
/// not run, the copy and the states are made here. The same bits as the
/// last step of [`forward_fused`] on the transposed input.
pub fn forward_fused_last(d: Dims, x: &[f32], w_all: &[f32], y: &mut [f32]) {
    let Dims {
        steps: l,
        batch: b,
        hidden: h,
    } = d;
    let (k, i) = fused_sizes(w_all, h);
    assert_eq!(x.len(), l * b * i, "x is [B, L, I]");
    assert_eq!(y.len(), b * h, "y is [B, H]");
    if l == 0 {
        y.fill(0.0);
        return;
    }
    if crate::lstm_tile::takes(k) {
        crate::lstm_tile::forward(d, i, x, true, w_all, y, true);
        return;
    }
    let mut xt = vec![0f32; x.len()];
    for (r, row) in x.chunks_exact((l * i).max(1)).enumerate() {
        for (t, v) in row.chunks_exact(i.max(1)).enumerate() {
            xt[(t * b + r) * i..][..i].copy_from_slice(v);
        }
    }
    let mut all = vec![0f32; l * b * h];
    forward_fused(d, &xt, w_all, &mut all, None);
    y.copy_from_slice(&all[(l - 1) * b * h..]);
}

/// The layer with the input projection inside the time loop, for small
/// inputs (`I` well below `H`, as the classifier's 16 features): each step
/// is one GEMM of `[x_t | h_{t-1}]` with `[w_ih | w_hh]`, so the `[L, B, 4H]`
/// projection is never written to memory and read back.
///
/// `x [L, B, I]`, `w_all [4H, I + H + 1]` = `[w_ih | w_hh | b_ih + b_hh]`.
pub fn forward_fused(
    d: Dims,
    x: &[f32],
    w_all: &[f32],
    y: &mut [f32],
    saved: Option<&mut SavedFused>,
) {
    let Dims {
        steps: l,
        batch: b,
        hidden: h,
    } = d;
    let (k, i) = fused_sizes(w_all, h);
    assert_eq!(x.len(), l * b * i, "x is [L, B, I]");
    assert_eq!(y.len(), l * b * h, "y is [L, B, H]");
    if saved.is_none() && crate::lstm_tile::takes(k) {
        crate::lstm_tile::forward(d, i, x, false, w_all, y, false);
        return;
    }
    let bias: Vec<f32> = (0..4 * h).map(|r| w_all[r * (k + 1) + k]).collect();
    let train = saved.is_some();
    let (gates, cells, inputs) = match saved {
        Some(s) => {
            // SAFETY: every step writes its rows of all three (the inputs
            // by the copies, the gates by the product, then the cell pass).
            unsafe {
                s.base.gates = output_vec(l * b * 4 * h);
                s.base.cells = output_vec(l * b * h);
                s.inputs = output_vec(l * b * k);
            }
            (
                SendPtr(s.base.gates.as_mut_ptr()),
                SendPtr(s.base.cells.as_mut_ptr()),
                SendPtr(s.inputs.as_mut_ptr()),
            )
        }
        None => (
            SendPtr(std::ptr::null_mut()),
            SendPtr(std::ptr::null_mut()),
            SendPtr(std::ptr::null_mut()),
        ),
    };
    let threads = rayon::current_num_threads();
    let (chunks, gt) = plan(b, threads);
    // [w_ih | w_hh]^T, the first K columns of w_all's rows.
    let w = View {
        ptr: w_all.as_ptr(),
        rs: 1,
        cs: (k + 1) as isize,
    };
    // SAFETY: w_all is [4H, K + 1] (checked above) and outlives `rec`.
    let rec = unsafe { StepRhs::new(k, 4 * h, w, chunks[0].len(), threads) };
    let rec = &rec;
    let (xs, yp) = (SendConst(x.as_ptr()), SendPtr(y.as_mut_ptr()));
    let bias = &bias[..];
    chunks.into_par_iter().for_each(|rows| {
        let (gates, cells, inputs, xs, yp) = (gates, cells, inputs, xs, yp);
        let (r0, nr) = (rows.start, rows.len());
        let mut g_scratch = if train {
            Vec::new()
        } else {
            vec![0.0f32; nr * 4 * h]
        };
        let mut c_scratch = if train {
            Vec::new()
        } else {
            vec![0.0f32; 2 * nr * h]
        };
        let mut u_scratch = if train {
            Vec::new()
        } else {
            vec![0.0f32; nr * k]
        };
        for t in 0..l {
            // SAFETY: rows r0..r0+nr of step t (or t-1) of buffers sized
            // above; chunks are disjoint.
            unsafe {
                let u: &mut [f32] = if train {
                    std::slice::from_raw_parts_mut(inputs.0.add((t * b + r0) * k), nr * k)
                } else {
                    &mut u_scratch
                };
                let xt = std::slice::from_raw_parts(xs.0.add((t * b + r0) * i), nr * i);
                for (r, row) in u.chunks_exact_mut(k).enumerate() {
                    row[..i].copy_from_slice(&xt[r * i..(r + 1) * i]);
                    if t > 0 {
                        let hp =
                            std::slice::from_raw_parts(yp.0.add(((t - 1) * b + r0 + r) * h), h);
                        row[i..].copy_from_slice(hp);
                    } else {
                        row[i..].fill(0.0);
                    }
                }
                let g: &mut [f32] = if train {
                    std::slice::from_raw_parts_mut(gates.0.add((t * b + r0) * 4 * h), nr * 4 * h)
                } else {
                    &mut g_scratch
                };
                rec.product(nr, 4 * h, k, g.as_mut_ptr(), u.as_ptr(), false, gt);
                let hout = std::slice::from_raw_parts_mut(yp.0.add((t * b + r0) * h), nr * h);
                let (cprev, c): (Option<&[f32]>, &mut [f32]) = if train {
                    let c = std::slice::from_raw_parts_mut(cells.0.add((t * b + r0) * h), nr * h);
                    let p = (t > 0).then(|| {
                        std::slice::from_raw_parts(cells.0.add(((t - 1) * b + r0) * h), nr * h)
                    });
                    (p, c)
                } else {
                    let (a, bb) = c_scratch.split_at_mut(nr * h);
                    let (prev, cur) = if t % 2 == 0 { (bb, a) } else { (a, bb) };
                    ((t > 0).then_some(&*prev), cur)
                };
                cell_forward(h, g, Some(bias), cprev, c, hout);
            }
        }
    });
}

/// Gradients of [`forward_fused`]: `dw_all [4H, I + H + 1]` and, when asked
/// for, `dx [L, B, I]`.
#[allow(clippy::too_many_arguments)]
pub fn backward_fused(
    d: Dims,
    w_all: &[f32],
    saved: &SavedFused,
    gy: &[f32],
    dw_all: &mut [f32],
    dx: Option<&mut [f32]>,
) {
    let Dims {
        steps: l,
        batch: b,
        hidden: h,
    } = d;
    let (k, i) = fused_sizes(w_all, h);
    assert_eq!(gy.len(), l * b * h, "grad of y is [L, B, H]");
    assert_eq!(saved.inputs.len(), l * b * k, "saved inputs");
    assert_eq!(saved.base.gates.len(), l * b * 4 * h, "saved gates");
    assert_eq!(dw_all.len(), w_all.len(), "dw_all is [4H, I + H + 1]");
    let threads = rayon::current_num_threads();
    // SAFETY: backward through time writes every step's gate gradients.
    let mut dg = unsafe { output_vec(l * b * 4 * h) };
    // w_hh is columns i..i+h of w_all.
    // SAFETY (of the view): w_all is [4H, K + 1] with K = I + H.
    let w_hh = View {
        ptr: unsafe { w_all.as_ptr().add(i) },
        rs: (k + 1) as isize,
        cs: 1,
    };
    bptt(d, w_hh, &saved.base, gy, &mut dg);
    // SAFETY: dg is [L*B, 4H], inputs [L*B, K], dw_all [4H, K + 1].
    unsafe {
        matmul_into(
            4 * h,
            k,
            l * b,
            dw_all.as_mut_ptr(),
            k + 1,
            View::t(dg.as_ptr(), 4 * h),
            View::rows(saved.inputs.as_ptr(), k),
            false,
            threads,
            crate::precision::current(),
        );
    }
    let mut db = vec![0.0f32; 4 * h];
    add_column_sums(&mut db, &dg);
    for (r, v) in db.into_iter().enumerate() {
        dw_all[r * (k + 1) + k] = v;
    }
    if let Some(dx) = dx {
        assert_eq!(dx.len(), l * b * i, "dx is [L, B, I]");
        // SAFETY: dg [L*B, 4H] @ w_ih (columns 0..i of w_all) -> [L*B, I].
        unsafe {
            matmul(
                l * b,
                i,
                4 * h,
                dx.as_mut_ptr(),
                View::rows(dg.as_ptr(), 4 * h),
                View {
                    ptr: w_all.as_ptr(),
                    rs: (k + 1) as isize,
                    cs: 1,
                },
                false,
                threads,
                crate::precision::current(),
            );
        }
    }
}

//! The fused GRU layer on raw f32 buffers, time-major, with PyTorch's
//! equations (gate order r, z, n; the reset gate applied after the
//! recurrent product, "reset-after"):
//!
//! ```text
//! r = σ(xp_r + hp_r)   z = σ(xp_z + hp_z)   n = tanh(xp_n + r * hp_n)
//! h' = (1 - z) * n + z * h        with hp = h @ w_hh^T + b_hh
//! ```
//!
//! `xp [L, B, 3H]` is the input projection with `b_ih` added (one GEMM by
//! the caller); `b_hh` stays inside because of the reset-after rule. The
//! state starts at zero. Threading and buffers as in [`crate::lstm`].

use crate::act::{sigmoid, tanh};
use crate::lstm::Dims;
use crate::mat::{matmul, output_vec, plan, SendConst, SendPtr, StepRhs, View};
use crate::packed::PackedLinear;
use crate::rows::add_column_sums;
use multiversion::multiversion;
use rayon::prelude::*;

/// What a training forward keeps: `[r, z, n, hp_n]` per row and step,
/// `[L, B, 4H]`.
#[derive(Default)]
pub struct Saved {
    pub acts: Vec<f32>,
}

/// Runs the layer. With `saved`, keeps what [`backward`] needs.
pub fn forward(
    d: Dims,
    xp: &[f32],
    w_hh: &[f32],
    b_hh: &[f32],
    y: &mut [f32],
    saved: Option<&mut Saved>,
) {
    let Dims {
        steps: l,
        batch: b,
        hidden: h,
    } = d;
    assert_eq!(xp.len(), l * b * 3 * h, "xp is [L, B, 3H]");
    assert_eq!(w_hh.len(), 3 * h * h, "w_hh is [3H, H]");
    assert_eq!(b_hh.len(), 3 * h, "b_hh is [3H]");
    assert_eq!(y.len(), l * b * h, "y is [L, B, H]");
    let threads = rayon::current_num_threads();
    // SAFETY: w_hh is [3H, H] (checked above) and outlives `rec`.
    let rec = unsafe {
        StepRhs::new(
            h,
            3 * h,
            View::t(w_hh.as_ptr(), h),
            plan(b, threads).0[0].len(),
            threads,
        )
    };
    recur(d, xp, &rec, b_hh, y, saved);
}

/// [`forward`] for inference against `w_hh` packed once beforehand
/// (`PackedLinear::new(w_hh, H, None)`) by the owner of a model that does
/// not change, for any batch; the sums as in
/// [`lstm::forward_packed`](crate::lstm::forward_packed).
pub fn forward_packed(d: Dims, xp: &[f32], w_hh: &PackedLinear, b_hh: &[f32], y: &mut [f32]) {
    let Dims {
        steps: l,
        batch: b,
        hidden: h,
    } = d;
    assert_eq!(xp.len(), l * b * 3 * h, "xp is [L, B, 3H]");
    assert_eq!(
        (w_hh.outputs(), w_hh.inputs()),
        (3 * h, h),
        "w_hh is [3H, H]"
    );
    assert_eq!(b_hh.len(), 3 * h, "b_hh is [3H]");
    assert_eq!(y.len(), l * b * h, "y is [L, B, H]");
    recur(d, xp, &StepRhs::Shared(w_hh), b_hh, y, None);
}

/// The time loop of [`forward`] with its recurrent product.
fn recur(
    d: Dims,
    xp: &[f32],
    rec: &StepRhs,
    b_hh: &[f32],
    y: &mut [f32],
    saved: Option<&mut Saved>,
) {
    let Dims {
        steps: l,
        batch: b,
        hidden: h,
    } = d;
    let acts = match saved {
        Some(s) => {
            // SAFETY: every step's cell pass writes its rows.
            s.acts = unsafe { output_vec(l * b * 4 * h) };
            Some(SendPtr(s.acts.as_mut_ptr()))
        }
        None => None,
    };
    let (chunks, gt) = plan(b, rayon::current_num_threads());
    let (xp, yp) = (SendConst(xp.as_ptr()), SendPtr(y.as_mut_ptr()));
    chunks.into_par_iter().for_each(|rows| {
        let (acts, xp, yp) = (acts, xp, yp);
        let (r0, nr) = (rows.start, rows.len());
        let mut hp = vec![0.0f32; nr * 3 * h];
        let mut scratch = if acts.is_none() {
            vec![0.0f32; nr * 4 * h]
        } else {
            Vec::new()
        };
        let zeros = vec![0.0f32; nr * h];
        for t in 0..l {
            // SAFETY: rows r0..r0+nr of step t (or t-1) of buffers checked
            // above; chunks are disjoint.
            unsafe {
                for row in hp.chunks_exact_mut(3 * h) {
                    row.copy_from_slice(b_hh);
                }
                let hprev: &[f32] = if t > 0 {
                    let p = yp.0.add(((t - 1) * b + r0) * h) as *const f32;
                    rec.product(nr, 3 * h, h, hp.as_mut_ptr(), p, true, gt);
                    std::slice::from_raw_parts(p, nr * h)
                } else {
                    &zeros
                };
                let xpt = std::slice::from_raw_parts(xp.0.add((t * b + r0) * 3 * h), nr * 3 * h);
                let keep: &mut [f32] = match acts {
                    Some(a) => {
                        std::slice::from_raw_parts_mut(a.0.add((t * b + r0) * 4 * h), nr * 4 * h)
                    }
                    None => &mut scratch,
                };
                let hout = std::slice::from_raw_parts_mut(yp.0.add((t * b + r0) * h), nr * h);
                cell_forward(h, xpt, &hp, hprev, keep, hout);
            }
        }
    });
}

#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma", "aarch64+neon"))]
fn cell_forward(
    h: usize,
    xp: &[f32],
    hp: &[f32],
    hprev: &[f32],
    keep: &mut [f32],
    hout: &mut [f32],
) {
    let nr = hout.len() / h;
    for r in 0..nr {
        let x = &xp[r * 3 * h..(r + 1) * 3 * h];
        let p = &hp[r * 3 * h..(r + 1) * 3 * h];
        let k = &mut keep[r * 4 * h..(r + 1) * 4 * h];
        let (kr, rest) = k.split_at_mut(h);
        let (kz, rest) = rest.split_at_mut(h);
        let (kn, khn) = rest.split_at_mut(h);
        // Every slice re-cut to exactly h so the loop vectorises.
        let (kr, kz, kn, khn) = (&mut kr[..h], &mut kz[..h], &mut kn[..h], &mut khn[..h]);
        let hp_r = &hprev[r * h..][..h];
        let ho = &mut hout[r * h..][..h];
        let (xr, xz, xn) = (&x[..h], &x[h..][..h], &x[2 * h..][..h]);
        let (pr, pz, pn) = (&p[..h], &p[h..][..h], &p[2 * h..][..h]);
        row_forward(xr, xz, xn, pr, pz, pn, hp_r, kr, kz, kn, khn, ho);
    }
}

/// One row of [`cell_forward`]: separate `&mut` parameters tell the
/// compiler the slices do not overlap, so the loop vectorises.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn row_forward(
    xr: &[f32],
    xz: &[f32],
    xn: &[f32],
    pr: &[f32],
    pz: &[f32],
    pn: &[f32],
    hprev: &[f32],
    kr: &mut [f32],
    kz: &mut [f32],
    kn: &mut [f32],
    khn: &mut [f32],
    hout: &mut [f32],
) {
    let h = hout.len();
    let (xr, xz, xn, pr, pz, pn, hprev) = (
        &xr[..h],
        &xz[..h],
        &xn[..h],
        &pr[..h],
        &pz[..h],
        &pn[..h],
        &hprev[..h],
    );
    let (kr, kz, kn, khn) = (&mut kr[..h], &mut kz[..h], &mut kn[..h], &mut khn[..h]);
    for j in 0..h {
        let rv = sigmoid(xr[j] + pr[j]);
        let zv = sigmoid(xz[j] + pz[j]);
        let nv = tanh(xn[j] + rv * pn[j]);
        kr[j] = rv;
        kz[j] = zv;
        kn[j] = nv;
        khn[j] = pn[j];
        hout[j] = (1.0 - zv) * nv + zv * hprev[j];
    }
}

/// Gradients of one layer: `dxp [L, B, 3H]` (also `b_ih`'s, summed over
/// rows and steps), `dw_hh [3H, H]` and `db_hh [3H]`.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    d: Dims,
    w_hh: &[f32],
    y: &[f32],
    saved: &Saved,
    gy: &[f32],
    dxp: &mut [f32],
    dw_hh: &mut [f32],
    db_hh: &mut [f32],
) {
    let Dims {
        steps: l,
        batch: b,
        hidden: h,
    } = d;
    assert_eq!(w_hh.len(), 3 * h * h, "w_hh is [3H, H]");
    assert_eq!(y.len(), l * b * h, "y is [L, B, H]");
    assert_eq!(gy.len(), l * b * h, "grad of y is [L, B, H]");
    assert_eq!(saved.acts.len(), l * b * 4 * h, "saved activations");
    assert_eq!(dxp.len(), l * b * 3 * h, "dxp is [L, B, 3H]");
    assert_eq!(dw_hh.len(), 3 * h * h, "dw_hh is [3H, H]");
    assert_eq!(db_hh.len(), 3 * h, "db_hh is [3H]");
    let threads = rayon::current_num_threads();
    let (chunks, gt) = plan(b, threads);
    // SAFETY: w_hh is [3H, H] (checked above) and outlives `rec`.
    let rec = unsafe {
        StepRhs::new(
            3 * h,
            h,
            View::rows(w_hh.as_ptr(), h),
            chunks[0].len(),
            threads,
        )
    };
    let rec = &rec;
    // The gradient of hp (the recurrent pre-activations), kept for dW_hh.
    // SAFETY: every step's cell pass writes its rows.
    let mut dhp = unsafe { output_vec(l * b * 3 * h) };
    let (acts, yp, gyp, dx, dp) = (
        SendConst(saved.acts.as_ptr()),
        SendConst(y.as_ptr()),
        SendConst(gy.as_ptr()),
        SendPtr(dxp.as_mut_ptr()),
        SendPtr(dhp.as_mut_ptr()),
    );
    chunks.into_par_iter().for_each(|rows| {
        let (acts, yp, gyp, dx, dp) = (acts, yp, gyp, dx, dp);
        let (r0, nr) = (rows.start, rows.len());
        let mut dh_rec = vec![0.0f32; nr * h];
        let zeros = vec![0.0f32; nr * h];
        for t in (0..l).rev() {
            // SAFETY: rows r0..r0+nr of step t (or t-1) of buffers checked
            // above; each chunk writes only its own rows.
            unsafe {
                let at = |p: *const f32, width: usize, t: usize| {
                    std::slice::from_raw_parts(p.add((t * b + r0) * width), nr * width)
                };
                let a = at(acts.0, 4 * h, t);
                let hprev = if t > 0 { at(yp.0, h, t - 1) } else { &zeros };
                let gyt = at(gyp.0, h, t);
                let dxt =
                    std::slice::from_raw_parts_mut(dx.0.add((t * b + r0) * 3 * h), nr * 3 * h);
                let dpt =
                    std::slice::from_raw_parts_mut(dp.0.add((t * b + r0) * 3 * h), nr * 3 * h);
                // dh_rec comes in as step t+1's recurrent gradient (zero at
                // the last step) and leaves holding z * dh.
                cell_backward(h, a, hprev, gyt, &mut dh_rec, dxt, dpt);
                if t > 0 {
                    rec.product(nr, h, 3 * h, dh_rec.as_mut_ptr(), dpt.as_ptr(), true, gt);
                }
            }
        }
    });
    // SAFETY: dhp rows B.. and y rows ..(L-1)B exist; dw_hh is [3H, H].
    // With one step or none, K is 0 and nothing is read: the offset may
    // then lie past the buffer, so it is `wrapping_add`, not `add`.
    unsafe {
        matmul(
            3 * h,
            h,
            l.saturating_sub(1) * b,
            dw_hh.as_mut_ptr(),
            View::t(dhp.as_ptr().wrapping_add(b * 3 * h), 3 * h),
            View::rows(y.as_ptr(), h),
            false,
            threads,
            crate::precision::current(),
        );
    }
    db_hh.fill(0.0);
    add_column_sums(db_hh, &dhp);
}

#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma", "aarch64+neon"))]
fn cell_backward(
    h: usize,
    acts: &[f32],
    hprev: &[f32],
    gy: &[f32],
    dh_rec: &mut [f32],
    dxp: &mut [f32],
    dhp: &mut [f32],
) {
    let nr = gy.len() / h;
    for r in 0..nr {
        let a = &acts[r * 4 * h..(r + 1) * 4 * h];
        let (ar, az, an, ahn) = (&a[..h], &a[h..][..h], &a[2 * h..][..h], &a[3 * h..][..h]);
        let hp = &hprev[r * h..][..h];
        let g = &gy[r * h..][..h];
        let rec = &mut dh_rec[r * h..][..h];
        let dx = &mut dxp[r * 3 * h..(r + 1) * 3 * h];
        let (dxr, rest) = dx.split_at_mut(h);
        let (dxz, dxn) = rest.split_at_mut(h);
        let dp = &mut dhp[r * 3 * h..(r + 1) * 3 * h];
        let (dpr, rest) = dp.split_at_mut(h);
        let (dpz, dpn) = rest.split_at_mut(h);
        let (dxr, dxz, dxn) = (&mut dxr[..h], &mut dxz[..h], &mut dxn[..h]);
        let (dpr, dpz, dpn) = (&mut dpr[..h], &mut dpz[..h], &mut dpn[..h]);
        row_backward(ar, az, an, ahn, hp, g, rec, dxr, dxz, dxn, dpr, dpz, dpn);
    }
}

/// One row of [`cell_backward`], separate parameters as in [`row_forward`].
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn row_backward(
    ar: &[f32],
    az: &[f32],
    an: &[f32],
    ahn: &[f32],
    hprev: &[f32],
    gy: &[f32],
    rec: &mut [f32],
    dxr: &mut [f32],
    dxz: &mut [f32],
    dxn: &mut [f32],
    dpr: &mut [f32],
    dpz: &mut [f32],
    dpn: &mut [f32],
) {
    let h = rec.len();
    let (ar, az, an, ahn, hprev, gy) = (
        &ar[..h],
        &az[..h],
        &an[..h],
        &ahn[..h],
        &hprev[..h],
        &gy[..h],
    );
    let (dxr, dxz, dxn) = (&mut dxr[..h], &mut dxz[..h], &mut dxn[..h]);
    let (dpr, dpz, dpn) = (&mut dpr[..h], &mut dpz[..h], &mut dpn[..h]);
    for j in 0..h {
        let dh = gy[j] + rec[j];
        let (rv, zv, nv, hn) = (ar[j], az[j], an[j], ahn[j]);
        let dnp = dh * (1.0 - zv) * (1.0 - nv * nv);
        let drp = dnp * hn * rv * (1.0 - rv);
        let dzp = dh * (hprev[j] - nv) * zv * (1.0 - zv);
        dxr[j] = drp;
        dxz[j] = dzp;
        dxn[j] = dnp;
        dpr[j] = drp;
        dpz[j] = dzp;
        dpn[j] = dnp * rv;
        rec[j] = dh * zv;
    }
}

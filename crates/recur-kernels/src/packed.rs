//! A `Linear` weight packed once for inference, and the product against
//! it. The general GEMM (`gemm` crate) packs its right-hand side on every
//! call; for the few rows of a batch-1 sentence that packing cost more
//! than the multiply itself (37% against 31% of a MiniLM forward, `perf`).
//! Weights never change while an encoder serves, so they are laid out once
//! in the order the micro-kernel reads them.
//!
//! Layout: `W [n, k]` (PyTorch's) becomes panels of [`NR`] output columns,
//! each `[k][NR]` contiguous, the last one zero-padded. The micro-kernel
//! keeps an `MR x NR` block of the output in registers (6 x 16: twelve
//! AVX2 vectors, six AVX-512 ones) and streams a panel against six rows of
//! the input; it is plain Rust over fixed-size arrays, compiled per SIMD
//! level by `multiversion` and picked at run time. Blocks of [`KC`] inner
//! steps keep a panel's slice in L1 and [`MC`] rows keep the input block in
//! L2.

use crate::mat::{SendConst, SendPtr};
use multiversion::multiversion;
use rayon::prelude::*;

/// Output columns per panel.
pub const NR: usize = 16;
/// Input rows per micro-kernel call.
const MR: usize = 6;
/// Inner-dimension block: a panel slice of KC x NR floats is 16 KiB.
const KC: usize = 256;
/// Row block.
const MC: usize = 96;

/// `W [n, k]` in panels, with its bias.
pub struct PackedLinear {
    n: usize,
    k: usize,
    panels: Vec<f32>,
    bias: Option<Vec<f32>>,
}

impl PackedLinear {
    /// Packs `w [n, k]` (row-major, PyTorch's layout) and `b [n]`.
    pub fn new(w: &[f32], k: usize, bias: Option<&[f32]>) -> PackedLinear {
        assert!(
            k > 0 && w.len().is_multiple_of(k),
            "w is [n, {k}], got {} values",
            w.len()
        );
        let n = w.len() / k;
        if let Some(b) = bias {
            assert_eq!(b.len(), n, "b is [{n}]");
        }
        let np = n.div_ceil(NR);
        let mut panels = vec![0f32; np * k * NR];
        for (j, row) in w.chunks_exact(k).enumerate() {
            let (p, c) = (j / NR, j % NR);
            let panel = &mut panels[p * k * NR..(p + 1) * k * NR];
            for (t, &v) in row.iter().enumerate() {
                panel[t * NR + c] = v;
            }
        }
        PackedLinear {
            n,
            k,
            panels,
            bias: bias.map(<[f32]>::to_vec),
        }
    }

    /// Output columns.
    pub fn outputs(&self) -> usize {
        self.n
    }

    /// Input columns.
    pub fn inputs(&self) -> usize {
        self.k
    }

    /// `y [m, n] = x [m, k] @ W^T + b`, panels split over `threads`.
    pub fn forward(&self, x: &[f32], y: &mut [f32], threads: usize) {
        let (n, k) = (self.n, self.k);
        assert_eq!(x.len() % k, 0, "x is [m, {k}], got {} values", x.len());
        let m = x.len() / k;
        assert_eq!(y.len(), m * n, "y is [{m}, {n}]");
        if m == 0 {
            return;
        }
        let np = n.div_ceil(NR);
        let parts = if threads > 1 && m * n * k >= 1 << 18 {
            threads.min(np)
        } else {
            1
        };
        let (xp, yp) = (SendConst(x.as_ptr()), SendPtr(y.as_mut_ptr()));
        let run = |part: usize| {
            let (xp, yp) = (xp, yp);
            let panels = np * part / parts..np * (part + 1) / parts;
            // SAFETY: x is [m, k] and y [m, n] (checked above); this part
            // writes only the columns of its own panels.
            let (x, y) = unsafe {
                (
                    std::slice::from_raw_parts(xp.0, m * k),
                    std::slice::from_raw_parts_mut(yp.0, m * n),
                )
            };
            self.run_panels(x, m, y, panels);
        };
        if parts == 1 {
            run(0);
        } else {
            (0..parts).into_par_iter().for_each(run);
        }
    }

    fn run_panels(&self, x: &[f32], m: usize, y: &mut [f32], panels: std::ops::Range<usize>) {
        let (n, k) = (self.n, self.k);
        for m0 in (0..m).step_by(MC) {
            let m1 = (m0 + MC).min(m);
            for p in panels.clone() {
                let c0 = p * NR;
                let cols = NR.min(n - c0);
                let panel = &self.panels[p * k * NR..(p + 1) * k * NR];
                for k0 in (0..k).step_by(KC) {
                    let k1 = (k0 + KC).min(k);
                    let mut r = m0;
                    while r < m1 {
                        let rows = MR.min(m1 - r);
                        block(
                            x,
                            k,
                            r,
                            rows,
                            k0..k1,
                            &panel[k0 * NR..k1 * NR],
                            y,
                            n,
                            c0,
                            cols,
                            (k0 == 0).then_some(self.bias.as_deref()),
                        );
                        r += rows;
                    }
                }
            }
        }
    }
}

/// One `rows x cols` block of `y` (at row `r`, column `c0`): `y (+)= x[r..,
/// ks] @ panel`. `first` is `Some(bias)` on the first inner block, which
/// overwrites `y` (with the bias, or zero) instead of adding to it.
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma", "aarch64+neon"))]
#[allow(clippy::too_many_arguments)]
fn block(
    x: &[f32],
    k: usize,
    r: usize,
    rows: usize,
    ks: std::ops::Range<usize>,
    panel: &[f32],
    y: &mut [f32],
    n: usize,
    c0: usize,
    cols: usize,
    first: Option<Option<&[f32]>>,
) {
    let mut acc = [[0f32; NR]; MR];
    let kc = ks.len();
    match rows {
        6 => micro::<6>(x, k, r, ks.start, kc, panel, &mut acc),
        5 => micro::<5>(x, k, r, ks.start, kc, panel, &mut acc),
        4 => micro::<4>(x, k, r, ks.start, kc, panel, &mut acc),
        3 => micro::<3>(x, k, r, ks.start, kc, panel, &mut acc),
        2 => micro::<2>(x, k, r, ks.start, kc, panel, &mut acc),
        _ => micro::<1>(x, k, r, ks.start, kc, panel, &mut acc),
    }
    for (i, a) in acc.iter().enumerate().take(rows) {
        let out = &mut y[(r + i) * n + c0..][..cols];
        match first {
            Some(Some(b)) => {
                for ((o, v), bb) in out.iter_mut().zip(a).zip(&b[c0..c0 + cols]) {
                    *o = v + bb;
                }
            }
            Some(None) => out.copy_from_slice(&a[..cols]),
            None => {
                for (o, v) in out.iter_mut().zip(a) {
                    *o += v;
                }
            }
        }
    }
}

/// The register block: `M` input rows against a panel slice of `kc` steps.
#[inline(always)]
fn micro<const M: usize>(
    x: &[f32],
    k: usize,
    r: usize,
    k0: usize,
    kc: usize,
    panel: &[f32],
    acc: &mut [[f32; NR]; MR],
) {
    let rows: [&[f32]; M] = std::array::from_fn(|i| &x[(r + i) * k + k0..][..kc]);
    let panel = &panel[..kc * NR];
    let mut a = [[0f32; NR]; M];
    for (t, b) in panel.chunks_exact(NR).enumerate() {
        let b: &[f32; NR] = b.try_into().expect("NR values");
        for i in 0..M {
            // SAFETY: t < kc, the length of every row slice.
            let xv = unsafe { *rows[i].get_unchecked(t) };
            for j in 0..NR {
                a[i][j] = xv.mul_add(b[j], a[i][j]);
            }
        }
    }
    acc[..M].copy_from_slice(&a);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every row-block size, column tails and inner blocks past KC, with
    /// and without bias, on one and two threads, against a plain product.
    #[test]
    fn packed_products_match_a_plain_one() {
        let val = |i: usize| ((i * 7919 % 101) as f32 - 50.0) / 50.0;
        for (m, n, k) in [(1, 5, 3), (7, 37, 19), (13, 48, 300), (100, 33, 520)] {
            let x: Vec<f32> = (0..m * k).map(val).collect();
            let w: Vec<f32> = (0..n * k).map(|i| val(i + 7)).collect();
            let b: Vec<f32> = (0..n).map(|i| val(i + 3)).collect();
            for bias in [None, Some(&b[..])] {
                let p = PackedLinear::new(&w, k, bias);
                assert_eq!((p.outputs(), p.inputs()), (n, k));
                for threads in [1, 2] {
                    let mut y = vec![f32::NAN; m * n];
                    p.forward(&x, &mut y, threads);
                    for r in 0..m {
                        for c in 0..n {
                            let want = (0..k).map(|t| x[r * k + t] * w[c * k + t]).sum::<f32>()
                                + bias.map_or(0.0, |b| b[c]);
                            let got = y[r * n + c];
                            assert!(
                                (got - want).abs() < 1e-3,
                                "{m}x{n}x{k} ({r}, {c}): {got} vs {want}"
                            );
                        }
                    }
                }
            }
        }
    }
}

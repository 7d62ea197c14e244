//! The LSTM's inference forward on AVX-512, each tile of a step's product
//! finished by its cell update while it is in registers.
//!
//! [`lstm::forward_fused`](crate::lstm::forward_fused) multiplies a whole
//! step (`[B, I + H] x [I + H, 4H]` by the `gemm` crate: 512 x 80 x 256
//! for the rainfall classifier), writes the `[B, 4H]` gates out, and a
//! second pass reads them back for the cell; the two were 50% and 42% of
//! that model's inference (`perf`, one thread). Here the weight is
//! regrouped once per call so that one 64-column panel holds the four gates
//! (i, f, g, o) of 16 hidden units: a register tile of 6 rows x 64 columns
//! is then all that a cell update of those rows and units needs, and it
//! runs on the sums as they leave the multiply-adds (the activations on
//! [`F32x16`], the tile's rows side by side). No gate is stored, the
//! inputs are read in place (no `[x_t | h_{t-1}]` copy), and the first
//! step skips the product with the zero state. The arithmetic is the
//! same; what goes is the traffic between the product and the cell pass,
//! and the copies. The layer with its input
//! projected beforehand ([`lstm::forward`](crate::lstm::forward): wider
//! inputs than half the hidden size) runs the same tiles over `h_{t-1}`
//! alone and adds the projection's row.
//!
//! Batch-1 inference of the fused layer takes the same path (a one-row
//! tile): 0.044 against 0.090 ms for the rainfall classifier's batch-1
//! forward through the dot-product path of `mat` (`recur bench lstm
//! --workload w1`, one thread). The projected layer keeps that path up to
//! six rows, where packing its larger weight would cost more.
//!
//! The numbers: every sum starts at zero and adds the products in the
//! order of `k` (inputs, then the state), one fused multiply-add each, as
//! the `gemm` crate's and recur's packed micro-kernels do for `k` up to
//! [`KC`] (see [`takes`]); the bias or the projection is added after, as
//! the training forward's cell pass adds it; the cell is
//! [`lstm::cell`](crate::lstm) on lanes whose every operation is the
//! scalar one's ([`crate::lanes`]). Skipping the zero state is exact: a
//! sum that starts at +0 never becomes -0 in round-to-nearest, and adding
//! ±0 to anything else leaves it as it is. So the training forward gives
//! the same bits for any batch over six rows (below that it multiplies by
//! dot products, summed in another order), and a row's hidden states here
//! do not depend on the batch it came in or the thread count: the tests
//! hold it to both.

#[cfg(target_arch = "x86_64")]
use crate::lanes::{F32x16, Rows};
#[cfg(target_arch = "x86_64")]
use crate::lstm::cell;
use crate::lstm::Dims;
use crate::mat::{plan, SendConst, SendPtr};
use crate::packed::KC;
use rayon::prelude::*;

/// Hidden units per panel (one AVX-512 register of each gate).
const UNITS: usize = 16;
/// Panel width: the four gates of [`UNITS`] units.
const COLS: usize = 4 * UNITS;
/// Rows per register tile: 6 x 4 sums, 4 weight vectors and a broadcast
/// in the 32 registers.
const ROWS: usize = 6;

/// Whether the tiles run a layer whose products sum over `k` inputs
/// (`I + H` in the fused layer, `H` in the other): on AVX-512F (as the
/// packed kernels), for f32 products (the bf16 path keeps its own
/// kernels), and for `k` up to [`KC`], within which both the packed
/// kernel and the `gemm` crate (up to 512) sum over `k` in one chain, as
/// the tiles do; beyond it they add block sums, and their bits would
/// differ. Larger layers (the LVMs' 512 units) also run faster on the
/// packed products: a unit block's panel outgrows L1, and packing it costs
/// more than their few steps gain (`RECUR_NO_TILE=1` for A/B timing).
pub(crate) fn takes(k: usize) -> bool {
    use std::sync::OnceLock;
    static OFF: OnceLock<bool> = OnceLock::new();
    k <= KC
        && crate::packed::wide()
        && tile_features()
        && crate::precision::current() == crate::precision::Precision::F32
        && !*OFF.get_or_init(|| crate::turned_off("RECUR_NO_TILE"))
}

/// Whether this CPU has every feature [`tile`] is compiled with beyond the
/// AVX-512F that [`crate::packed::wide`] checks: AVX-512VL is not implied
/// by it (the first AVX-512 CPUs, Knights Landing, lack it).
fn tile_features() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static HAS: OnceLock<bool> = OnceLock::new();
        *HAS.get_or_init(|| {
            is_x86_feature_detected!("avx512vl")
                && is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("fma")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `w_all [4H, K + 1]` regrouped: per block of [`UNITS`] hidden units,
/// `[K][COLS]` with column `q * UNITS + l` holding gate `q` of unit
/// `block * UNITS + l`, and the bias as `[COLS]`; units past H are zeros.
struct GatePanels {
    k: usize,
    panels: Vec<f32>,
    bias: Vec<f32>,
}

impl GatePanels {
    /// From the `4H` gate rows of `w`, `stride` apart: their first `k`
    /// values, and the bias from the value after them where `bias`.
    fn new(w: &[f32], h: usize, k: usize, stride: usize, bias: bool) -> GatePanels {
        let blocks = h.div_ceil(UNITS);
        let mut panels = vec![0f32; blocks * k * COLS];
        let mut bias_cols = vec![0f32; blocks * COLS];
        for u in 0..blocks {
            for q in 0..4 {
                for l in 0..UNITS.min(h - u * UNITS) {
                    let row = &w[(q * h + u * UNITS + l) * stride..][..k + usize::from(bias)];
                    let col = q * UNITS + l;
                    for (t, &v) in row[..k].iter().enumerate() {
                        panels[(u * k + t) * COLS + col] = v;
                    }
                    if bias {
                        bias_cols[u * COLS + col] = row[k];
                    }
                }
            }
        }
        GatePanels {
            k,
            panels,
            bias: bias_cols,
        }
    }

    fn panel(&self, u: usize) -> &[f32] {
        &self.panels[u * self.k * COLS..][..self.k * COLS]
    }

    fn bias(&self, u: usize) -> &[f32; COLS] {
        self.bias[u * COLS..][..COLS]
            .try_into()
            .expect("COLS values")
    }
}

/// The input-fused layer without saved state: `x [L, B, i]` (or `[B, L,
/// i]` where `batch_major`: the model's input as it comes, read in place
/// without the transposed copy), `w_all [4H, i + H + 1]` -> every hidden
/// state `y [L, B, H]` (or, where `last`, the last step's `[B, H]` alone:
/// the others stay in two buffers of the thread's rows), as
/// [`lstm::forward_fused`](crate::lstm::forward_fused) computes them. The
/// caller checks [`takes`] and the sizes.
pub(crate) fn forward(
    d: Dims,
    i: usize,
    x: &[f32],
    batch_major: bool,
    w_all: &[f32],
    y: &mut [f32],
    last: bool,
) {
    let (l, b, h) = (d.steps, d.batch, d.hidden);
    let k = i + h;
    debug_assert_eq!(
        (x.len(), w_all.len(), y.len()),
        (
            l * b * i,
            4 * h * (k + 1),
            if last { b * h } else { l * b * h }
        )
    );
    let p = GatePanels::new(w_all, h, k, k + 1, true);
    run(d, Input::X { i, x, batch_major }, &p, y, last);
}

/// The layer of [`lstm::forward`](crate::lstm::forward) without saved
/// state: `xp [L, B, 4H]` (the input projection with both biases),
/// `w_hh [4H, H]` -> `y [L, B, H]`. The caller checks [`takes`] and the
/// sizes.
pub(crate) fn forward_projected(d: Dims, xp: &[f32], w_hh: &[f32], y: &mut [f32]) {
    let h = d.hidden;
    debug_assert_eq!(
        (xp.len(), w_hh.len(), y.len()),
        (d.steps * d.batch * 4 * h, 4 * h * h, d.steps * d.batch * h)
    );
    let p = GatePanels::new(w_hh, h, h, h, false);
    run(d, Input::Projected(xp), &p, y, false);
}

/// What a step adds to the recurrent product: the input's `i` columns
/// (time-major `[L, B, i]`, or batch-major `[B, L, i]`), summed in the
/// same tile before the state's, then the bias (the fused layer); or the
/// precomputed projection `[L, B, 4H]`, added after.
#[derive(Clone, Copy)]
enum Input<'a> {
    X {
        i: usize,
        x: &'a [f32],
        batch_major: bool,
    },
    Projected(&'a [f32]),
}

/// Both layers: the batch in one chunk of rows per thread, each running
/// every step over its rows, unit block by unit block (a block's panel
/// stays in L1 across the row tiles). `y` is every step's `[L, B, H]`, or
/// where `last` the last step's `[B, H]`.
fn run(d: Dims, input: Input, p: &GatePanels, y: &mut [f32], last: bool) {
    let (l, b, h) = (d.steps, d.batch, d.hidden);
    let (chunks, _) = plan(b, rayon::current_num_threads());
    // Columns of x_t read in the tile, columns per row of the input, the
    // input, whether it is the projection, and whether batch-major.
    let (i, width, src, projected, batch_major) = match input {
        Input::X { i, x, batch_major } => (i, i, x, false, batch_major),
        Input::Projected(xp) => (0, 4 * h, xp, true, false),
    };
    // The distance between two rows of one step's input.
    let x_stride = if batch_major { l * width } else { width };
    let (xs, yp) = (SendConst(src.as_ptr()), SendPtr(y.as_mut_ptr()));
    chunks.into_par_iter().for_each(|rows| {
        let (xs, yp) = (xs, yp);
        let nr = rows.len();
        // This chunk's cells, the previous step's and this one's; where
        // `last`, its hidden states likewise.
        let mut cells = vec![0f32; 2 * nr * h];
        let mut states = vec![0f32; if last { 2 * nr * h } else { 0 }];
        let sp = SendPtr(states.as_mut_ptr());
        // Where step t's hidden state of the chunk's first row goes.
        let hrow = |t: usize| -> *mut f32 {
            // SAFETY: within `states` (two halves of nr * h) or y, as the
            // callers checked.
            unsafe {
                match (last, t + 1 == l) {
                    (false, _) => yp.0.add((t * b + rows.start) * h),
                    (true, true) => yp.0.add(rows.start * h),
                    (true, false) => sp.0.add((t % 2) * nr * h),
                }
            }
        };
        for t in 0..l {
            let (a, bb) = cells.split_at_mut(nr * h);
            let (cprev, c) = if t % 2 == 0 { (bb, a) } else { (a, bb) };
            // SAFETY: rows of step t (and t-1) of the input ([L, B, width],
            // or [B, L, width]) and the hidden states, as the callers
            // checked; chunks are disjoint, and step t only reads step
            // t-1's rows of the states, which are elsewhere than its own.
            let step = unsafe {
                let src = if batch_major {
                    xs.0.add((rows.start * l + t) * width)
                } else {
                    xs.0.add((t * b + rows.start) * width)
                };
                Step {
                    i,
                    x_stride,
                    h,
                    x: src,
                    xp: projected.then_some(src),
                    hprev: (t > 0).then(|| hrow(t - 1) as *const f32),
                    cprev: (t > 0).then_some(cprev.as_ptr()),
                    c: c.as_mut_ptr(),
                    hout: hrow(t),
                }
            };
            for u in 0..h.div_ceil(UNITS) {
                for r in (0..nr).step_by(ROWS) {
                    // SAFETY: wide() (in `takes`) checked the CPU; the
                    // pointers cover rows r..r + ROWS of this chunk.
                    unsafe {
                        match nr - r {
                            1 => tile::<1>(&step, p, u, r),
                            2 => tile::<2>(&step, p, u, r),
                            3 => tile::<3>(&step, p, u, r),
                            4 => tile::<4>(&step, p, u, r),
                            5 => tile::<5>(&step, p, u, r),
                            _ => tile::<ROWS>(&step, p, u, r),
                        }
                    }
                }
            }
        }
    });
}

/// One step of one chunk of rows: where its inputs are and its outputs go
/// (row-major; the cells of the chunk's rows). `x` has `i` columns (none
/// in the projected layer), its rows `x_stride` apart; `xp` the projected
/// layer's `4h` gate inputs.
struct Step {
    i: usize,
    x_stride: usize,
    h: usize,
    x: *const f32,
    xp: Option<*const f32>,
    hprev: Option<*const f32>,
    cprev: Option<*const f32>,
    c: *mut f32,
    hout: *mut f32,
}

/// Rows `r..r + M` of a step, hidden units of block `u`: the gate sums in
/// registers, then the cell update of each row.
///
/// # Safety
/// The CPU must have AVX-512F; `s` must describe valid rows `r..r + M`
/// that no other thread touches.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
unsafe fn tile<const M: usize>(s: &Step, p: &GatePanels, u: usize, r: usize) {
    use std::arch::x86_64::*;
    let (i, h) = (s.i, s.h);
    let panel = p.panel(u).as_ptr();
    let mut acc = [[_mm512_setzero_ps(); 4]; M];
    // The sums over k in order: x_t's columns, then h_{t-1}'s (none at the
    // first step, where the state is zero).
    let sweeps = [
        (s.x, s.x_stride, 0, i),
        (
            s.hprev.unwrap_or(s.x),
            h,
            i,
            if s.hprev.is_some() { h } else { 0 },
        ),
    ];
    for (lhs, stride, k0, n) in sweeps {
        for t in 0..n {
            let w = panel.add((k0 + t) * COLS);
            let wv = [
                _mm512_loadu_ps(w),
                _mm512_loadu_ps(w.add(UNITS)),
                _mm512_loadu_ps(w.add(2 * UNITS)),
                _mm512_loadu_ps(w.add(3 * UNITS)),
            ];
            for (row, a) in acc.iter_mut().enumerate() {
                let xv = _mm512_set1_ps(*lhs.add((r + row) * stride + t));
                for q in 0..4 {
                    a[q] = _mm512_fmadd_ps(xv, wv[q], a[q]);
                }
            }
        }
    }
    let bias = p.bias(u).as_ptr();
    let (u0, n) = (u * UNITS, UNITS.min(h - u * UNITS));
    let mask = ((1u32 << n) - 1) as __mmask16;
    // The gates as the training forward's cell pass has them: the sums
    // plus the bias, or plus the row's projection (the projection itself
    // at the first step, where there is no product); gate q of every row
    // in g[q].
    let zero = F32x16(_mm512_setzero_ps());
    let mut g = [Rows([zero; M]); 4];
    let mut cprev = s.cprev.map(|_| Rows([zero; M]));
    for (row, a) in acc.iter().enumerate() {
        for q in 0..4 {
            g[q].0[row] = match s.xp {
                None => F32x16(_mm512_add_ps(a[q], _mm512_loadu_ps(bias.add(q * UNITS)))),
                Some(xp) => {
                    let v = _mm512_maskz_loadu_ps(mask, xp.add((r + row) * 4 * h + q * h + u0));
                    F32x16(if s.hprev.is_some() {
                        _mm512_add_ps(a[q], v)
                    } else {
                        v
                    })
                }
            };
        }
        if let (Some(cp), Some(c)) = (s.cprev, cprev.as_mut()) {
            c.0[row] = F32x16(_mm512_maskz_loadu_ps(mask, cp.add((r + row) * h + u0)));
        }
    }
    // Every row's cell in one pass, each operation of the activations on
    // the M rows side by side ([`Rows`]): M independent chains for the
    // out-of-order core to overlap, where one row's cell alone is a single
    // chain of some 140 dependent operations. The rainfall layer's batch of
    // 512 went from 6.85 to 5.95 ms (`examples/w1_probe`), same bits.
    let [_, _, _, _, cv, hv] = cell(g[0], g[1], g[2], g[3], cprev);
    for row in 0..M {
        let at = (r + row) * h + u0;
        _mm512_mask_storeu_ps(s.c.add(at), mask, cv.0[row].0);
        _mm512_mask_storeu_ps(s.hout.add(at), mask, hv.0[row].0);
    }
}

/// Stand-in so that the module compiles where there is no AVX-512 (never
/// called: `takes` is false there).
#[cfg(not(target_arch = "x86_64"))]
unsafe fn tile<const M: usize>(_: &Step, _: &GatePanels, _: usize, _: usize) {
    unreachable!("the LSTM tiles need AVX-512")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lstm::{forward_fused, SavedFused};

    /// Whether the tiles run here. Where the CPU has AVX-512F and VL they
    /// must (unless an A/B switch turns them off); elsewhere the inference
    /// forward is the training one, and there is nothing to compare.
    fn tiles_run() -> bool {
        #[cfg(target_arch = "x86_64")]
        let cpu = is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512vl");
        #[cfg(not(target_arch = "x86_64"))]
        let cpu = false;
        let off = ["RECUR_NO_TILE", "RECUR_NO_WIDE"]
            .iter()
            .any(|v| crate::turned_off(v));
        assert_eq!(
            takes(0),
            cpu && !off,
            "the tiles run where the CPU has AVX-512F and VL"
        );
        takes(0)
    }

    /// The tiled inference forwards against the training forwards (the
    /// `gemm` crate's or the packed product, then the cell pass), bit for
    /// bit, both layers: hidden sizes with and without a partial block of
    /// units, row counts with partial tiles and several chunks (the packed
    /// product takes chunks of 7-96 rows, the `gemm` crate larger ones),
    /// one input or many, and sums over exactly `KC` inputs, at 1 and 3
    /// threads; and the fused layer's last state from the input
    /// batch-major (read in place, the other states kept in buffers).
    #[test]
    fn tiles_equal_the_training_forward_bit_for_bit() {
        if !tiles_run() {
            return;
        }
        let val = |n: usize, seed: usize, s: f32| -> Vec<f32> {
            (0..n)
                .map(|j| (((j + seed) * 7919 % 1009) as f32 - 504.0) / 504.0 * s)
                .collect()
        };
        let same = |a: &[f32], b: &[f32], what: String| {
            let differ = a
                .iter()
                .zip(b)
                .filter(|(x, y)| x.to_bits() != y.to_bits())
                .count();
            assert_eq!(differ, 0, "{differ} of {} differ: {what}", a.len());
        };
        for threads in [1, 3] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            for (l, b, i, h) in [
                (32, 512, 16, 64),
                (5, 37, 16, 20),
                (4, 7, 1, 100),
                (3, 7, 9, 16),
                (6, 100, 40, 33),
                (3, 150, 96, 160),
                (3, 40, 56, 200),
            ] {
                let d = Dims {
                    steps: l,
                    batch: b,
                    hidden: h,
                };
                let what = format!("{d:?}, I {i}, {threads} threads");
                // Large weights too, so that gates saturate both ways.
                let (x, w) = (val(l * b * i, 1, 2.0), val(4 * h * (i + h + 1), 2, 1.5));
                let (mut y_tile, mut y_train) =
                    (vec![f32::NAN; l * b * h], vec![f32::NAN; l * b * h]);
                // The same input batch-major, for the last state alone.
                let mut x_bm = vec![0f32; x.len()];
                for t in 0..l {
                    for r in 0..b {
                        x_bm[(r * l + t) * i..][..i].copy_from_slice(&x[(t * b + r) * i..][..i]);
                    }
                }
                let mut y_last = vec![f32::NAN; b * h];
                pool.install(|| {
                    forward(d, i, &x, false, &w, &mut y_tile, false);
                    forward_fused(d, &x, &w, &mut y_train, Some(&mut SavedFused::default()));
                    crate::lstm::forward_fused_last(d, &x_bm, &w, &mut y_last);
                });
                same(&y_tile, &y_train, format!("fused, {what}"));
                same(
                    &y_last,
                    &y_train[(l - 1) * b * h..],
                    format!("fused, last state from batch-major input, {what}"),
                );
            }
            for (l, b, h) in [
                (32, 512, 64),
                (5, 37, 20),
                (4, 7, 100),
                (3, 100, 33),
                (3, 40, 256),
                (3, 130, 256),
            ] {
                let d = Dims {
                    steps: l,
                    batch: b,
                    hidden: h,
                };
                let (xp, w) = (val(l * b * 4 * h, 3, 2.0), val(4 * h * h, 4, 0.5));
                let (mut y_tile, mut y_train) =
                    (vec![f32::NAN; l * b * h], vec![f32::NAN; l * b * h]);
                pool.install(|| {
                    forward_projected(d, &xp, &w, &mut y_tile);
                    crate::lstm::forward(d, &xp, &w, &mut y_train, Some(&mut Default::default()));
                });
                same(
                    &y_tile,
                    &y_train,
                    format!("projected, {d:?}, {threads} threads"),
                );
            }
        }
    }

    /// Each row of a batch of 37 computed alone and in batches of 2 to 6
    /// (partial tiles), at 1 and 2 threads, gives the same bits as in the
    /// whole batch at one thread.
    #[test]
    fn a_rows_states_do_not_depend_on_its_batch() {
        if !tiles_run() {
            return;
        }
        let (l, b, i, h) = (4, 37, 5, 24);
        let x: Vec<f32> = (0..l * b * i)
            .map(|j| ((j * 7919 % 1009) as f32 - 504.0) / 300.0)
            .collect();
        let w: Vec<f32> = (0..4 * h * (i + h + 1))
            .map(|j| ((j * 104_729 % 997) as f32 - 498.0) / 700.0)
            .collect();
        let run = |rows: std::ops::Range<usize>, threads: usize| -> Vec<f32> {
            let n = rows.len();
            // x [L, B, I] -> the rows' [L, n, I]
            let xs: Vec<f32> = (0..l)
                .flat_map(|t| x[(t * b + rows.start) * i..(t * b + rows.end) * i].to_vec())
                .collect();
            let mut y = vec![f32::NAN; l * n * h];
            let d = Dims {
                steps: l,
                batch: n,
                hidden: h,
            };
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| forward(d, i, &xs, false, &w, &mut y, false));
            y
        };
        let whole = run(0..b, 1);
        for threads in [1, 2] {
            for size in 1..=6 {
                for start in (0..b).step_by(size) {
                    let rows = start..(start + size).min(b);
                    let part = run(rows.clone(), threads);
                    for t in 0..l {
                        for (r, row) in rows.clone().enumerate() {
                            let got = &part[(t * rows.len() + r) * h..][..h];
                            let want = &whole[(t * b + row) * h..][..h];
                            assert!(
                                got.iter()
                                    .zip(want)
                                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                                "row {row} at step {t} in a batch of {size}, {threads} threads"
                            );
                        }
                    }
                }
            }
        }
        // And the whole batch at 2 threads (two chunks of rows).
        assert!(run(0..b, 2)
            .iter()
            .zip(&whole)
            .all(|(a, b)| a.to_bits() == b.to_bits()));
    }
}

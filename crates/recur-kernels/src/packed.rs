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
//! level by `multiversion` and picked at run time. Where the CPU has
//! AVX-512, `block2` streams two panels at once (twelve AVX-512 sums,
//! written with intrinsics), with the same bits. Blocks of `KC` inner
//! steps keep a panel's slice in L1 and `MC` rows keep the input block in
//! L2.
//!
//! The recurrent layers use the same panels for `h_{t-1} @ w_hh^T` and, in
//! backward, `dG_t @ w_hh`: packed once per call from a strided view
//! (`PackedLinear::from_rhs`) and reused by every step and batch chunk,
//! where the `gemm` crate would pack the same weight again at each step in
//! each thread.

use crate::mat::{SendConst, SendPtr, View};
use multiversion::multiversion;
use rayon::prelude::*;

/// Output columns per panel.
pub const NR: usize = 16;
/// Input rows per micro-kernel call.
const MR: usize = 6;
/// Inner-dimension block: a panel slice of KC x NR floats is 16 KiB.
pub(crate) const KC: usize = 256;
/// Row block.
const MC: usize = 96;
/// Panels the few-row product ([`PackedLinear::run_few`]) reads at once:
/// four chains of multiply-adds per row.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
const FEW_PANELS: usize = 4;

/// `W [n, k]` in panels, with its bias.
pub struct PackedLinear {
    n: usize,
    k: usize,
    panels: Panels,
    bias: Option<Vec<f32>>,
    /// Operands rounded to bf16 ([`PackedLinear::new_bf16`]): the panels
    /// at packing, each input as a product reads it.
    round: bool,
}

/// One panel row: [`NR`] floats, a cache line.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([f32; NR]);

/// The panels' floats, starting on a cache line, so that every 16-float
/// load of a panel row reads one line, not two (an allocation of a few
/// MiB from the system allocator starts 16 bytes into a page).
struct Panels(Vec<Line>);

impl std::ops::Deref for Panels {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        // SAFETY: `Line` is `NR` f32 with no padding (repr(C), 64 bytes),
        // so the vector's lines are `len * NR` initialised floats.
        unsafe { std::slice::from_raw_parts(self.0.as_ptr().cast(), self.0.len() * NR) }
    }
}

impl std::ops::DerefMut for Panels {
    fn deref_mut(&mut self) -> &mut [f32] {
        // SAFETY: as in `deref`.
        unsafe { std::slice::from_raw_parts_mut(self.0.as_mut_ptr().cast(), self.0.len() * NR) }
    }
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
        // SAFETY: w holds n x k elements, viewed as its transpose [k, n].
        let mut p = unsafe { Self::from_rhs(k, n, View::t(w.as_ptr(), k), 1) };
        p.bias = bias.map(<[f32]>::to_vec);
        p
    }

    /// Packs the right-hand side `rhs [k, n]` of a product with no bias:
    /// element `(t, j)` is `rhs.ptr[t * rs + j * cs]`, so `View::t(w, k)`
    /// packs a PyTorch weight `w [n, k]` and a row-major view packs `w`
    /// itself for the product against it; one of the two strides must be
    /// 1 (every caller's weight has contiguous rows or columns). Panels are
    /// filled on `threads`,
    /// every element written once (no zeroing pass first: a training step
    /// packs each recurrent weight twice).
    ///
    /// # Safety
    /// `rhs` must cover `k x n` readable elements.
    pub(crate) unsafe fn from_rhs(k: usize, n: usize, rhs: View, threads: usize) -> PackedLinear {
        assert!(k > 0, "a weight of zero inputs cannot be packed");
        assert!(
            rhs.rs == 1 || rhs.cs == 1,
            "a packed weight needs contiguous rows or columns"
        );
        let np = n.div_ceil(NR);
        let len = np * k * NR;
        let mut panels: Vec<Line> = Vec::with_capacity(len / NR);
        let src = SendConst(rhs.ptr);
        let fill = |(p, panel): (usize, &mut [std::mem::MaybeUninit<f32>])| {
            // The whole Send wrapper, not its raw-pointer field, is what
            // the closure must capture.
            #[allow(clippy::redundant_locals)]
            let src = src;
            let c0 = p * NR;
            let cols = NR.min(n - c0);
            if rhs.rs == 1 {
                // A PyTorch weight seen transposed: each output column is
                // contiguous in k. 16 x 16 tiles: a cache line of each of
                // the 16 columns is read whole into a local tile, then 16
                // panel rows are written whole. (Element by element, either
                // the scattered stores into fresh memory or 16 column
                // streams 2-8 KiB apart, which share one L1 set, made
                // packing four times slower than a plain copy.)
                // SAFETY: column c0 + c holds k contiguous elements.
                let columns: [&[f32]; NR] = std::array::from_fn(|c| unsafe {
                    std::slice::from_raw_parts(
                        src.0.offset((c0 + c.min(cols - 1)) as isize * rhs.cs),
                        k,
                    )
                });
                let mut tile = [[0f32; NR]; NR];
                let full = k / NR * NR;
                for t0 in (0..full).step_by(NR) {
                    // Fixed-size copies: no call to memcpy per line and no
                    // bounds check per element.
                    for (c, col) in columns.iter().enumerate() {
                        tile[c] = col[t0..t0 + NR].try_into().expect("NR values");
                    }
                    for dt in 0..NR {
                        let dst: &mut [std::mem::MaybeUninit<f32>; NR] = (&mut panel
                            [(t0 + dt) * NR..(t0 + dt + 1) * NR])
                            .try_into()
                            .expect("NR values");
                        for (c, d) in dst.iter_mut().enumerate() {
                            d.write(tile[c][dt]);
                        }
                    }
                }
                // Columns past `cols` repeat the last one above: the zero
                // padding is written again after this branch. Tail steps go
                // element by element.
                for t in full..k {
                    for (c, col) in columns.iter().enumerate() {
                        panel[t * NR + c].write(col[t]);
                    }
                }
            } else {
                // Rows of the right-hand side are contiguous.
                for (t, dst) in panel.chunks_exact_mut(NR).enumerate() {
                    // SAFETY: row t holds the `cols` contiguous elements.
                    let row = unsafe {
                        std::slice::from_raw_parts(
                            src.0.offset(t as isize * rhs.rs + c0 as isize),
                            cols,
                        )
                    };
                    for (d, v) in dst.iter_mut().zip(row) {
                        d.write(*v);
                    }
                }
            }
            // The last panel's columns past n are zero.
            if cols < NR {
                for dst in panel.chunks_exact_mut(NR) {
                    for d in &mut dst[cols..] {
                        d.write(0.0);
                    }
                }
            }
        };
        // SAFETY: the capacity's `len / NR` lines are `len` floats
        // (`Line` is NR f32 with no padding), each written once below.
        let spare: &mut [std::mem::MaybeUninit<f32>] = unsafe {
            std::slice::from_raw_parts_mut(panels.spare_capacity_mut().as_mut_ptr().cast(), len)
        };
        if threads > 1 && n * k >= 1 << 16 {
            spare.par_chunks_mut(k * NR).enumerate().for_each(fill);
        } else {
            spare.chunks_mut(k * NR).enumerate().for_each(fill);
        }
        // SAFETY: every one of the len elements was written above (the
        // last panel zeroed first when it is partial).
        unsafe { panels.set_len(len / NR) };
        PackedLinear {
            n,
            k,
            panels: Panels(panels),
            bias: None,
            round: false,
        }
    }

    /// [`PackedLinear::new`] for products in bf16 (operands rounded to
    /// bf16, products and sums in f32, as `Precision::Bf16`): the weight
    /// is rounded once here and each input row as a product reads it; the
    /// bias stays f32. The panels stay f32 (bf16 values), so a forward of a
    /// few rows reads as many bytes as in f32, at f32's speed: the dot
    /// products of the unpacked bf16 path round every weight as they read
    /// it, about ten vector operations per 16 weights, which made a w2 LVM's
    /// batch-1 forward 2-3x slower in bf16 than in f32.
    pub fn new_bf16(w: &[f32], k: usize, bias: Option<&[f32]>) -> PackedLinear {
        let mut p = Self::new(w, k, bias);
        for v in p.panels.iter_mut() {
            *v = crate::bf16::rounded(*v);
        }
        p.round = true;
        p
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
        self.product(x, y, false, threads)
    }

    /// `y [m, n] += x [m, k] @ W^T + b`.
    pub fn forward_add(&self, x: &[f32], y: &mut [f32], threads: usize) {
        self.product(x, y, true, threads)
    }

    fn product(&self, x: &[f32], y: &mut [f32], accumulate: bool, threads: usize) {
        let (n, k) = (self.n, self.k);
        assert_eq!(x.len() % k, 0, "x is [m, {k}], got {} values", x.len());
        let m = x.len() / k;
        assert_eq!(y.len(), m * n, "y is [{m}, {n}]");
        if m == 0 {
            return;
        }
        let rounded: Vec<f32>;
        let x = if self.round {
            rounded = x.iter().map(|&v| crate::bf16::rounded(v)).collect();
            &rounded[..]
        } else {
            x
        };
        let np = n.div_ceil(NR);
        let parts = if threads > 1 && m * n * k >= 1 << 18 {
            threads.min(np)
        } else {
            1
        };
        let (xp, yp) = (SendConst(x.as_ptr()), SendPtr(y.as_mut_ptr()));
        let few = m <= MR && wide();
        let run = |part: usize| {
            let (xp, yp) = (xp, yp);
            let panels = np * part / parts..np * (part + 1) / parts;
            // SAFETY: x is [m, k] (checked above), only read. y stays a
            // raw pointer: parts write disjoint columns of the same rows,
            // so none may hold a `&mut` over all of y.
            let x = unsafe { std::slice::from_raw_parts(xp.0, m * k) };
            if few {
                // SAFETY: `wide` found avx512f on this CPU.
                unsafe { self.run_few(x, m, yp, panels, accumulate) };
            } else {
                self.run_panels(x, m, yp, panels, accumulate);
            }
        };
        if parts == 1 {
            run(0);
        } else if !(few && crate::partner::split(parts, &run)) {
            (0..parts).into_par_iter().for_each(run);
        }
    }

    /// [`run_panels`](Self::run_panels) for at most [`MR`] rows on AVX-512:
    /// four panels at a time, each read from its start to its end before
    /// the next four, and `x` read in place. At one row the two-panel block
    /// has two chains of multiply-adds in flight, too few to keep up with
    /// the memory: the w2 LVM's batch-1 products (37 MB of weights, most
    /// read from L3 or memory) ran at 1.9 ms a forward through it, as
    /// through the dot products of `mat` over the unpacked weight, against
    /// about 1.2 ms for this order in a C model of the same reads (one
    /// core of an AMD EPYC, family 26). Every sum is the same chain as in
    /// [`block`], block of [`KC`] by block, stored the same way, so the
    /// bits are those of `run_panels`.
    ///
    /// # Safety
    /// The CPU must have avx512f; `y` as in `run_panels`.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn run_few(
        &self,
        x: &[f32],
        m: usize,
        y: SendPtr,
        panels: std::ops::Range<usize>,
        accumulate: bool,
    ) {
        // Groups of four from the start, the last one shorter; from the
        // last group back on every other call, as `mat::zigzag` says.
        let groups = (panels.end - panels.start).div_ceil(FEW_PANELS);
        let backwards = crate::mat::zigzag();
        for gi in 0..groups {
            let gi = if backwards { groups - 1 - gi } else { gi };
            let p = panels.start + gi * FEW_PANELS;
            let g = (panels.end - p).min(FEW_PANELS);
            macro_rules! go {
                ($m:literal) => {
                    match g {
                        4 => self.few::<$m, 4>(x, y, p, accumulate),
                        3 => self.few::<$m, 3>(x, y, p, accumulate),
                        2 => self.few::<$m, 2>(x, y, p, accumulate),
                        _ => self.few::<$m, 1>(x, y, p, accumulate),
                    }
                };
            }
            match m {
                1 => go!(1),
                2 => go!(2),
                3 => go!(3),
                4 => go!(4),
                5 => go!(5),
                _ => go!(6),
            }
        }
    }

    /// Stand-in where there is no AVX-512 (never called: `wide` is false).
    #[cfg(not(target_arch = "x86_64"))]
    unsafe fn run_few(&self, _: &[f32], _: usize, _: SendPtr, _: std::ops::Range<usize>, _: bool) {
        unreachable!("the few-row product needs AVX-512")
    }

    /// `M` rows against panels `p0..p0 + G` (columns from `p0 * NR`).
    ///
    /// # Safety
    /// The CPU must have avx512f; `x` holds `M` rows of `k`; `y` as in
    /// `run_panels`.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn few<const M: usize, const G: usize>(
        &self,
        x: &[f32],
        y: SendPtr,
        p0: usize,
        accumulate: bool,
    ) {
        use std::arch::x86_64::*;
        let (n, k) = (self.n, self.k);
        assert!(x.len() >= M * k && (p0 + G) * k * NR <= self.panels.len());
        let c0 = p0 * NR;
        let cols = (G * NR).min(n - c0);
        let base: [*const f32; G] =
            std::array::from_fn(|g| self.panels.as_ptr().add((p0 + g) * k * NR));
        for k0 in (0..k).step_by(KC) {
            let k1 = (k0 + KC).min(k);
            let mut acc = [[_mm512_setzero_ps(); G]; M];
            for t in k0..k1 {
                // SAFETY: t < k: each panel holds k x NR floats and each
                // row of x k floats (asserted above).
                let w: [__m512; G] = std::array::from_fn(|g| _mm512_loadu_ps(base[g].add(t * NR)));
                for (r, a) in acc.iter_mut().enumerate() {
                    let xv = _mm512_set1_ps(*x.get_unchecked(r * k + t));
                    for g in 0..G {
                        a[g] = _mm512_fmadd_ps(xv, w[g], a[g]);
                    }
                }
            }
            let store = self.store(k0, accumulate);
            for (r, a) in acc.iter().enumerate() {
                let mut sums = [0f32; FEW_PANELS * NR];
                for (g, v) in a.iter().enumerate() {
                    _mm512_storeu_ps(sums.as_mut_ptr().add(g * NR), *v);
                }
                // SAFETY: y is [m, n] with r < m and c0 + cols <= n; these
                // columns belong to this call's panels, which no other
                // thread writes.
                let out = std::slice::from_raw_parts_mut(y.0.add(r * n + c0), cols);
                store_row(out, &sums[..cols], store, c0);
            }
        }
    }

    /// How the sums of the inner block from `k0` reach `y`: the first
    /// block replaces `y` (or adds to it) with the bias, the others add.
    fn store(&self, k0: usize, accumulate: bool) -> Store<'_> {
        match (k0, accumulate) {
            (0, false) => Store::Overwrite(self.bias.as_deref()),
            (0, true) => Store::Add(self.bias.as_deref()),
            _ => Store::Add(None),
        }
    }

    fn run_panels(
        &self,
        x: &[f32],
        m: usize,
        y: SendPtr,
        panels: std::ops::Range<usize>,
        accumulate: bool,
    ) {
        let (n, k) = (self.n, self.k);
        // One MC x KC block of x at a time, copied into strips of MR rows
        // of KC steps each (`strips[s][i][t]`): the micro-kernel's six rows
        // are then 1 KiB apart in one compact block that stays in L2 for
        // every panel, instead of `k` floats apart (8 KiB for the LSTM's
        // backward step, six streams in one L1 set). Rows interleaved by
        // step would be one stream, but the compiler then vectorises the
        // six broadcasts into shuffles and spills the accumulators.
        let mut strips = vec![0f32; MC.div_ceil(MR) * MR * KC.min(k)];
        for k0 in (0..k).step_by(KC) {
            let k1 = (k0 + KC).min(k);
            let kc = k1 - k0;
            let store = self.store(k0, accumulate);
            for m0 in (0..m).step_by(MC) {
                let m1 = (m0 + MC).min(m);
                for (s, r) in (m0..m1).step_by(MR).enumerate() {
                    let rows = MR.min(m1 - r);
                    let strip = &mut strips[s * MR * kc..(s + 1) * MR * kc];
                    for i in 0..rows {
                        strip[i * kc..(i + 1) * kc]
                            .copy_from_slice(&x[(r + i) * k + k0..(r + i) * k + k1]);
                    }
                }
                let panel = |p: usize| &self.panels[p * k * NR + k0 * NR..p * k * NR + k1 * NR];
                let mut p = panels.start;
                // Two panels at a time where the CPU has AVX-512: twelve
                // accumulators in flight instead of six, as many as two
                // FMA ports of four cycles' latency need (an Intel Xeon
                // runs the one-panel block at about half its peak).
                if wide() {
                    while p + 2 <= panels.end {
                        let c0 = p * NR;
                        let cols = (2 * NR).min(n - c0);
                        for (s, r) in (m0..m1).step_by(MR).enumerate() {
                            let rows = MR.min(m1 - r);
                            // SAFETY: `wide` found avx512f on this CPU.
                            unsafe {
                                block2(
                                    &strips[s * MR * kc..(s + 1) * MR * kc],
                                    r,
                                    rows,
                                    [panel(p), panel(p + 1)],
                                    y,
                                    n,
                                    c0,
                                    cols,
                                    store,
                                )
                            };
                        }
                        p += 2;
                    }
                }
                for p in p..panels.end {
                    let c0 = p * NR;
                    let cols = NR.min(n - c0);
                    for (s, r) in (m0..m1).step_by(MR).enumerate() {
                        let rows = MR.min(m1 - r);
                        block(
                            &strips[s * MR * kc..(s + 1) * MR * kc],
                            r,
                            rows,
                            panel(p),
                            y,
                            n,
                            c0,
                            cols,
                            store,
                        );
                    }
                }
            }
        }
    }
}

/// Whether a model held for inference gains from packing its weights once
/// for forwards of a few rows (batch-1 serving): on AVX-512, where
/// [`PackedLinear`]'s few-row product reads the panels at the memory's
/// pace, about 1.5x faster than the dot products of `mat` over the weight
/// as it is for the w2 LVM. Elsewhere the dot products stay (the one-panel
/// block was not measured faster there).
pub fn packs_for_few_rows() -> bool {
    wide()
}

/// Whether the AVX-512 kernels can run here: this module's two-panel block
/// and the four-column skinny products of `mat` (checked once; the
/// `RECUR_NO_WIDE` environment variable turns both off, for A/B timing).
pub(crate) fn wide() -> bool {
    use std::sync::OnceLock;
    static WIDE: OnceLock<bool> = OnceLock::new();
    *WIDE.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            !crate::turned_off("RECUR_NO_WIDE") && is_x86_feature_detected!("avx512f")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    })
}

/// How a block's sums reach `y`: replacing it or added to it, with the
/// bias (on the first inner block only) or without.
#[derive(Clone, Copy)]
enum Store<'a> {
    Overwrite(Option<&'a [f32]>),
    Add(Option<&'a [f32]>),
}

/// One `rows x cols` block of `y` (at row `r`, column `c0`): `y (+)=
/// strip @ panel`, written as `store` says. `strip` is `[MR][kc]`, its
/// first `rows` rows filled.
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma", "aarch64+neon"))]
#[allow(clippy::too_many_arguments)]
fn block(
    strip: &[f32],
    r: usize,
    rows: usize,
    panel: &[f32],
    y: SendPtr,
    n: usize,
    c0: usize,
    cols: usize,
    store: Store,
) {
    let mut acc = [[0f32; NR]; MR];
    match rows {
        6 => micro::<6>(strip, panel, &mut acc),
        5 => micro::<5>(strip, panel, &mut acc),
        4 => micro::<4>(strip, panel, &mut acc),
        3 => micro::<3>(strip, panel, &mut acc),
        2 => micro::<2>(strip, panel, &mut acc),
        _ => micro::<1>(strip, panel, &mut acc),
    }
    for (i, a) in acc.iter().enumerate().take(rows) {
        // SAFETY: y is [m, n] with r + i < m and c0 + cols <= n; these
        // columns belong to this call's panel, which no other thread
        // writes.
        let out = unsafe { std::slice::from_raw_parts_mut(y.0.add((r + i) * n + c0), cols) };
        store_row(out, a, store, c0);
    }
}

/// [`block`] over two adjacent panels (`2 * NR` columns from `c0`, of
/// which the first `cols` are real). Each sum is the same chain of fused
/// multiply-adds, step by step, as in [`block`], so the two give the same
/// bits.
///
/// # Safety
/// The CPU must have avx512f.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn block2(
    strip: &[f32],
    r: usize,
    rows: usize,
    panels: [&[f32]; 2],
    y: SendPtr,
    n: usize,
    c0: usize,
    cols: usize,
    store: Store,
) {
    let mut acc = [[0f32; 2 * NR]; MR];
    match rows {
        6 => micro2::<6>(strip, panels, &mut acc),
        5 => micro2::<5>(strip, panels, &mut acc),
        4 => micro2::<4>(strip, panels, &mut acc),
        3 => micro2::<3>(strip, panels, &mut acc),
        2 => micro2::<2>(strip, panels, &mut acc),
        _ => micro2::<1>(strip, panels, &mut acc),
    }
    for (i, a) in acc.iter().enumerate().take(rows) {
        // SAFETY: as in `block`; these columns belong to this call's two
        // panels.
        let out = unsafe { std::slice::from_raw_parts_mut(y.0.add((r + i) * n + c0), cols) };
        store_row(out, &a[..cols], store, c0);
    }
}

/// Stand-in so that callers compile where there is no AVX-512 (never
/// called: `wide` is false there).
#[cfg(not(target_arch = "x86_64"))]
#[allow(clippy::too_many_arguments)]
unsafe fn block2(
    _: &[f32],
    _: usize,
    _: usize,
    _: [&[f32]; 2],
    _: SendPtr,
    _: usize,
    _: usize,
    _: usize,
    _: Store,
) {
    unreachable!("the two-panel block needs AVX-512")
}

/// `out (+)= a (+ the bias from column c0)`, as `store` says.
#[inline(always)]
fn store_row(out: &mut [f32], a: &[f32], store: Store, c0: usize) {
    let cols = out.len();
    match store {
        Store::Overwrite(Some(b)) => {
            for ((o, v), bb) in out.iter_mut().zip(a).zip(&b[c0..c0 + cols]) {
                *o = v + bb;
            }
        }
        Store::Overwrite(None) => out.copy_from_slice(&a[..cols]),
        Store::Add(Some(b)) => {
            for ((o, v), bb) in out.iter_mut().zip(a).zip(&b[c0..c0 + cols]) {
                *o += v + bb;
            }
        }
        Store::Add(None) => {
            for (o, v) in out.iter_mut().zip(a) {
                *o += v;
            }
        }
    }
}

/// `M` rows of a strip against two panel slices in 512-bit registers: two
/// loads and `M` broadcasts feed `2 M` fused multiply-adds per step.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn micro2<const M: usize>(strip: &[f32], panels: [&[f32]; 2], acc: &mut [[f32; 2 * NR]; MR]) {
    use std::arch::x86_64::*;
    let kc = panels[0].len() / NR;
    assert!(panels[1].len() == kc * NR && strip.len() >= M * kc);
    let (b0, b1, x) = (panels[0].as_ptr(), panels[1].as_ptr(), strip.as_ptr());
    let mut a0 = [_mm512_setzero_ps(); M];
    let mut a1 = [_mm512_setzero_ps(); M];
    for t in 0..kc {
        // SAFETY: t < kc: both panel slices hold kc x NR floats and the
        // strip's first M rows kc floats each (asserted above).
        unsafe {
            let v0 = _mm512_loadu_ps(b0.add(t * NR));
            let v1 = _mm512_loadu_ps(b1.add(t * NR));
            for i in 0..M {
                let xv = _mm512_set1_ps(*x.add(i * kc + t));
                a0[i] = _mm512_fmadd_ps(xv, v0, a0[i]);
                a1[i] = _mm512_fmadd_ps(xv, v1, a1[i]);
            }
        }
    }
    for i in 0..M {
        let (lo, hi) = acc[i].split_at_mut(NR);
        // SAFETY: each half holds NR = 16 floats.
        unsafe {
            _mm512_storeu_ps(lo.as_mut_ptr(), a0[i]);
            _mm512_storeu_ps(hi.as_mut_ptr(), a1[i]);
        }
    }
}

/// The register block: `M` rows of a strip against a panel slice, step
/// by step.
#[inline(always)]
fn micro<const M: usize>(strip: &[f32], panel: &[f32], acc: &mut [[f32; NR]; MR]) {
    let kc = panel.len() / NR;
    let rows: [&[f32]; M] = std::array::from_fn(|i| &strip[i * kc..(i + 1) * kc]);
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

    /// A right-hand side packed from a strided view, both the transposed
    /// weight (a forward step) and the weight itself (a backward step),
    /// overwriting and accumulating, equals the plain product.
    #[test]
    fn products_against_a_packed_view_match_a_plain_one() {
        let val = |i: usize| ((i * 7919 % 101) as f32 - 50.0) / 50.0;
        let (m, rows, cols) = (11, 37, 300); // w is [rows, cols]
        let w: Vec<f32> = (0..rows * cols).map(|i| val(i + 7)).collect();
        for transposed in [true, false] {
            // Forward: x [m, cols] @ w^T -> [m, rows]; backward: x [m, rows] @ w.
            let (k, n, view) = if transposed {
                (cols, rows, View::t(w.as_ptr(), cols))
            } else {
                (rows, cols, View::rows(w.as_ptr(), cols))
            };
            let rhs = |t: usize, j: usize| {
                if transposed {
                    w[j * cols + t]
                } else {
                    w[t * cols + j]
                }
            };
            let x: Vec<f32> = (0..m * k).map(val).collect();
            for threads in [1, 2] {
                // SAFETY: the view covers w, [k, n] either way.
                let p = unsafe { PackedLinear::from_rhs(k, n, view, threads) };
                for accumulate in [false, true] {
                    let start: Vec<f32> = (0..m * n).map(|i| val(i + 3)).collect();
                    let mut y = start.clone();
                    if accumulate {
                        p.forward_add(&x, &mut y, threads);
                    } else {
                        p.forward(&x, &mut y, threads);
                    }
                    for r in 0..m {
                        for c in 0..n {
                            let s = (0..k).map(|t| x[r * k + t] * rhs(t, c)).sum::<f32>();
                            let want = if accumulate { start[r * n + c] + s } else { s };
                            let got = y[r * n + c];
                            assert!(
                                (got - want).abs() < 1e-3,
                                "transposed {transposed}, accumulate {accumulate} ({r}, {c}): {got} vs {want}"
                            );
                        }
                    }
                }
            }
        }
    }

    /// Every row-block size, column tails and inner blocks past KC, with
    /// and without bias, on one and two threads, against a plain product.
    #[test]
    fn packed_products_match_a_plain_one() {
        let val = |i: usize| ((i * 7919 % 101) as f32 - 50.0) / 50.0;
        // n = 48, 60 and 70: pairs of panels (the AVX-512 block), a partial
        // pair and a lone last panel.
        for (m, n, k) in [
            (1, 5, 3),
            (7, 37, 19),
            (13, 48, 300),
            (9, 60, 260),
            (5, 70, 33),
            (100, 33, 520),
        ] {
            let x: Vec<f32> = (0..m * k).map(val).collect();
            let w: Vec<f32> = (0..n * k).map(|i| val(i + 7)).collect();
            let b: Vec<f32> = (0..n).map(|i| val(i + 3)).collect();
            for bias in [None, Some(&b[..])] {
                let p = PackedLinear::new(&w, k, bias);
                assert_eq!((p.outputs(), p.inputs()), (n, k));
                for threads in [1, 2] {
                    let mut y = vec![f32::NAN; m * n];
                    p.forward(&x, &mut y, threads);
                    // Adding the same product again doubles it, bias included.
                    let once = y.clone();
                    p.forward_add(&x, &mut y, threads);
                    for (twice, once) in y.iter().zip(&once) {
                        assert!((twice - 2.0 * once).abs() < 1e-3, "{twice} vs 2 x {once}");
                    }
                    let y = once;
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

    /// The two-panel AVX-512 block gives the one-panel block's bits, for
    /// every row count, column tail and way of storing; where the CPU has
    /// no AVX-512 it is never chosen.
    #[test]
    fn two_panel_block_equals_two_one_panel_blocks() {
        #[cfg(target_arch = "x86_64")]
        let avx512 = is_x86_feature_detected!("avx512f");
        #[cfg(not(target_arch = "x86_64"))]
        let avx512 = false;
        if !avx512 {
            assert!(!wide(), "the AVX-512 block chosen on a CPU without it");
            return;
        }
        let val = |i: usize| ((i * 7919 % 1009) as f32 - 500.0) / 377.0;
        let kc = 77;
        let strip: Vec<f32> = (0..MR * kc).map(val).collect();
        let panels: Vec<f32> = (0..2 * kc * NR).map(|i| val(i + 11)).collect();
        let (p0, p1) = panels.split_at(kc * NR);
        let bias: Vec<f32> = (0..2 * NR).map(|i| val(i + 5)).collect();
        let n = 2 * NR;
        for rows in 1..=MR {
            for cols in [2 * NR, NR + 3] {
                for store in [
                    Store::Overwrite(None),
                    Store::Overwrite(Some(&bias[..])),
                    Store::Add(None),
                    Store::Add(Some(&bias[..])),
                ] {
                    let start: Vec<f32> = (0..rows * n).map(|i| val(i + 3)).collect();
                    let mut one = start.clone();
                    let y = SendPtr(one.as_mut_ptr());
                    block(&strip, 0, rows, p0, y, n, 0, NR, store);
                    block(&strip, 0, rows, p1, y, n, NR, cols - NR, store);
                    let mut two = start.clone();
                    // SAFETY: avx512f was detected above.
                    unsafe {
                        block2(
                            &strip,
                            0,
                            rows,
                            [p0, p1],
                            SendPtr(two.as_mut_ptr()),
                            n,
                            0,
                            cols,
                            store,
                        )
                    };
                    for (i, (a, b)) in one.iter().zip(&two).enumerate() {
                        assert_eq!(
                            a.to_bits(),
                            b.to_bits(),
                            "rows {rows}, cols {cols}, element {i}"
                        );
                    }
                }
            }
        }
    }

    /// The few-row product (four panels at a time, `x` in place) gives the
    /// bits of the general one (`run_panels`) for 1 to 6 rows: panel
    /// groups of four with a shorter last group and a partial last panel,
    /// one, two and three inner blocks of KC with a tail, with and without
    /// bias, overwriting and accumulating, in both column orders (two calls
    /// in a row), on one and two threads. Where the CPU lacks AVX-512 both
    /// sides are `run_panels`; on the AVX-512 machines CI runs on the first
    /// is the few-row kernel.
    #[test]
    fn few_row_products_give_the_bits_of_the_general_one() {
        let val = |i: usize| ((i * 7919 % 101) as f32 - 50.0) / 50.0;
        // 83 columns: 6 panels (4 + 2, the last partial); 107: 7 (4 + 3).
        for (n, k) in [(83, 300), (107, 40), (64, 20), (16 * 9, 512), (7, 600)] {
            let w: Vec<f32> = (0..n * k).map(|i| val(i + 7)).collect();
            let b: Vec<f32> = (0..n).map(|i| val(i + 3)).collect();
            for bias in [None, Some(&b[..])] {
                let p = PackedLinear::new(&w, k, bias);
                for m in 1..=MR {
                    let x: Vec<f32> = (0..m * k).map(|i| val(i + m)).collect();
                    for accumulate in [false, true] {
                        let start: Vec<f32> = (0..m * n).map(|i| val(i + 11)).collect();
                        let mut want = start.clone();
                        let all = 0..n.div_ceil(NR);
                        p.run_panels(&x, m, SendPtr(want.as_mut_ptr()), all, accumulate);
                        for threads in [1, 2, 1] {
                            let mut got = start.clone();
                            p.product(&x, &mut got, accumulate, threads);
                            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                                assert_eq!(
                                    g.to_bits(),
                                    w.to_bits(),
                                    "{m}x{n}x{k}, bias {}, accumulate {accumulate}, \
                                     {threads} threads, element {i}: {g} vs {w}",
                                    bias.is_some()
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    /// The few-row product split over two threads by the batch-1 partner
    /// threads (as a served LVM's forward runs it) gives the same bits as
    /// on one: each part's panels, sums and stores are the same.
    #[test]
    fn few_row_products_split_by_partners_give_the_same_bits() {
        let val = |i: usize| ((i * 7919 % 101) as f32 - 50.0) / 50.0;
        let (n, k) = (16 * 32 + 5, 512);
        let w: Vec<f32> = (0..n * k).map(|i| val(i + 7)).collect();
        let b: Vec<f32> = (0..n).map(|i| val(i + 3)).collect();
        let p = PackedLinear::new(&w, k, Some(&b));
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        for m in 1..=MR {
            assert!(m * n * k >= 1 << 18, "the product must be split");
            let x: Vec<f32> = (0..m * k).map(|i| val(i + m)).collect();
            let mut want = vec![0f32; m * n];
            p.run_panels(&x, m, SendPtr(want.as_mut_ptr()), 0..n.div_ceil(NR), false);
            for _ in 0..3 {
                let mut got = vec![f32::NAN; m * n];
                pool.install(|| {
                    crate::partner::with_partners(|| p.forward(&x, &mut got, 2));
                });
                let same = got
                    .iter()
                    .zip(&want)
                    .all(|(g, w)| g.to_bits() == w.to_bits());
                assert!(same, "{m} rows: the split product differs");
            }
        }
    }

    /// A bf16 packing gives the f32 packing's bits on operands rounded to
    /// bf16 beforehand (weight at packing, input at each product; the
    /// bias stays f32), for few rows and many.
    #[test]
    fn bf16_packing_multiplies_rounded_operands() {
        let val = |i: usize| ((i * 7919 % 101) as f32 - 50.0) / 37.0 + 1e-3 * (i % 7) as f32;
        let r = crate::bf16::rounded;
        let (n, k) = (70, 300);
        let w: Vec<f32> = (0..n * k).map(val).collect();
        let b: Vec<f32> = (0..n).map(|i| val(i + 3)).collect();
        let p = PackedLinear::new_bf16(&w, k, Some(&b));
        let wr: Vec<f32> = w.iter().map(|&v| r(v)).collect();
        let q = PackedLinear::new(&wr, k, Some(&b));
        assert!(wr != w, "the weights must not be bf16 values already");
        for m in [1, 5, 9] {
            let x: Vec<f32> = (0..m * k).map(|i| val(i + 11)).collect();
            let xr: Vec<f32> = x.iter().map(|&v| r(v)).collect();
            let (mut got, mut want) = (vec![0f32; m * n], vec![0f32; m * n]);
            p.forward(&x, &mut got, 1);
            q.forward(&xr, &mut want, 1);
            let same = got
                .iter()
                .zip(&want)
                .all(|(g, w)| g.to_bits() == w.to_bits());
            assert!(same, "{m} rows");
        }
    }
}

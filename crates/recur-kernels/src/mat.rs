//! The one matrix-product entry point of the kernels, over the `gemm` crate
//! (the CPU GEMM candle itself uses; it picks AVX2 / AVX-512 / NEON at run
//! time). Matrices are raw pointers with row and column strides so that the
//! kernels can multiply slices of their time-major buffers in place.
//!
//! Up to six rows (batch-1 inference) take recur's own dot-product path
//! instead, which reads each weight row once and packs nothing: a GEMM
//! would pack the whole weight for one row. On AVX-512 its kernel is
//! written with intrinsics (four columns at a time), as the packed kernel's
//! two-panel block is; the portable one gives the same bits elsewhere.

use crate::bf16::{rounded as round_bf16, Bf16Rhs};
use crate::packed::PackedLinear;
use crate::precision::Precision;
use gemm::Parallelism;
use rayon::prelude::*;

/// The most rows the skinny (dot-product) path takes.
pub(crate) const SKINNY_ROWS: usize = 6;
/// The most rows per chunk for which a recurrent weight is packed once:
/// up to one row block of the packed product, where re-packing the weight
/// at every step is a large part of the `gemm` crate's time. With more
/// rows (the classifier's 512-row batch against its 80 x 256 weight) the
/// `gemm` crate is as fast or faster (`examples/gemm_probe.rs`).
const PACK_MAX_ROWS: usize = 96;

/// A read-only strided matrix view.
#[derive(Clone, Copy)]
pub(crate) struct View {
    pub ptr: *const f32,
    /// Stride between rows and between columns, in elements.
    pub rs: isize,
    pub cs: isize,
}

impl View {
    /// Row-major with `cols` columns.
    pub fn rows(ptr: *const f32, cols: usize) -> Self {
        View {
            ptr,
            rs: cols as isize,
            cs: 1,
        }
    }
    /// The transpose of a row-major matrix with `cols` columns.
    pub fn t(ptr: *const f32, cols: usize) -> Self {
        View {
            ptr,
            rs: 1,
            cs: cols as isize,
        }
    }
}

/// `dst[m, n] = (dst if accumulate) + lhs[m, k] @ rhs[k, n]`, `dst`
/// row-major with `n` columns, in precision `prec`.
///
/// # Safety
/// The views must cover `m x k` and `k x n` valid elements and `dst` must
/// hold `m x n` writable elements that no other thread touches meanwhile.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn matmul(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    lhs: View,
    rhs: View,
    accumulate: bool,
    threads: usize,
    prec: Precision,
) {
    matmul_into(m, n, k, dst, n, lhs, rhs, accumulate, threads, prec)
}

/// [`matmul`] into a destination whose rows are `dst_rs` elements apart.
///
/// # Safety
/// As [`matmul`], with `dst` covering `m` rows of `dst_rs` elements.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn matmul_into(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    dst_rs: usize,
    lhs: View,
    rhs: View,
    accumulate: bool,
    threads: usize,
    prec: Precision,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for r in 0..m {
                std::slice::from_raw_parts_mut(dst.add(r * dst_rs), n).fill(0.0);
            }
        }
        return;
    }
    if prec == Precision::Bf16 {
        if (1..=SKINNY_ROWS).contains(&m) && rhs.rs == 1 {
            // A few rows (batch-1 inference): packing the weight would cost
            // more than the product, so the dot products round each weight
            // as they read it, against rows rounded once here.
            let mut a = vec![0f32; m * k];
            for (r, row) in a.chunks_exact_mut(k).enumerate() {
                for (t, v) in row.iter_mut().enumerate() {
                    *v = crate::bf16::rounded(
                        *lhs.ptr.offset(r as isize * lhs.rs + t as isize * lhs.cs),
                    );
                }
            }
            let lhs = View::rows(a.as_ptr(), k);
            skinny(m, n, k, dst, dst_rs, lhs, rhs, accumulate, threads, true);
        } else {
            Bf16Rhs::pack(k, n, rhs, threads).product(m, dst, dst_rs, lhs, accumulate, threads);
        }
        return;
    }
    // A few rows against a row-major weight (`rhs` is `w^T`): the general
    // GEMM re-reads the weight once per row here (5 rows cost 5x one row),
    // while dot products over each weight row read it once. Batch-1
    // inference of the LVM projects its 5 context steps this way.
    if (1..=SKINNY_ROWS).contains(&m) && lhs.cs == 1 && rhs.rs == 1 {
        skinny(m, n, k, dst, dst_rs, lhs, rhs, accumulate, threads, false);
        return;
    }
    if threads > 1 && split_columns(m, n, k) {
        let parts = threads.min(n.div_ceil(16));
        let (d, l, r) = (SendPtr(dst), SendConst(lhs.ptr), SendConst(rhs.ptr));
        (0..parts).into_par_iter().for_each(|p| {
            let (d, l, r) = (d, l, r);
            let (c0, c1) = (n * p / parts, n * (p + 1) / parts);
            let lhs = View { ptr: l.0, ..lhs };
            let rhs = View {
                ptr: r.0.offset(c0 as isize * rhs.cs),
                ..rhs
            };
            let dst = d.0.add(c0);
            gemm_crate(
                m,
                c1 - c0,
                k,
                dst,
                dst_rs,
                lhs,
                rhs,
                accumulate,
                Parallelism::None,
            );
        });
        return;
    }
    let par = if threads > 1 {
        Parallelism::Rayon(threads)
    } else {
        Parallelism::None
    };
    gemm_crate(m, n, k, dst, dst_rs, lhs, rhs, accumulate, par);
}

/// `dst (+)= lhs @ rhs` on the `gemm` crate.
///
/// # Safety
/// As [`matmul_into`].
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_crate(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    dst_rs: usize,
    lhs: View,
    rhs: View,
    accumulate: bool,
    par: Parallelism,
) {
    gemm::gemm(
        m,
        n,
        k,
        dst,
        1,
        dst_rs as isize,
        accumulate,
        lhs.ptr,
        lhs.cs,
        lhs.rs,
        rhs.ptr,
        rhs.cs,
        rhs.rs,
        1.0,
        1.0,
        false,
        false,
        false,
        par,
    );
}

/// Whether a product runs as one one-thread `gemm` call per thread, each
/// over its own columns, rather than one call that the crate splits. The
/// crate's split joins its threads twice per block of `k` (to pack, to
/// multiply) and divides rows unevenly; for a product of 256 to 512
/// columns, not many more rows and a long `k`, such as the LVM's input
/// gradients (`[320, 2048] x [2048, 512]`), separate calls ran 8-20%
/// faster at two threads on an Intel Xeon (`examples/split_probe.rs`), and
/// w2 training 3.9% (median of 6 alternating runs). Other shapes (the
/// classifier's `[256, 16384] x [16384, 81]` weight gradient) keep the
/// crate's split, which was not measured slower there. The crate's sums over `k` do not
/// depend on the columns a call holds, so the bits are the same (a test
/// holds them). `RECUR_NO_SPLIT` set in the environment turns it off, for
/// a comparison.
fn split_columns(m: usize, n: usize, k: usize) -> bool {
    (256..=512).contains(&n) && k >= 256 && m < 4 * n && !crate::turned_off("RECUR_NO_SPLIT")
}

/// The right-hand side `[k, n]` of the product a recurrent layer does at
/// every step (`w_hh^T` forward, `w_hh` backward). With more rows per batch
/// chunk than the skinny path takes (and at most [`PACK_MAX_ROWS`]), it is
/// packed once for all steps and chunks ([`PackedLinear::from_rhs`]);
/// otherwise it stays a view for [`matmul`], so batch-1 inference packs
/// nothing. `RECUR_NO_PACK` set in the environment keeps every weight a
/// view, so that `examples/lstm_probe.rs` can time both in one process.
/// In bf16 it is packed rounded ([`Bf16Rhs`]), or for as few rows as the
/// skinny path takes, kept a view that the dot products round as they read.
/// `Shared` is a weight packed once by its owner for every call (a model
/// loaded to serve: [`crate::lstm::forward_packed`]).
pub(crate) enum StepRhs<'a> {
    Packed(PackedLinear),
    Shared(&'a PackedLinear),
    Raw(View, Precision),
    Bf16(Bf16Rhs),
}

// SAFETY: a raw view is only read, and its owner outlives the products.
unsafe impl Send for StepRhs<'_> {}
unsafe impl Sync for StepRhs<'_> {}

impl StepRhs<'_> {
    /// In the precision of the calling thread ([`crate::precision::current`]):
    /// build it before the batch chunks go to their worker threads.
    ///
    /// # Safety
    /// `rhs` must cover `k x n` readable elements for as long as this lives.
    pub unsafe fn new(
        k: usize,
        n: usize,
        rhs: View,
        chunk_rows: usize,
        threads: usize,
    ) -> StepRhs<'static> {
        let prec = crate::precision::current();
        if prec == Precision::Bf16 && chunk_rows <= SKINNY_ROWS && rhs.rs == 1 {
            StepRhs::Raw(rhs, prec)
        } else if prec == Precision::Bf16 && k > 0 && n > 0 {
            StepRhs::Bf16(Bf16Rhs::pack(k, n, rhs, threads))
        } else if (SKINNY_ROWS + 1..=PACK_MAX_ROWS).contains(&chunk_rows)
            && k > 0
            && n > 0
            && !crate::turned_off("RECUR_NO_PACK")
        {
            StepRhs::Packed(PackedLinear::from_rhs(k, n, rhs, threads))
        } else {
            StepRhs::Raw(rhs, Precision::F32)
        }
    }

    /// `dst [m, n] (+)= lhs [m, k] @ rhs`, `lhs` and `dst` row-major and
    /// contiguous.
    ///
    /// # Safety
    /// `lhs` must hold `m x k` readable and `dst` `m x n` writable elements
    /// that no other thread touches meanwhile.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn product(
        &self,
        m: usize,
        n: usize,
        k: usize,
        dst: *mut f32,
        lhs: *const f32,
        accumulate: bool,
        threads: usize,
    ) {
        let packed = |p: &PackedLinear| {
            debug_assert_eq!((p.inputs(), p.outputs()), (k, n));
            let x = std::slice::from_raw_parts(lhs, m * k);
            let y = std::slice::from_raw_parts_mut(dst, m * n);
            if accumulate {
                p.forward_add(x, y, threads)
            } else {
                p.forward(x, y, threads)
            }
        };
        match self {
            StepRhs::Packed(p) => packed(p),
            StepRhs::Shared(p) => packed(p),
            StepRhs::Raw(v, prec) => matmul(
                m,
                n,
                k,
                dst,
                View::rows(lhs, k),
                *v,
                accumulate,
                threads,
                *prec,
            ),
            StepRhs::Bf16(p) => {
                debug_assert_eq!((p.inputs(), p.outputs()), (k, n));
                p.product(m, dst, n, View::rows(lhs, k), accumulate, threads)
            }
        }
    }
}

/// A buffer of `n` f32 for a kernel's output, not zero-filled.
///
/// Filling the LVM's outputs with zeros only for the kernels to overwrite
/// them (about 15 MB per layer per training step: the hidden states, the
/// saved gates and cells, the gate and weight gradients) ran on one thread
/// while the other waited, and put it to sleep before the next product.
/// This is what candle's own `alloc_uninit` does for its outputs.
///
/// # Safety
/// The caller writes every element before anything reads it. (f32 has no
/// invalid bit patterns, so a missed element would be a wrong number, not
/// undefined behaviour of the program; the tests compare every output
/// with an oracle.)
#[allow(clippy::uninit_vec)]
pub(crate) unsafe fn output_vec(n: usize) -> Vec<f32> {
    if POISON_OUTPUTS.load(std::sync::atomic::Ordering::Relaxed) {
        return vec![f32::NAN; n];
    }
    let mut v = Vec::with_capacity(n);
    v.set_len(n);
    v
}

/// Whether [`output_vec`] fills with NaN ([`poison_outputs`]).
static POISON_OUTPUTS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// For tests: with `true`, the kernels' output buffers start as NaN
/// instead of whatever the allocator hands out, so that an element a
/// kernel fails to write shows in every comparison with an oracle (a fresh
/// large allocation is often zero pages, which would hide it). It costs a
/// fill per buffer; nothing but tests should turn it on.
pub fn poison_outputs(on: bool) {
    POISON_OUTPUTS.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// A raw pointer that may cross threads: each thread writes only the rows
/// of its own batch chunk.
#[derive(Clone, Copy)]
pub(crate) struct SendPtr(pub *mut f32);
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

impl SendPtr {
    /// The pointer (a method, so that a closure captures the whole
    /// wrapper, which may cross threads, and not its field).
    pub fn get(self) -> *mut f32 {
        self.0
    }
}

#[derive(Clone, Copy)]
pub(crate) struct SendConst(pub *const f32);
unsafe impl Send for SendConst {}
unsafe impl Sync for SendConst {}

/// Splits `batch` rows into chunks, one per thread, when each chunk keeps
/// enough rows for its GEMMs to stay efficient. With one chunk the GEMMs
/// themselves get the threads (batch-1 inference).
pub(crate) fn plan(batch: usize, threads: usize) -> (Vec<std::ops::Range<usize>>, usize) {
    const MIN_ROWS: usize = 16;
    let n = threads.min(batch / MIN_ROWS).max(1);
    let chunks = (0..n)
        .map(|i| (batch * i / n)..(batch * (i + 1) / n))
        .collect();
    let gemm_threads = if n == 1 { threads } else { 1 };
    (chunks, gemm_threads)
}

/// `dst[m, n] (+)= lhs[m, k] @ w[n, k]^T` for 1..=6 rows: each weight row
/// is read once and dotted with every lhs row. Columns are split across
/// threads when there are enough of them, and read in the order
/// [`zigzag`] gives. With `round_w` every weight is rounded to bf16 as it
/// is read (the bf16 path; `lhs` is rounded already).
#[allow(clippy::too_many_arguments)]
unsafe fn skinny(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    dst_rs: usize,
    lhs: View,
    rhs: View,
    accumulate: bool,
    threads: usize,
    round_w: bool,
) {
    use rayon::prelude::*;
    let (a, a_rs) = (SendConst(lhs.ptr), lhs.rs as usize);
    let (w, w_rs) = (SendConst(rhs.ptr), rhs.cs as usize);
    let out = SendPtr(dst);
    let run = move |cols: std::ops::Range<usize>, backwards: bool| {
        let (a, w, out) = (a, w, out);
        // SAFETY: the caller guarantees the views cover m x k and k x n
        // elements, and dst m rows of n, `dst_rs` apart.
        let a = std::slice::from_raw_parts(a.0, (m - 1) * a_rs + k);
        let w = std::slice::from_raw_parts(w.0.add(cols.start * w_rs), (cols.len() - 1) * w_rs + k);
        // One slice per row, of this part's columns only: a slice over
        // all the rows spanned the other parts' columns too, two `&mut`
        // over the same memory in two threads.
        let mut rows: [&mut [f32]; SKINNY_ROWS] = std::array::from_fn(|r| {
            if r < m {
                std::slice::from_raw_parts_mut(out.0.add(r * dst_rs + cols.start), cols.len())
            } else {
                Default::default()
            }
        });
        let d = &mut rows[..m];
        #[cfg(target_arch = "x86_64")]
        if !round_w && crate::packed::wide() {
            // SAFETY: `wide` found avx512f on this CPU.
            return skinny_wide_rows(m, k, cols.len(), a, a_rs, w, w_rs, d, accumulate, backwards);
        }
        skinny_kernel(
            m,
            k,
            cols.len(),
            a,
            a_rs,
            w,
            w_rs,
            d,
            accumulate,
            round_w,
            backwards,
        );
    };
    // At least 64 columns a part (and so never an empty one, whatever
    // --threads says).
    let parts = if threads > 1 && n >= 512 {
        threads.min(n / 64)
    } else {
        1
    };
    let backwards = zigzag();
    let part = |p: usize| run(n * p / parts..n * (p + 1) / parts, backwards);
    if parts == 1 {
        run(0..n, backwards);
    } else if !crate::partner::split(parts, &part) {
        (0..parts).into_par_iter().for_each(part);
    }
}

/// The skinny products for 1..=6 rows, rounding every weight to bf16 as it
/// is read when `round` (the bf16 path).
#[multiversion::multiversion(targets(
    "x86_64+avx512f+avx512vl+avx2+fma",
    "x86_64+avx2+fma",
    "aarch64+neon"
))]
#[allow(clippy::too_many_arguments)]
fn skinny_kernel(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    a_rs: usize,
    w: &[f32],
    w_rs: usize,
    d: &mut [&mut [f32]],
    accumulate: bool,
    round: bool,
    backwards: bool,
) {
    macro_rules! rows {
        ($round:literal) => {
            match m {
                1 => skinny_rows::<1, $round>(k, n, a, a_rs, w, w_rs, d, accumulate, backwards),
                2 => skinny_rows::<2, $round>(k, n, a, a_rs, w, w_rs, d, accumulate, backwards),
                3 => skinny_rows::<3, $round>(k, n, a, a_rs, w, w_rs, d, accumulate, backwards),
                4 => skinny_rows::<4, $round>(k, n, a, a_rs, w, w_rs, d, accumulate, backwards),
                5 => skinny_rows::<5, $round>(k, n, a, a_rs, w, w_rs, d, accumulate, backwards),
                _ => skinny_rows::<6, $round>(k, n, a, a_rs, w, w_rs, d, accumulate, backwards),
            }
        };
    }
    if round {
        rows!(true)
    } else {
        rows!(false)
    }
}

/// The column order of this thread's next skinny product: each call goes
/// the other way from the one before. A recurrent layer at batch 1 reads
/// the same `w_hh` at every step, larger than L2 (3-4 MiB against 2 MiB on
/// the Xeon measured); read in one direction, each step evicts what the
/// next needs first, while alternating starts each step on what is still
/// cached. Measured on one core, `[1, 512] x [512, 1536]` repeated: 100 ->
/// 75 us. The direction changes no sum. `RECUR_NO_ZIGZAG` turns it off,
/// for A/B timing.
pub(crate) fn zigzag() -> bool {
    use std::sync::OnceLock;
    static OFF: OnceLock<bool> = OnceLock::new();
    thread_local! {
        static BACKWARDS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
    if *OFF.get_or_init(|| crate::turned_off("RECUR_NO_ZIGZAG")) {
        return false;
    }
    BACKWARDS.with(|b| b.replace(!b.get()))
}

/// Lanes per partial sum: independent accumulators the compiler maps to
/// SIMD registers.
const LANES: usize = 16;

/// `d[r, c] (+)= rows[r] . w[c]` for every row and column, column by
/// column (from the last back when `backwards`, so that the columns one
/// step reads last are the first the next step reads, while still in
/// cache). Each sum: 16 lane sums over the full chunks of k, added lane 0
/// first, then the tail; [`skinny_wide`] gives the same bits.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn skinny_rows<const M: usize, const ROUND: bool>(
    k: usize,
    n: usize,
    a: &[f32],
    a_rs: usize,
    w: &[f32],
    w_rs: usize,
    d: &mut [&mut [f32]],
    accumulate: bool,
    backwards: bool,
) {
    let rows: [&[f32]; M] = std::array::from_fn(|r| &a[r * a_rs..r * a_rs + k]);
    let full = k / LANES * LANES;
    for ci in 0..n {
        let c = if backwards { n - 1 - ci } else { ci };
        let wr = &w[c * w_rs..c * w_rs + k];
        let mut acc = [[0.0f32; LANES]; M];
        let mut kk = 0;
        while kk < full {
            // SAFETY: kk + LANES <= full <= k, the length of wr and of
            // every row; unchecked reads keep the accumulators in registers.
            let mut wv: [f32; LANES] =
                unsafe { std::array::from_fn(|j| *wr.get_unchecked(kk + j)) };
            if ROUND {
                // A plain loop, not `map`: `map` was left a call per
                // element, which made the bf16 path 8x slower than f32.
                for v in wv.iter_mut() {
                    *v = round_bf16(*v);
                }
            }
            for r in 0..M {
                let av: [f32; LANES] =
                    unsafe { std::array::from_fn(|j| *rows[r].get_unchecked(kk + j)) };
                for j in 0..LANES {
                    acc[r][j] = av[j].mul_add(wv[j], acc[r][j]);
                }
            }
            kk += LANES;
        }
        for r in 0..M {
            let mut s = acc[r].iter().sum::<f32>();
            for t in full..k {
                let wt = if ROUND { round_bf16(wr[t]) } else { wr[t] };
                s = rows[r][t].mul_add(wt, s);
            }
            let o = &mut d[r][c];
            *o = if accumulate { *o + s } else { s };
        }
    }
}

/// Columns the AVX-512 skinny product does at once: four independent sums
/// per row hide the FMA latency, where one column alone is a chain of
/// k / 16 dependent FMAs (about 130 cycles at k = 512, slower than L2 can
/// deliver its 2 KiB). Written with intrinsics because the compiler,
/// given four columns of portable code, vectorised across the columns
/// with shuffles instead (2x slower than one column).
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
const GROUP: usize = 4;

/// [`skinny_wide`] for `m` (1..=6) rows.
///
/// # Safety
/// As [`skinny_wide`].
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
unsafe fn skinny_wide_rows(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    a_rs: usize,
    w: &[f32],
    w_rs: usize,
    d: &mut [&mut [f32]],
    accumulate: bool,
    backwards: bool,
) {
    macro_rules! rows {
        ($m:literal) => {
            skinny_wide::<$m>(k, n, a, a_rs, w, w_rs, d, accumulate, backwards)
        };
    }
    match m {
        1 => rows!(1),
        2 => rows!(2),
        3 => rows!(3),
        4 => rows!(4),
        5 => rows!(5),
        _ => rows!(6),
    }
}

/// [`skinny_rows`] in f32 with AVX-512, the same sums to the bit (the same
/// lane sums, added in the same order), four columns at a time.
///
/// # Safety
/// The CPU must have avx512f; the slices are those of [`skinny_rows`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn skinny_wide<const M: usize>(
    k: usize,
    n: usize,
    a: &[f32],
    a_rs: usize,
    w: &[f32],
    w_rs: usize,
    d: &mut [&mut [f32]],
    accumulate: bool,
    backwards: bool,
) {
    let rows: [&[f32]; M] = std::array::from_fn(|r| &a[r * a_rs..r * a_rs + k]);
    let groups = n / GROUP;
    if backwards {
        for c in (groups * GROUP..n).rev() {
            wide_cols::<M, 1>(k, &rows, w, w_rs, c, d, accumulate);
        }
    }
    for gi in 0..groups {
        let g = if backwards { groups - 1 - gi } else { gi };
        wide_cols::<M, GROUP>(k, &rows, w, w_rs, g * GROUP, d, accumulate);
    }
    if !backwards {
        for c in groups * GROUP..n {
            wide_cols::<M, 1>(k, &rows, w, w_rs, c, d, accumulate);
        }
    }
}

/// Columns `c0..c0 + G` of [`skinny_wide`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
#[allow(clippy::too_many_arguments)]
unsafe fn wide_cols<const M: usize, const G: usize>(
    k: usize,
    rows: &[&[f32]; M],
    w: &[f32],
    w_rs: usize,
    c0: usize,
    d: &mut [&mut [f32]],
    accumulate: bool,
) {
    use std::arch::x86_64::*;
    let full = k / LANES * LANES;
    let wr: [&[f32]; G] = std::array::from_fn(|g| &w[(c0 + g) * w_rs..(c0 + g) * w_rs + k]);
    let mut acc = [[_mm512_setzero_ps(); G]; M];
    let mut kk = 0;
    while kk < full {
        // SAFETY (all loads): kk + 16 <= full <= k, the length of every
        // weight row and lhs row.
        let wv: [__m512; G] = std::array::from_fn(|g| _mm512_loadu_ps(wr[g].as_ptr().add(kk)));
        for r in 0..M {
            let av = _mm512_loadu_ps(rows[r].as_ptr().add(kk));
            for g in 0..G {
                acc[r][g] = _mm512_fmadd_ps(av, wv[g], acc[r][g]);
            }
        }
        kk += LANES;
    }
    for r in 0..M {
        for g in 0..G {
            let lanes: [f32; LANES] = std::mem::transmute(acc[r][g]);
            let mut s = lanes.iter().sum::<f32>();
            for t in full..k {
                s = rows[r][t].mul_add(wr[g][t], s);
            }
            let o = &mut d[r][c0 + g];
            *o = if accumulate { *o + s } else { s };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A thread count far above the columns (`--threads 1000`) splits the
    /// skinny product into parts of at least 64 columns, none empty.
    #[test]
    fn more_threads_than_columns_split_the_skinny_product_safely() {
        let (m, n, k) = (2, 600, 9);
        let a: Vec<f32> = (0..m * k).map(|i| i as f32 * 0.1).collect();
        let w: Vec<f32> = (0..n * k).map(|i| (i % 7) as f32).collect();
        let mut d = vec![0f32; m * n];
        // SAFETY: a is [m, k], w [n, k] (viewed transposed), d [m, n].
        unsafe {
            matmul(
                m,
                n,
                k,
                d.as_mut_ptr(),
                View::rows(a.as_ptr(), k),
                View::t(w.as_ptr(), k),
                false,
                1000,
                Precision::F32,
            );
        }
        for r in 0..m {
            for c in 0..n {
                let want: f32 = (0..k).map(|t| a[r * k + t] * w[c * k + t]).sum();
                assert!((d[r * n + c] - want).abs() < 1e-4, "({r}, {c})");
            }
        }
    }

    /// The skinny sums in their documented order, to the bit: 16 lane sums
    /// over the full chunks of k, added lane 0 first, then the tail; for
    /// the portable kernel and, where the CPU has AVX-512, the four-column
    /// one, in both column orders, for every row count, with column and k
    /// tails, with and without accumulation.
    #[test]
    fn skinny_kernels_give_the_documented_sums_bit_for_bit() {
        let val = |i: usize| ((i * 7919 % 1009) as f32 - 504.0) / 97.0;
        for (k, n) in [(37, 45), (512, 13), (16, 4), (5, 7)] {
            let w: Vec<f32> = (0..n * k).map(val).collect(); // [n, k]
            for m in 1..=6 {
                let a: Vec<f32> = (0..m * k).map(|i| val(i + 31)).collect();
                let full = k / LANES * LANES;
                for accumulate in [false, true] {
                    let d0: Vec<f32> = (0..m * n).map(|i| val(i + 3)).collect();
                    let mut want = d0.clone();
                    for r in 0..m {
                        for c in 0..n {
                            let mut lanes = [0f32; LANES];
                            for (t, lane) in (0..full).map(|t| (t, t % LANES)) {
                                lanes[lane] = a[r * k + t].mul_add(w[c * k + t], lanes[lane]);
                            }
                            let mut s = lanes.iter().sum::<f32>();
                            for t in full..k {
                                s = a[r * k + t].mul_add(w[c * k + t], s);
                            }
                            let o = &mut want[r * n + c];
                            *o = if accumulate { *o + s } else { s };
                        }
                    }
                    for backwards in [false, true] {
                        let mut d = d0.clone();
                        let mut rows: Vec<&mut [f32]> = d.chunks_mut(n).collect();
                        skinny_kernel(
                            m, k, n, &a, k, &w, k, &mut rows, accumulate, false, backwards,
                        );
                        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                        assert_eq!(bits(&d), bits(&want), "portable m {m} k {k} n {n}");
                        #[cfg(target_arch = "x86_64")]
                        if is_x86_feature_detected!("avx512f") {
                            let mut d = d0.clone();
                            let mut rows: Vec<&mut [f32]> = d.chunks_mut(n).collect();
                            // SAFETY: avx512f was detected; the slices are
                            // [m, k], [n, k] and m rows of n.
                            unsafe {
                                skinny_wide_rows(
                                    m, k, n, &a, k, &w, k, &mut rows, accumulate, backwards,
                                )
                            }
                            assert_eq!(bits(&d), bits(&want), "AVX-512 m {m} k {k} n {n}");
                        }
                    }
                }
            }
        }
    }

    /// Each skinny product on a thread reads its columns the other way
    /// from the one before.
    #[test]
    fn column_order_alternates_per_thread() {
        let first = zigzag();
        let seq: Vec<bool> = (0..5).map(|_| zigzag()).collect();
        assert_eq!(seq, [!first, first, !first, first, !first]);
    }

    /// A skinny product split across a partner team gives the bits of the
    /// same product split by rayon, call after call (so in both column
    /// orders).
    #[test]
    fn partner_split_skinny_products_match_rayon_ones() {
        let (n, k) = (1030, 512);
        let val = |i: usize| ((i * 7919 % 1009) as f32 - 504.0) / 97.0;
        let w: Vec<f32> = (0..n * k).map(val).collect();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        for m in [1, 5] {
            let a: Vec<f32> = (0..m * k).map(|i| val(i + 17)).collect();
            let product = || {
                let mut d = vec![0f32; m * n];
                // SAFETY: a is [m, k], w [n, k] (viewed transposed), d [m, n].
                unsafe {
                    matmul(
                        m,
                        n,
                        k,
                        d.as_mut_ptr(),
                        View::rows(a.as_ptr(), k),
                        View::t(w.as_ptr(), k),
                        false,
                        2,
                        Precision::F32,
                    );
                }
                d.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
            };
            let by_rayon: Vec<_> = pool.install(|| (0..4).map(|_| product()).collect());
            let by_team: Vec<_> = pool
                .install(|| crate::partner::with_partners(|| (0..4).map(|_| product()).collect()));
            assert_eq!(by_rayon, by_team, "m {m}");
        }
    }

    /// Every path of `matmul_into` (skinny rows, GEMM; in f32 and in bf16,
    /// where the operands must be rounded) against a plain triple loop, with
    /// and without accumulation, on sizes with SIMD tails, into a
    /// destination whose rows are wider than `n`: the padding between rows
    /// must stay untouched.
    #[test]
    fn matmul_paths_match_a_plain_product() {
        let (k, n, dst_rs) = (37, 45, 50);
        let val = |i: usize| ((i * 7919 % 1009) as f32 - 504.0) / 504.0;
        let w: Vec<f32> = (0..n * k).map(val).collect(); // [n, k]
        for (m, prec) in (1..=9).flat_map(|m| [(m, Precision::F32), (m, Precision::Bf16)]) {
            let a: Vec<f32> = (0..m * k).map(|i| val(i + 13)).collect();
            let op = |v: f32| match prec {
                Precision::F32 => v,
                Precision::Bf16 => round_bf16(v),
            };
            for accumulate in [false, true] {
                let mut d: Vec<f32> = (0..m * dst_rs).map(|i| val(i + 5)).collect();
                let mut want = d.clone();
                for r in 0..m {
                    for c in 0..n {
                        let s: f32 = (0..k).map(|t| op(a[r * k + t]) * op(w[c * k + t])).sum();
                        let o = &mut want[r * dst_rs + c];
                        *o = if accumulate { *o + s } else { s };
                    }
                }
                // SAFETY: a is [m, k], w is [n, k] (its transpose viewed), d
                // holds m rows of dst_rs >= n elements.
                unsafe {
                    matmul_into(
                        m,
                        n,
                        k,
                        d.as_mut_ptr(),
                        dst_rs,
                        View::rows(a.as_ptr(), k),
                        View::t(w.as_ptr(), k),
                        accumulate,
                        1,
                        prec,
                    );
                }
                let err = d
                    .iter()
                    .zip(&want)
                    .fold(0f32, |e, (x, y)| e.max((x - y).abs()));
                assert!(
                    err < 1e-4,
                    "m {m}, {prec}, accumulate {accumulate}: max error {err}"
                );
            }
        }
    }

    /// A product split by columns across threads gives the bits of the
    /// same product on one thread and of the `gemm` crate's own split: the
    /// crate's sums over `k` do not depend on which columns a call holds.
    #[test]
    fn column_split_products_equal_one_thread_bit_for_bit() {
        let val = |i: usize| ((i * 7919 % 1009) as f32 - 504.0) / 504.0;
        // The LVM's input gradient, an odd shape, and a transposed left
        // side (a weight gradient's), into a strided destination.
        for (m, n, k, lhs_t) in [
            (320, 512, 2048, false),
            (97, 300, 777, false),
            (130, 260, 300, true),
        ] {
            assert!(
                split_columns(m, n, k),
                "{m} x {n} x {k} should take the split"
            );
            let dst_rs = n + 3;
            let a: Vec<f32> = (0..m * k).map(val).collect();
            let w: Vec<f32> = (0..n * k).map(|i| val(i + 11)).collect(); // [k, n]
            let lhs = if lhs_t {
                View::t(a.as_ptr(), m)
            } else {
                View::rows(a.as_ptr(), k)
            };
            for accumulate in [false, true] {
                let start: Vec<f32> = (0..m * dst_rs).map(|i| val(i + 5)).collect();
                let run = |threads: usize, split: bool| {
                    let mut d = start.clone();
                    // SAFETY: a covers m x k through either view, w is
                    // [k, n], d holds m rows of dst_rs >= n elements.
                    unsafe {
                        if split {
                            matmul_into(
                                m,
                                n,
                                k,
                                d.as_mut_ptr(),
                                dst_rs,
                                lhs,
                                View::rows(w.as_ptr(), n),
                                accumulate,
                                threads,
                                Precision::F32,
                            );
                        } else {
                            gemm::gemm(
                                m,
                                n,
                                k,
                                d.as_mut_ptr(),
                                1,
                                dst_rs as isize,
                                accumulate,
                                lhs.ptr,
                                lhs.cs,
                                lhs.rs,
                                w.as_ptr(),
                                1,
                                n as isize,
                                1.0,
                                1.0,
                                false,
                                false,
                                false,
                                if threads > 1 {
                                    Parallelism::Rayon(threads)
                                } else {
                                    Parallelism::None
                                },
                            );
                        }
                    }
                    d.iter().map(|v| v.to_bits()).collect::<Vec<u32>>()
                };
                let one = run(1, false);
                assert_eq!(run(3, true), one, "{m} x {n} x {k}, split");
                assert_eq!(run(3, false), one, "{m} x {n} x {k}, the crate's split");
            }
        }
    }
}

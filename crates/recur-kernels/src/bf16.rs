//! bf16 products with f32 accumulation, the kernels' opt-in reduced
//! precision ([`crate::precision`]): `dst (+)= lhs @ rhs` with both
//! operands rounded to bf16 (to nearest even) and every sum kept in f32.
//!
//! Layout, as [`crate::packed`] but in pairs: the right-hand side `[k, n]`
//! becomes panels of [`NR`] columns, each `[k/2][NR]` 32-bit words, a word
//! holding the bf16 values of steps `2t` (low half) and `2t + 1` (high
//! half) of one column; the left-hand side is copied per block into strips
//! of [`MR`] rows of such pairs. That is the operand order of AVX512-BF16's
//! `vdpbf16ps`, which multiplies a broadcast pair of one row against the
//! pairs of 16 columns and adds both products to 16 f32 sums: one
//! instruction per pair and row, twice the f32 FMA's work per instruction.
//!
//! On a CPU without it, the same words are widened to f32 (a shift) and
//! multiplied with FMAs in the instruction's order, odd step first: a
//! product of two bf16 values is exact in f32, so each step rounds the same
//! sum the instruction rounds and the two paths agree (except that the
//! instruction takes subnormal operands, below 1.2e-38, as zero and flushes
//! subnormal results).
//! The hardware kernel is checked against that reference on its first use
//! ([`units`]) and left unused, with a warning, if they disagree: CI's
//! machines may lack the instruction, so the tests cannot be relied on to
//! run it (on a Zen 4 it passed, and a bf16 training gave the reference
//! path's weights byte for byte).

use crate::mat::{SendPtr, View};
use multiversion::multiversion;
use rayon::prelude::*;
use std::sync::OnceLock;

/// Output columns per panel (one 512-bit vector of f32 sums).
const NR: usize = 16;
/// Rows per micro-kernel call.
const MR: usize = 6;
/// Inner steps per block, even: 128 pairs, an 8 KiB panel slice.
const KC: usize = 256;
/// Row block.
const MC: usize = 96;
/// Panels are padded to a multiple of this many pair rows: an AMX tile's.
pub(crate) const KT: usize = 16;

/// The AMX kernel's blocks ([`crate::amx`]): pair rows per block (a
/// multiple of [`KT`]; two panels' slices of it, 32 KiB, stay in L1 while
/// the rows' strips go by) and rows (a multiple of 32, the strips 256 KiB).
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
const KC_AMX: usize = 256;
const MC_AMX: usize = 256;
const _: () = assert!(MC <= MC_AMX);
/// Fewer rows than this stay on the vector kernels: a tile's 16 rows
/// would mostly multiply padding.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
const AMX_MIN_ROWS: usize = 16;

/// f32 to bf16, rounding to nearest even; a NaN stays a NaN and a value
/// past bf16's largest rounds to infinity, as the conversion instructions
/// do.
/// Branch-free, so that loops over it vectorise.
#[inline(always)]
pub(crate) fn round(v: f32) -> u16 {
    let b = v.to_bits();
    let nearest = b.wrapping_add(0x7fff + ((b >> 16) & 1)) >> 16;
    let nan = (b & 0x7fff_ffff) > 0x7f80_0000;
    (if nan { (b >> 16) | 0x40 } else { nearest }) as u16
}

/// `v` rounded to the nearest bf16 value, as an f32.
#[inline(always)]
pub fn rounded(v: f32) -> f32 {
    f32::from_bits((round(v) as u32) << 16)
}

/// Two steps of one row or column as one word, the even step low.
#[inline(always)]
pub(crate) fn pair(even: f32, odd: f32) -> u32 {
    round(even) as u32 | (round(odd) as u32) << 16
}

#[inline(always)]
pub(crate) fn low(w: u32) -> f32 {
    f32::from_bits(w << 16)
}

#[inline(always)]
pub(crate) fn high(w: u32) -> f32 {
    f32::from_bits(w & 0xffff_0000)
}

/// Whether this CPU's bf16 instructions take the products: detected at run
/// time, once, and checked against the f32-unit reference on a product of
/// every row count. `RECUR_NO_BF16_UNITS` in the environment forces the
/// reference (to compare both on one machine).
pub(crate) fn units() -> bool {
    static UNITS: OnceLock<bool> = OnceLock::new();
    *UNITS.get_or_init(|| {
        if crate::turned_off("RECUR_NO_BF16_UNITS") {
            return false;
        }
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bf16") {
            return self_check();
        }
        false
    })
}

/// The hardware kernel against the reference ([`agrees`]); `false`, with
/// a warning, on any disagreement.
#[cfg(target_arch = "x86_64")]
fn self_check() -> bool {
    // SAFETY: the caller detected avx512f and avx512bf16.
    let hw = |s: &[u32], kcp: usize, rows: usize, p: &[u32], acc: &mut [[f32; NR]; MR]| unsafe {
        hardware(s, kcp, rows, p, acc)
    };
    // The two-panel kernel on one panel twice: both halves must be the
    // one-panel kernel's sums (a NaN, never close, when they differ).
    let hw2 = |s: &[u32], kcp: usize, rows: usize, p: &[u32], acc: &mut [[f32; NR]; MR]| {
        let mut two = [[0f32; 2 * NR]; MR];
        // SAFETY: as above.
        unsafe { hardware2(s, kcp, rows, p, p, &mut two) };
        for (a, t) in acc.iter_mut().zip(&two) {
            let same = t[..NR]
                .iter()
                .zip(&t[NR..])
                .all(|(x, y)| x.to_bits() == y.to_bits());
            *a = std::array::from_fn(|j| if same { t[j] } else { f32::NAN });
        }
    };
    match agrees(hw).and_then(|()| agrees(hw2)) {
        Ok(()) => true,
        Err(why) => {
            eprintln!(
                "warning: this CPU's AVX512-BF16 products disagree with recur's reference ({why}); \
                 bf16 products run in f32 units instead (same numbers, slower)"
            );
            false
        }
    }
}

/// A micro-kernel's sums against [`reference`]'s on pseudo-random normal
/// values, every row count, within 2e-5 of the sum of |products| (90
/// roundings of at most half an ulp of the running sum keep either kernel
/// within 5.4e-6 of it from the exact sum, whichever way it rounds inside
/// a pair).
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
fn agrees(
    kernel: impl Fn(&[u32], usize, usize, &[u32], &mut [[f32; NR]; MR]),
) -> Result<(), String> {
    let kcp = 45;
    let val = |i: usize| {
        let h = (i as u32).wrapping_mul(2_654_435_761) >> 8;
        (h % 2001) as f32 / 1000.0 - 1.0 + 1e-3
    };
    let word = |i: usize| pair(val(2 * i), val(2 * i + 1));
    let strip: Vec<u32> = (0..MR * kcp).map(word).collect();
    let panel: Vec<u32> = (0..kcp * NR).map(|i| word(i + 7919)).collect();
    for rows in 1..=MR {
        let (mut want, mut got) = ([[0f32; NR]; MR], [[0f32; NR]; MR]);
        reference(&strip, kcp, rows, &panel, &mut want);
        kernel(&strip, kcp, rows, &panel, &mut got);
        for i in 0..rows {
            for j in 0..NR {
                let (w, g) = (want[i][j], got[i][j]);
                let abs: f64 = (0..kcp)
                    .map(|t| {
                        let (x, y) = (strip[i * kcp + t], panel[t * NR + j]);
                        (low(x) as f64 * low(y) as f64).abs()
                            + (high(x) as f64 * high(y) as f64).abs()
                    })
                    .sum();
                let close = ((w - g).abs() as f64) <= 2e-5 * abs;
                if !close {
                    // (A NaN is never close.)
                    return Err(format!("{g} against {w} at row {i}, column {j} of {rows}"));
                }
            }
        }
    }
    Ok(())
}

/// A right-hand side `[k, n]` rounded to bf16 and packed in pair panels.
pub(crate) struct Bf16Rhs {
    k: usize,
    n: usize,
    /// Pairs per column: `k / 2` rounded up (an odd `k` pads a zero).
    kp: usize,
    /// Pair rows per panel: `kp` rounded up to a multiple of 16, the rows
    /// past `kp` zero, so that the AMX kernel's tiles are always whole.
    kps: usize,
    panels: Vec<u32>,
}

// Panel buffers of dropped operands, per thread, for the next ones: a
// training step packs each weight several times, and a fresh buffer of a
// few MiB costs more in page faults (about 2 ms for 4 MiB, measured) than
// its packing does.
thread_local! {
    static SPARE: std::cell::RefCell<Vec<Vec<u32>>> = const { std::cell::RefCell::new(Vec::new()) };
}

thread_local! {
    static STRIPS: std::cell::RefCell<Vec<u32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// How many spare buffers a thread keeps.
const SPARES: usize = 4;

/// A buffer of `len` words, from this thread's spares when one is large
/// enough, with whatever an earlier operand left in it: [`fill_panel`] and
/// [`fill_row_pairs`] write every word, the padding columns too, and
/// `pack` zeroes the padding rows.
fn spare_buffer(len: usize) -> Vec<u32> {
    let reused = SPARE.with(|s| {
        let mut s = s.borrow_mut();
        let i = s.iter().position(|b| b.capacity() >= len)?;
        Some(s.swap_remove(i))
    });
    match reused {
        Some(mut b) => {
            b.truncate(len);
            b.resize(len, 0);
            b
        }
        None => vec![0; len],
    }
}

impl Drop for Bf16Rhs {
    fn drop(&mut self) {
        let b = std::mem::take(&mut self.panels);
        // (`try_with`: a drop while the thread's storage is torn down just
        // frees the buffer.)
        let _ = SPARE.try_with(|s| {
            let mut s = s.borrow_mut();
            if s.len() < SPARES {
                s.push(b);
            } else if let Some(small) = s.iter_mut().min_by_key(|x| x.capacity()) {
                if small.capacity() < b.capacity() {
                    *small = b;
                }
            }
        });
    }
}

impl Bf16Rhs {
    /// Inner dimension `k`.
    pub fn inputs(&self) -> usize {
        self.k
    }

    /// Columns `n`.
    pub fn outputs(&self) -> usize {
        self.n
    }

    /// Rounds and packs `rhs`, element `(t, j)` at `rhs.ptr[t * rs + j *
    /// cs]`, panels filled on `threads`.
    ///
    /// # Safety
    /// `rhs` must cover `k x n` readable elements.
    pub unsafe fn pack(k: usize, n: usize, rhs: View, threads: usize) -> Bf16Rhs {
        assert!(
            k > 0 && n > 0,
            "a bf16 operand of {k} x {n} cannot be packed"
        );
        let kp = k.div_ceil(2);
        let kps = kp.div_ceil(KT) * KT;
        let np = n.div_ceil(NR);
        let mut panels = spare_buffer(np * kps * NR);
        let src = SendPtr(rhs.ptr as *mut f32);
        let parallel = threads > 1 && n * k >= 1 << 16;
        if rhs.cs == 1 {
            // Rows contiguous: row pair by row pair into every panel of a
            // thread's share (see `fill_row_pairs`).
            let parts = if parallel { threads.min(np) } else { 1 };
            let per = np.div_ceil(parts);
            let fill = |(i, share): (usize, &mut [u32])| {
                // SAFETY: the caller's view covers k x n.
                unsafe { fill_row_pairs(share, kps, src, rhs.rs, k, n, i * per) }
            };
            if parts > 1 {
                panels
                    .par_chunks_mut(per * kps * NR)
                    .enumerate()
                    .for_each(fill);
            } else {
                fill((0, &mut panels));
            }
        } else {
            let fill = |(p, panel): (usize, &mut [u32])| {
                let (pairs, pad) = panel.split_at_mut(kp * NR);
                // SAFETY: the caller's view covers k x n.
                unsafe { fill_panel(pairs, src, rhs.rs, rhs.cs, k, n, p * NR) };
                pad.fill(0);
            };
            if parallel {
                panels.par_chunks_mut(kps * NR).enumerate().for_each(fill);
            } else {
                panels.chunks_mut(kps * NR).enumerate().for_each(fill);
            }
        }
        Bf16Rhs {
            k,
            n,
            kp,
            kps,
            panels,
        }
    }

    /// `dst [m, n] (+)= lhs [m, k] @ rhs`, `dst` rows `dst_rs` elements
    /// apart, `lhs` element `(r, t)` at `lhs.ptr[r * rs + t * cs]`;
    /// panels split over `threads`.
    ///
    /// # Safety
    /// `lhs` must cover `m x k` readable elements and `dst` `m` rows of
    /// `dst_rs >= n` writable ones that no other thread touches meanwhile.
    pub unsafe fn product(
        &self,
        m: usize,
        dst: *mut f32,
        dst_rs: usize,
        lhs: View,
        accumulate: bool,
        threads: usize,
    ) {
        if m == 0 {
            return;
        }
        let np = self.n.div_ceil(NR);
        let parts = if threads > 1 && m * self.n * self.k >= 1 << 18 {
            threads.min(np)
        } else {
            1
        };
        let hw = units();
        #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
        let tiles = m >= AMX_MIN_ROWS && crate::amx::available();
        let (lp, dp) = (SendPtr(lhs.ptr as *mut f32), SendPtr(dst));
        let run = |part: usize| {
            let (lp, dp) = (lp, dp);
            let lhs = View {
                ptr: lp.0,
                rs: lhs.rs,
                cs: lhs.cs,
            };
            let panels = np * part / parts..np * (part + 1) / parts;
            #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
            if tiles {
                // SAFETY: as below; `available` said the tiles work here.
                unsafe { self.run_panels_amx(m, lhs, dp, dst_rs, panels, accumulate) };
                return;
            }
            // SAFETY: as the caller guarantees; parts write disjoint
            // columns.
            unsafe { self.run_panels(m, lhs, dp, dst_rs, panels, accumulate, hw) };
        };
        if parts == 1 {
            run(0);
        } else {
            (0..parts).into_par_iter().for_each(run);
        }
    }

    /// [`Bf16Rhs::run_panels`] on AMX tiles ([`crate::amx`]): blocks of 32
    /// rows by two panels, a block's pair rows in steps of 16. Strips are
    /// padded with zero rows and pairs to whole tiles, as the panels are.
    ///
    /// # Safety
    /// As [`Bf16Rhs::product`], and [`crate::amx::available`] returned
    /// `true`.
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    unsafe fn run_panels_amx(
        &self,
        m: usize,
        lhs: View,
        dst: SendPtr,
        dst_rs: usize,
        panels: std::ops::Range<usize>,
        accumulate: bool,
    ) {
        use crate::amx::{Block, Tiles, CT, RT};
        let (n, k, kp) = (self.n, self.k, self.kp);
        let stride_max = KC_AMX.min(self.kps);
        let need = MC_AMX.min(m.div_ceil(RT) * RT) * stride_max;
        let mut strips = STRIPS.with(|b| std::mem::take(&mut *b.borrow_mut()));
        if strips.len() < need {
            strips.resize(need, 0);
        }
        let tiles = Tiles::new();
        let mut c: Block = [[0f32; CT]; RT];
        for p0 in (0..kp).step_by(KC_AMX) {
            let p1 = (p0 + KC_AMX).min(kp);
            // Pair rows, whole tiles; the panels' padding rows are zero.
            let stride = (p1 - p0).div_ceil(KT) * KT;
            let (k0, k1) = (2 * p0, (2 * p1).min(k));
            let add = accumulate || p0 > 0;
            for m0 in (0..m).step_by(MC_AMX) {
                let m1 = (m0 + MC_AMX).min(m);
                let rows = m1 - m0;
                fill_strips(
                    &mut strips,
                    stride,
                    SendPtr(lhs.ptr as *mut f32),
                    lhs.rs,
                    lhs.cs,
                    m0,
                    m1,
                    k0,
                    k1,
                );
                // Zeros past each row's pairs and in the rows past `rows`.
                let kcp = p1 - p0;
                if kcp < stride {
                    for r in 0..rows {
                        strips[r * stride + kcp..(r + 1) * stride].fill(0);
                    }
                }
                let padded = rows.div_ceil(RT) * RT;
                strips[rows * stride..padded * stride].fill(0);
                let mut p = panels.start;
                while p < panels.end {
                    let two = p + 1 < panels.end;
                    let c0 = p * NR;
                    let cols = (if two { 2 * NR } else { NR }).min(n - c0);
                    let panel = |q: usize| self.panels.as_ptr().add((q * self.kps + p0) * NR);
                    let (b0, b1) = (panel(p), panel(if two { p + 1 } else { p }));
                    for r in (0..rows).step_by(RT) {
                        tiles.block(
                            strips.as_ptr().add(r * stride),
                            stride,
                            b0,
                            b1,
                            stride,
                            &mut c,
                        );
                        // SAFETY: rows m0 + r.. and columns c0..c0 + cols
                        // lie in the caller's m x n, in this call's panels.
                        store_tile(
                            &c[..RT.min(rows - r)],
                            RT.min(rows - r),
                            cols,
                            dst.0.add((m0 + r) * dst_rs + c0),
                            dst_rs,
                            add,
                        );
                    }
                    p += if two { 2 } else { 1 };
                }
            }
        }
        drop(tiles);
        STRIPS.with(|b| *b.borrow_mut() = strips);
    }

    /// # Safety
    /// As [`Bf16Rhs::product`].
    #[allow(clippy::too_many_arguments)]
    unsafe fn run_panels(
        &self,
        m: usize,
        lhs: View,
        dst: SendPtr,
        dst_rs: usize,
        panels: std::ops::Range<usize>,
        accumulate: bool,
        hw: bool,
    ) {
        let (n, k, kp) = (self.n, self.k, self.kp);
        // This thread's strip buffer, kept between calls (a fresh zeroed
        // one per call showed in profiles as memset); every word a kernel
        // reads is written first.
        let need = MC.div_ceil(MR) * MR * (KC / 2).min(kp);
        let mut strips = STRIPS.with(|b| std::mem::take(&mut *b.borrow_mut()));
        if strips.len() < need {
            strips.resize(need, 0);
        }
        for k0 in (0..k).step_by(KC) {
            let k1 = (k0 + KC).min(k);
            let kcp = (k1 - k0).div_ceil(2);
            let add = accumulate || k0 > 0;
            for m0 in (0..m).step_by(MC) {
                let m1 = (m0 + MC).min(m);
                // SAFETY: rows m0..m1 <= m and steps k0..k1 <= k address
                // the caller's m x k view.
                fill_strips(
                    &mut strips,
                    kcp,
                    SendPtr(lhs.ptr as *mut f32),
                    lhs.rs,
                    lhs.cs,
                    m0,
                    m1,
                    k0,
                    k1,
                );
                let panel = |q: usize| {
                    let base = q * self.kps * NR + k0 / 2 * NR;
                    &self.panels[base..base + kcp * NR]
                };
                // Two panels at a time: twelve independent sums hide the
                // latency of the dot-product instruction, where six (one
                // panel) left it waiting.
                let mut p = panels.start;
                while p < panels.end {
                    let two = p + 1 < panels.end;
                    let c0 = p * NR;
                    let cols = (if two { 2 * NR } else { NR }).min(n - c0);
                    let (pa, pb) = (panel(p), panel(if two { p + 1 } else { p }));
                    for (s, r) in (m0..m1).step_by(MR).enumerate() {
                        let rows = MR.min(m1 - r);
                        let strip = &strips[s * MR * kcp..(s + 1) * MR * kcp];
                        let mut acc = [[0f32; 2 * NR]; MR];
                        tile(hw, two, strip, kcp, rows, pa, pb, &mut acc);
                        // SAFETY: rows r..r + rows < m, columns c0..c0 +
                        // cols < n belong to this call's panels only.
                        store_tile(
                            &acc[..],
                            rows,
                            cols,
                            dst.0.add(r * dst_rs + c0),
                            dst_rs,
                            add,
                        );
                    }
                    p += if two { 2 } else { 1 };
                }
            }
        }
        STRIPS.with(|b| *b.borrow_mut() = strips);
    }
}

/// Rows `m0..m1` (at most [`MC_AMX`]), steps `k0..k1` of the
/// left-hand side at `src` (strides `rs`, `cs`) as rows of `kcp = (k1 -
/// k0) / 2` pairs (rounded up), row `r` at `strips[r * stride..]` (with
/// `stride` `kcp`, strip `s` of [`MR`] rows starts at `s * MR * kcp`);
/// compiled per SIMD level, so the rounding vectorises.
///
/// # Safety
/// `src` must cover those rows and steps with these strides.
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma", "aarch64+neon"))]
#[allow(clippy::too_many_arguments)]
unsafe fn fill_strips(
    strips: &mut [u32],
    stride: usize,
    src: SendPtr,
    rs: isize,
    cs: isize,
    m0: usize,
    m1: usize,
    k0: usize,
    k1: usize,
) {
    let kcp = (k1 - k0).div_ceil(2);
    let rows = m1 - m0;
    if cs == 1 {
        for r in 0..rows {
            // SAFETY: row m0 + r holds steps k0..k1 contiguously.
            let x = unsafe {
                std::slice::from_raw_parts(
                    src.0.offset((m0 + r) as isize * rs + k0 as isize),
                    k1 - k0,
                )
            };
            let dst = &mut strips[r * stride..r * stride + kcp];
            let mut pairs = x.chunks_exact(2);
            for (d, p) in dst.iter_mut().zip(&mut pairs) {
                *d = pair(p[0], p[1]);
            }
            if let [last] = pairs.remainder() {
                dst[kcp - 1] = pair(*last, 0.0);
            }
        }
        return;
    }
    // Rows adjacent in memory (a transposed view: a weight gradient's
    // left-hand side): step by step, the block's rows of two steps are
    // read whole and rounded together, into `words`; every [`TP`] pairs,
    // each row's pairs go to its strip row as one run. (Strip by strip,
    // every strip re-read the same cache lines 24 bytes at a time; pair by
    // pair, every pair was a store to another cache line of a block too
    // large for L1.)
    const TP: usize = 16;
    let mut block = [[0u32; MC_AMX]; TP];
    for tp in 0..kcp {
        let words = &mut block[tp % TP];
        let t = k0 + 2 * tp;
        let odd = t + 1 < k1;
        // SAFETY: rows m0..m1 and steps t (and t + 1 when odd) lie in the
        // caller's view.
        let (e, o) = unsafe {
            let e = src.0.offset(m0 as isize * rs + t as isize * cs) as *const f32;
            (e, if odd { e.offset(cs) } else { e })
        };
        if rs == 1 {
            // SAFETY: as above, `rows` contiguous elements each.
            let (ev, ov) = unsafe {
                (
                    std::slice::from_raw_parts(e, rows),
                    std::slice::from_raw_parts(o, rows),
                )
            };
            if odd {
                for ((w, &x), &y) in words.iter_mut().zip(ev).zip(ov) {
                    *w = pair(x, y);
                }
            } else {
                for (w, &x) in words.iter_mut().zip(ev) {
                    *w = pair(x, 0.0);
                }
            }
        } else {
            for (i, w) in words.iter_mut().enumerate().take(rows) {
                // SAFETY: as above.
                let (x, y) = unsafe {
                    let x = *e.offset(i as isize * rs);
                    (x, if odd { *o.offset(i as isize * rs) } else { 0.0 })
                };
                *w = pair(x, y);
            }
        }
        if tp % TP == TP - 1 || tp + 1 == kcp {
            let (t0, len) = (tp / TP * TP, tp % TP + 1);
            for r in 0..rows {
                let dst = &mut strips[r * stride + t0..][..len];
                for (j, d) in dst.iter_mut().enumerate() {
                    *d = block[j][r];
                }
            }
        }
    }
}

/// `rows` strip rows against one panel slice (`pa`) or two (`pa`, `pb`:
/// columns 0..16 and 16..32 of `acc`), on the bf16 instructions when `hw`.
#[allow(clippy::too_many_arguments)]
fn tile(
    hw: bool,
    two: bool,
    strip: &[u32],
    kcp: usize,
    rows: usize,
    pa: &[u32],
    pb: &[u32],
    acc: &mut [[f32; 2 * NR]; MR],
) {
    #[cfg(target_arch = "x86_64")]
    if hw && two {
        // SAFETY: `units` checked the CPU for avx512f and avx512bf16.
        unsafe { hardware2(strip, kcp, rows, pa, pb, acc) };
        return;
    }
    let halves: &[&[u32]] = if two { &[pa, pb] } else { &[pa] };
    for (h, panel) in halves.iter().enumerate() {
        let mut a = [[0f32; NR]; MR];
        #[cfg(target_arch = "x86_64")]
        if hw {
            // SAFETY: as above.
            unsafe { hardware(strip, kcp, rows, panel, &mut a) };
        } else {
            reference(strip, kcp, rows, panel, &mut a);
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = hw;
            reference(strip, kcp, rows, panel, &mut a);
        }
        for (dst, src) in acc.iter_mut().zip(&a) {
            dst[h * NR..(h + 1) * NR].copy_from_slice(src);
        }
    }
}

/// Adds (or, unless `add`, copies) the first `rows x cols` sums of `acc`
/// into `dst`, rows `dst_rs` apart.
///
/// # Safety
/// `dst` must cover `rows` rows of `cols` writable elements.
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma", "aarch64+neon"))]
unsafe fn store_tile<const C: usize>(
    acc: &[[f32; C]],
    rows: usize,
    cols: usize,
    dst: *mut f32,
    dst_rs: usize,
    add: bool,
) {
    for (i, a) in acc.iter().enumerate().take(rows) {
        // SAFETY: as the caller guarantees.
        let out = unsafe { std::slice::from_raw_parts_mut(dst.add(i * dst_rs), cols) };
        if add {
            for (o, v) in out.iter_mut().zip(a) {
                *o += v;
            }
        } else {
            out.copy_from_slice(&a[..cols]);
        }
    }
}

/// Panels `p0..` (as many as `share` holds, `kps` pair rows each) of the
/// `k x n` view at `src` whose rows are `rs` apart and contiguous: row pair
/// by row pair, each pair's 16-column pieces to every panel in turn, then
/// the padding rows. Panel by panel, every panel read 64 bytes of each
/// row: one cache line per row, 8 KiB apart for a weight of 2,048
/// columns, which no prefetcher follows (this took a fifth of a bf16
/// training step of the LVM). Compiled per SIMD level, so the rounding of
/// a piece vectorises.
///
/// # Safety
/// `src` must cover `k x n` readable elements with row stride `rs`.
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma", "aarch64+neon"))]
#[allow(clippy::too_many_arguments)]
unsafe fn fill_row_pairs(
    share: &mut [u32],
    kps: usize,
    src: SendPtr,
    rs: isize,
    k: usize,
    n: usize,
    p0: usize,
) {
    let kp = k.div_ceil(2);
    let panels = share.len() / (kps * NR);
    // SAFETY: row t < k holds n contiguous elements.
    let row = |t: usize| unsafe { std::slice::from_raw_parts(src.0.offset(t as isize * rs), n) };
    for tp in 0..kp {
        let even = row(2 * tp);
        let odd = (2 * tp + 1 < k).then(|| row(2 * tp + 1));
        for q in 0..panels {
            let c0 = (p0 + q) * NR;
            let cols = NR.min(n - c0);
            let dst: &mut [u32; NR] = (&mut share[(q * kps + tp) * NR..][..NR])
                .try_into()
                .expect("NR words");
            match odd {
                Some(odd) if cols == NR => {
                    let (e, o): (&[f32; NR], &[f32; NR]) = (
                        even[c0..c0 + NR].try_into().expect("NR values"),
                        odd[c0..c0 + NR].try_into().expect("NR values"),
                    );
                    *dst = std::array::from_fn(|c| pair(e[c], o[c]));
                }
                _ => {
                    for (c, d) in dst.iter_mut().enumerate() {
                        *d = if c < cols {
                            pair(even[c0 + c], odd.map_or(0.0, |o| o[c0 + c]))
                        } else {
                            0
                        };
                    }
                }
            }
        }
    }
    for q in 0..panels {
        share[(q * kps + kp) * NR..(q + 1) * kps * NR].fill(0);
    }
}

/// Panel `[kp][NR]` of pairs for columns `c0..` of the `k x n` view at
/// `src` with strides `rs`, `cs` (`cs` not 1: [`fill_row_pairs`] takes
/// those); compiled per SIMD level, so the rounding of whole rows
/// vectorises.
///
/// # Safety
/// `src` must cover `k x n` readable elements with these strides.
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma", "aarch64+neon"))]
#[allow(clippy::too_many_arguments)]
unsafe fn fill_panel(
    panel: &mut [u32],
    src: SendPtr,
    rs: isize,
    cs: isize,
    k: usize,
    n: usize,
    c0: usize,
) {
    let kp = k.div_ceil(2);
    let rhs = View { ptr: src.0, rs, cs };
    let cols = NR.min(n - c0);
    // SAFETY: t < k and c0 + c < n address the caller's k x n view.
    let at = |t: usize, c: usize| unsafe {
        if t < k {
            *src.0
                .offset(t as isize * rhs.rs + (c0 + c) as isize * rhs.cs)
        } else {
            0.0
        }
    };
    if rhs.rs == 1 {
        // Columns contiguous in k (a PyTorch weight seen
        // transposed): tiles of 32 steps of the 16 columns, each
        // read whole and written as 16 panel rows (column by
        // column, the stores would go 64 bytes apart). Columns past
        // `cols` repeat the last one and are zeroed below.
        // SAFETY: column c0 + c < n holds k contiguous elements.
        let columns: [&[f32]; NR] = std::array::from_fn(|c| unsafe {
            std::slice::from_raw_parts(src.0.offset((c0 + c.min(cols - 1)) as isize * rhs.cs), k)
        });
        const T: usize = 2 * NR;
        let full = k / T * T;
        let mut tile = [[0u32; NR]; NR];
        for t0 in (0..full).step_by(T) {
            for (c, col) in columns.iter().enumerate() {
                let seg: &[f32; T] = col[t0..t0 + T].try_into().expect("T values");
                tile[c] = std::array::from_fn(|j| pair(seg[2 * j], seg[2 * j + 1]));
            }
            for j in 0..NR {
                let row: &mut [u32; NR] = (&mut panel[(t0 / 2 + j) * NR..][..NR])
                    .try_into()
                    .expect("NR words");
                *row = std::array::from_fn(|c| tile[c][j]);
            }
        }
        for tp in full / 2..kp {
            for (c, col) in columns.iter().enumerate() {
                let odd = col.get(2 * tp + 1).copied().unwrap_or(0.0);
                panel[tp * NR + c] = pair(col[2 * tp], odd);
            }
        }
        if cols < NR {
            for row in panel.chunks_exact_mut(NR) {
                row[cols..].fill(0);
            }
        }
    } else {
        for tp in 0..kp {
            for c in 0..NR {
                panel[tp * NR + c] = if c < cols {
                    pair(at(2 * tp, c), at(2 * tp + 1, c))
                } else {
                    0
                };
            }
        }
    }
}

/// The f32-unit kernel: `rows` strip rows of `kcp` pairs against a panel
/// slice of `kcp` pair rows, into `acc`.
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma", "aarch64+neon"))]
fn reference(strip: &[u32], kcp: usize, rows: usize, panel: &[u32], acc: &mut [[f32; NR]; MR]) {
    match rows {
        6 => reference_rows::<6>(strip, kcp, panel, acc),
        5 => reference_rows::<5>(strip, kcp, panel, acc),
        4 => reference_rows::<4>(strip, kcp, panel, acc),
        3 => reference_rows::<3>(strip, kcp, panel, acc),
        2 => reference_rows::<2>(strip, kcp, panel, acc),
        _ => reference_rows::<1>(strip, kcp, panel, acc),
    }
}

#[inline(always)]
// Indexed loops on purpose (see below).
#[allow(clippy::needless_range_loop)]
fn reference_rows<const M: usize>(
    strip: &[u32],
    kcp: usize,
    panel: &[u32],
    acc: &mut [[f32; NR]; MR],
) {
    assert!(strip.len() >= M * kcp);
    let mut a = [[0f32; NR]; M];
    for (t, b) in panel[..kcp * NR].chunks_exact(NR).enumerate() {
        let b: &[u32; NR] = b.try_into().expect("NR words");
        // Plain loops: with `array::from_fn` here and for the strip rows,
        // the compiler vectorised across rows with gathers (10x slower).
        let (mut bl, mut bh) = ([0f32; NR], [0f32; NR]);
        for j in 0..NR {
            bl[j] = low(b[j]);
            bh[j] = high(b[j]);
        }
        for i in 0..M {
            // SAFETY: t < kcp and i < M: inside the strip (asserted).
            let x = unsafe { *strip.get_unchecked(i * kcp + t) };
            let (xl, xh) = (low(x), high(x));
            for j in 0..NR {
                // The odd step first, as vdpbf16ps adds them.
                a[i][j] = xh.mul_add(bh[j], a[i][j]);
                a[i][j] = xl.mul_add(bl[j], a[i][j]);
            }
        }
    }
    acc[..M].copy_from_slice(&a);
}

/// The AVX512-BF16 kernel, same contract as [`reference`].
///
/// # Safety
/// The CPU must have avx512f and avx512bf16.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn hardware(
    strip: &[u32],
    kcp: usize,
    rows: usize,
    panel: &[u32],
    acc: &mut [[f32; NR]; MR],
) {
    match rows {
        6 => hardware_rows::<6>(strip, kcp, panel, acc),
        5 => hardware_rows::<5>(strip, kcp, panel, acc),
        4 => hardware_rows::<4>(strip, kcp, panel, acc),
        3 => hardware_rows::<3>(strip, kcp, panel, acc),
        2 => hardware_rows::<2>(strip, kcp, panel, acc),
        _ => hardware_rows::<1>(strip, kcp, panel, acc),
    }
}

/// # Safety
/// As [`hardware`]; `strip` holds `M x kcp` and `panel` `kcp x NR` words.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn hardware_rows<const M: usize>(
    strip: &[u32],
    kcp: usize,
    panel: &[u32],
    acc: &mut [[f32; NR]; MR],
) {
    use std::arch::x86_64::*;
    assert!(strip.len() >= M * kcp && panel.len() >= kcp * NR);
    let (s, p) = (strip.as_ptr(), panel.as_ptr());
    let mut a = [_mm512_setzero_ps(); M];
    for t in 0..kcp {
        let b: __m512bh = std::mem::transmute(_mm512_loadu_si512(p.add(t * NR) as *const _));
        for (i, ai) in a.iter_mut().enumerate() {
            let x: __m512bh = std::mem::transmute(_mm512_set1_epi32(*s.add(i * kcp + t) as i32));
            *ai = _mm512_dpbf16_ps(*ai, x, b);
        }
    }
    for (i, ai) in a.iter().enumerate() {
        _mm512_storeu_ps(acc[i].as_mut_ptr(), *ai);
    }
}

/// The AVX512-BF16 kernel on two panel slices at once: `acc` columns
/// 0..16 from `pa`, 16..32 from `pb`, each sum in [`reference`]'s order.
///
/// # Safety
/// The CPU must have avx512f and avx512bf16.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn hardware2(
    strip: &[u32],
    kcp: usize,
    rows: usize,
    pa: &[u32],
    pb: &[u32],
    acc: &mut [[f32; 2 * NR]; MR],
) {
    match rows {
        6 => hardware2_rows::<6>(strip, kcp, pa, pb, acc),
        5 => hardware2_rows::<5>(strip, kcp, pa, pb, acc),
        4 => hardware2_rows::<4>(strip, kcp, pa, pb, acc),
        3 => hardware2_rows::<3>(strip, kcp, pa, pb, acc),
        2 => hardware2_rows::<2>(strip, kcp, pa, pb, acc),
        _ => hardware2_rows::<1>(strip, kcp, pa, pb, acc),
    }
}

/// # Safety
/// As [`hardware2`]; `strip` holds `M x kcp` words, `pa` and `pb` `kcp x
/// NR` each.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn hardware2_rows<const M: usize>(
    strip: &[u32],
    kcp: usize,
    pa: &[u32],
    pb: &[u32],
    acc: &mut [[f32; 2 * NR]; MR],
) {
    use std::arch::x86_64::*;
    assert!(strip.len() >= M * kcp && pa.len() >= kcp * NR && pb.len() >= kcp * NR);
    let (s, pa, pb) = (strip.as_ptr(), pa.as_ptr(), pb.as_ptr());
    let mut a = [_mm512_setzero_ps(); M];
    let mut b = [_mm512_setzero_ps(); M];
    for t in 0..kcp {
        let wa: __m512bh = std::mem::transmute(_mm512_loadu_si512(pa.add(t * NR) as *const _));
        let wb: __m512bh = std::mem::transmute(_mm512_loadu_si512(pb.add(t * NR) as *const _));
        for i in 0..M {
            let x: __m512bh = std::mem::transmute(_mm512_set1_epi32(*s.add(i * kcp + t) as i32));
            a[i] = _mm512_dpbf16_ps(a[i], x, wa);
            b[i] = _mm512_dpbf16_ps(b[i], x, wb);
        }
    }
    for i in 0..M {
        _mm512_storeu_ps(acc[i].as_mut_ptr(), a[i]);
        _mm512_storeu_ps(acc[i].as_mut_ptr().add(NR), b[i]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The start-up check passes a kernel that sums in another order and
    /// refuses one that drops a product or returns NaN.
    #[test]
    fn the_hardware_check_tells_a_good_kernel_from_a_bad_one() {
        assert_eq!(agrees(reference), Ok(()));
        // Even step first: another rounding order, the same sums to 1e-5.
        let reordered =
            |s: &[u32], kcp: usize, rows: usize, p: &[u32], acc: &mut [[f32; NR]; MR]| {
                for i in 0..rows {
                    for j in 0..NR {
                        acc[i][j] = (0..kcp).fold(0f32, |a, t| {
                            let (x, y) = (s[i * kcp + t], p[t * NR + j]);
                            high(x).mul_add(high(y), low(x).mul_add(low(y), a))
                        });
                    }
                }
            };
        assert_eq!(agrees(reordered), Ok(()));
        // The last pair of every row left out.
        let dropped = |s: &[u32], kcp: usize, rows: usize, p: &[u32], acc: &mut [[f32; NR]; MR]| {
            let mut s = s.to_vec();
            for i in 0..rows {
                s[i * kcp + kcp - 1] = 0;
            }
            reference(&s, kcp, rows, p, acc)
        };
        let e = agrees(dropped).unwrap_err();
        assert!(e.contains("against"), "{e}");
        let nan = |_: &[u32], _: usize, _: usize, _: &[u32], acc: &mut [[f32; NR]; MR]| {
            *acc = [[f32::NAN; NR]; MR];
        };
        assert!(agrees(nan).is_err());
    }

    #[test]
    fn rounding_is_to_nearest_even() {
        assert_eq!(round(1.0), 0x3f80);
        // 1 + 2^-8 is halfway between two bf16 values: ties to even (down).
        assert_eq!(round(1.0 + 2f32.powi(-8)), 0x3f80);
        assert_eq!(round(1.0 + 3.0 * 2f32.powi(-8)), 0x3f82);
        assert_eq!(round(-0.5), 0xbf00);
        assert!(rounded(f32::NAN).is_nan() && rounded(-f32::NAN).is_nan());
        // A NaN whose payload is all in the low half stays a NaN (it is
        // not rounded up into an infinity).
        assert!(rounded(f32::from_bits(0x7f80_0001)).is_nan());
        assert_eq!(rounded(f32::INFINITY), f32::INFINITY);
        assert_eq!(rounded(-f32::MAX), f32::NEG_INFINITY);
        assert_eq!(rounded(f32::MAX), f32::INFINITY);
        assert_eq!(rounded(1.0 + 2f32.powi(-7)), 1.0 + 2f32.powi(-7));
    }

    /// The packed bf16 product (on whichever kernels this CPU takes) equals
    /// the f64 sum of the bf16-rounded operands to f32 rounding, for every
    /// row-block size, odd and even k, k past one block, column tails,
    /// plain and transposed views on both sides, accumulating and not, on
    /// one and two threads; and differs from the f32 product by bf16's
    /// rounding (so the operands were rounded at all).
    #[test]
    fn bf16_products_are_f32_sums_of_rounded_operands() {
        let val = |i: usize| {
            let h = (i as u32).wrapping_mul(2_654_435_761) >> 8;
            (h % 20001) as f32 / 10000.0 - 1.0
        };
        let mut widest_f32_gap = 0f64;
        // Every packing below gets spare panel buffers full of bf16 NaN
        // pairs: a padding word it left unwritten would turn sums into NaN.
        let poison = || {
            SPARE.with(|s| {
                let mut s = s.borrow_mut();
                s.clear();
                s.extend((0..SPARES).map(|_| vec![0x7fc0_7fc0u32; 1 << 16]));
            })
        };
        // With AMX (16 rows or more): a tail of rows in the last tile
        // (40), an odd panel count (70 columns), pairs short of a tile
        // (45 steps), more rows than a block (300) and more pairs than a
        // block (600 steps).
        for (m, n, k) in [
            (1, 5, 3),
            (7, 37, 19),
            (13, 48, 300),
            (100, 33, 521),
            (6, 16, 2),
            (40, 70, 45),
            (300, 50, 600),
        ] {
            let a: Vec<f32> = (0..m * k).map(val).collect(); // [m, k]
            let w: Vec<f32> = (0..n * k).map(|i| val(i + 99_991)).collect(); // [n, k]
            for (a_t, w_t) in [(false, true), (true, false)] {
                // a seen as [m, k] through either layout: a_t stores it [k, m].
                let a_store: Vec<f32> = if a_t {
                    (0..k * m).map(|i| a[(i % m) * k + i / m]).collect()
                } else {
                    a.clone()
                };
                let lhs = if a_t {
                    View::t(a_store.as_ptr(), m)
                } else {
                    View::rows(a_store.as_ptr(), k)
                };
                // rhs [k, n] = w^T, viewed in place or stored as [k, n].
                let w_store: Vec<f32> = if w_t {
                    w.clone()
                } else {
                    (0..k * n).map(|i| w[(i % n) * k + i / n]).collect()
                };
                let rhs = if w_t {
                    View::t(w_store.as_ptr(), k)
                } else {
                    View::rows(w_store.as_ptr(), n)
                };
                for threads in [1, 2] {
                    // SAFETY: both views cover their k x n and m x k.
                    poison();
                    let packed = unsafe { Bf16Rhs::pack(k, n, rhs, threads) };
                    for accumulate in [false, true] {
                        let dst_rs = n + 3;
                        let start: Vec<f32> = (0..m * dst_rs).map(|i| val(i + 5)).collect();
                        let mut d = start.clone();
                        // SAFETY: d holds m rows of dst_rs >= n elements.
                        unsafe {
                            packed.product(m, d.as_mut_ptr(), dst_rs, lhs, accumulate, threads)
                        };
                        for r in 0..m {
                            for c in 0..n {
                                let (mut want, mut abs, mut exact) = (0f64, 0f64, 0f64);
                                for t in 0..k {
                                    let (x, y) = (a[r * k + t], w[c * k + t]);
                                    let p = rounded(x) as f64 * rounded(y) as f64;
                                    want += p;
                                    abs += p.abs();
                                    exact += x as f64 * y as f64;
                                }
                                let base = if accumulate {
                                    start[r * dst_rs + c] as f64
                                } else {
                                    0.0
                                };
                                let got = d[r * dst_rs + c] as f64 - base;
                                let tol = 1e-6 * (abs + 1.0);
                                assert!(
                                    (got - want).abs() <= tol,
                                    "{m}x{n}x{k} a_t {a_t} threads {threads} ({r}, {c}): {got} vs {want}"
                                );
                                widest_f32_gap = widest_f32_gap.max((want - exact).abs());
                            }
                            // Padding between rows is untouched.
                            for c in n..dst_rs {
                                assert_eq!(d[r * dst_rs + c], start[r * dst_rs + c]);
                            }
                        }
                    }
                }
            }
        }
        assert!(
            widest_f32_gap > 1e-3,
            "bf16 rounding moved no sum: {widest_f32_gap}"
        );
    }
}

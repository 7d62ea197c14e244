//! Exact k-nearest search by cosine over many unit rows, for the retrieval
//! decoder of the chat service (a bank of ~30,000 sentence vectors).
//!
//! Why two passes: one query against the bundled bank reads its 46 MB of
//! f32 rows, more than the 32 MB L3 of the development machine, and the
//! encoder's 90 MB of weights flush the cache between requests anyway, so
//! the product is bound by memory (2.8 ms of a 9 ms chat turn). A bf16
//! copy of the rows halves those bytes. Its scores are only approximate, so
//! they serve to pick candidates, and the candidates are scored again in
//! f32 ([`dot`]): with unit rows and a unit query, bf16 rounding (8
//! significant bits, relative error up to 2^-8) moves a score by at most
//! 2^-8 (|Σ q_i b_i δ_i| <= 2^-8 ||q|| ||b||), plus the f32
//! accumulation error of either sum, so every row whose coarse score is
//! within `2 * eps` of the k-th best coarse score is a candidate, and the
//! true k nearest are always among them. The answer is then exactly what
//! scoring every row with [`dot`] gives, whatever the batch: a batch of many
//! queries takes its coarse scores from one f32 GEMM instead (reading the
//! rows once for all of them), then the same exact rescoring.

use crate::bf16::round as bf16;
use crate::dense::dot;
use crate::mat::{matmul, View};
use crate::precision::Precision;
use multiversion::multiversion;
use rayon::prelude::*;

/// Queries up to this many take the bf16 pass, more take the f32 GEMM.
const FEW: usize = 6;

/// Unit rows `[n, dim]` in f32, with their bf16 copy.
pub struct UnitRows {
    dim: usize,
    rows: Vec<f32>,
    coarse: Vec<u16>,
}

impl UnitRows {
    /// Rows that the caller has normalised (or left zero).
    pub fn new(rows: Vec<f32>, dim: usize) -> UnitRows {
        assert!(
            dim > 0 && rows.len().is_multiple_of(dim),
            "rows are [n, {dim}], got {} values",
            rows.len()
        );
        let coarse = rows.iter().map(|&v| bf16(v)).collect();
        UnitRows { dim, rows, coarse }
    }

    /// The number of rows.
    pub fn len(&self) -> usize {
        self.rows.len() / self.dim
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.rows[i * self.dim..(i + 1) * self.dim]
    }

    /// For each unit query of the row-major `[b, dim]` `queries`, the `k`
    /// rows of largest [`dot`] with it and those scores, best first (ties
    /// by row index), using `threads` for the coarse pass.
    pub fn nearest(&self, queries: &[f32], k: usize, threads: usize) -> Vec<Vec<(usize, f32)>> {
        let (d, n) = (self.dim, self.len());
        assert_eq!(queries.len() % d, 0, "queries are [b, {d}]");
        let b = queries.len() / d;
        let k = k.min(n);
        if b == 0 || k == 0 {
            return vec![Vec::new(); b];
        }
        let mut coarse = vec![0f32; b * n];
        // Bounds on |coarse - exact| for unit vectors: 2 D u for the f32
        // rounding of both sums (u = 2^-24), doubled for margin, plus the
        // bf16 rounding of the rows.
        let f32_eps = 4.0 * d as f32 * f32::EPSILON / 2.0;
        let eps = if b <= FEW {
            self.coarse_scores(queries, b, &mut coarse, threads);
            2f32.powi(-8) + f32_eps
        } else {
            // SAFETY: queries are [b, d], rows [n, d] (viewed transposed),
            // coarse [b, n].
            unsafe {
                matmul(
                    b,
                    n,
                    d,
                    coarse.as_mut_ptr(),
                    View::rows(queries.as_ptr(), d),
                    View::t(self.rows.as_ptr(), d),
                    false,
                    threads,
                    // The margin below assumes f32 scores, whatever the
                    // caller's precision.
                    Precision::F32,
                );
            }
            f32_eps
        };
        // Queries are refined in parallel (each is independent, so the
        // answers do not depend on the thread count).
        queries
            .par_chunks_exact(d)
            .zip(coarse.par_chunks_exact(n))
            .map(|(q, c)| self.refine(q, c, k, eps))
            .collect()
    }

    /// The k best of one query, from its coarse scores.
    fn refine(&self, q: &[f32], coarse: &[f32], k: usize, eps: f32) -> Vec<(usize, f32)> {
        let cut = kth_largest(coarse, k) - 2.0 * eps;
        let mut found: Vec<(usize, f32)> = if cut.is_finite() {
            coarse
                .iter()
                .enumerate()
                .filter(|(_, &c)| c >= cut)
                .map(|(i, _)| (i, exact(q, self.row(i))))
                .collect()
        } else {
            // A NaN or infinite query: score everything.
            (0..self.len())
                .map(|i| (i, exact(q, self.row(i))))
                .collect()
        };
        let order = |a: &(usize, f32), b: &(usize, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        if k < found.len() {
            found.select_nth_unstable_by(k, order);
            found.truncate(k);
        }
        found.sort_by(order);
        found
    }

    /// bf16 scores of `b <= FEW` queries against every row, rows split
    /// over threads.
    fn coarse_scores(&self, queries: &[f32], b: usize, out: &mut [f32], threads: usize) {
        let (d, n) = (self.dim, self.len());
        let parts = if threads > 1 && n * d >= 1 << 18 {
            threads
        } else {
            1
        };
        // Each part scores its own rows into a buffer of its own (`[b,
        // rows]`), copied into the `[b, n]` output after.
        let part = |p: usize| {
            let rows = n * p / parts..n * (p + 1) / parts;
            let mut o = vec![0f32; b * rows.len()];
            coarse_kernel(
                queries,
                b,
                d,
                &self.coarse[rows.start * d..rows.end * d],
                &mut o,
            );
            (rows, o)
        };
        let done: Vec<_> = if parts == 1 {
            vec![part(0)]
        } else {
            (0..parts).into_par_iter().map(part).collect()
        };
        for (rows, o) in done {
            let w = rows.len();
            for r in 0..b {
                out[r * n + rows.start..r * n + rows.end].copy_from_slice(&o[r * w..(r + 1) * w]);
            }
        }
    }
}

/// The exact score, [`dot`] compiled per SIMD level: its `mul_add` is an
/// FMA instruction there and a libm call in a plain x86-64 build, with the
/// same result either way (a fused multiply-add is exactly rounded).
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma", "aarch64+neon"))]
fn exact(q: &[f32], row: &[f32]) -> f32 {
    dot(q, row)
}

/// The score [`UnitRows::nearest`] ranks by, for another index over the
/// same rows (the service's HNSW graph), so that both give one cosine, on
/// every CPU, and the graph's distances run on the SIMD units (a plain
/// `zip().sum()` there cannot be vectorised).
pub fn score(q: &[f32], row: &[f32]) -> f32 {
    exact(q, row)
}

/// The k-th largest of `scores` (1 <= k <= len), ignoring NaNs; minus
/// infinity when fewer than k are numbers. Small k (the usual top 5) keep a
/// sorted buffer in one pass instead of copying and selecting 30,000
/// scores per query.
fn kth_largest(scores: &[f32], k: usize) -> f32 {
    if k > 64 {
        let mut v: Vec<f32> = scores.iter().copied().filter(|s| !s.is_nan()).collect();
        if v.len() < k {
            return f32::NEG_INFINITY;
        }
        return *v.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a)).1;
    }
    let mut top = [f32::NEG_INFINITY; 64];
    let top = &mut top[..k];
    for &s in scores {
        if s > top[k - 1] {
            let mut i = k - 1;
            while i > 0 && top[i - 1] < s {
                top[i] = top[i - 1];
                i -= 1;
            }
            top[i] = s;
        }
    }
    top[k - 1]
}

/// `out[r, j] = q_r . rows_j` for bf16 `rows`, `b <= FEW` queries; `out`
/// is `[b, rows]`.
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma", "aarch64+neon"))]
fn coarse_kernel(q: &[f32], b: usize, d: usize, rows: &[u16], out: &mut [f32]) {
    let n = rows.len() / d;
    match b {
        1 => coarse_rows::<1>(q, d, rows, out, n),
        2 => coarse_rows::<2>(q, d, rows, out, n),
        3 => coarse_rows::<3>(q, d, rows, out, n),
        4 => coarse_rows::<4>(q, d, rows, out, n),
        5 => coarse_rows::<5>(q, d, rows, out, n),
        _ => coarse_rows::<6>(q, d, rows, out, n),
    }
}

const LANES: usize = 16;

#[inline(always)]
fn coarse_rows<const B: usize>(q: &[f32], d: usize, rows: &[u16], out: &mut [f32], n: usize) {
    let qs: [&[f32]; B] = std::array::from_fn(|r| &q[r * d..(r + 1) * d]);
    let full = d / LANES * LANES;
    for (j, row) in rows.chunks_exact(d).enumerate() {
        let mut acc = [[0f32; LANES]; B];
        for t0 in (0..full).step_by(LANES) {
            let w: &[u16; LANES] = row[t0..t0 + LANES].try_into().expect("LANES values");
            let wv: [f32; LANES] = std::array::from_fn(|i| f32::from_bits((w[i] as u32) << 16));
            for r in 0..B {
                let qv: &[f32; LANES] = qs[r][t0..t0 + LANES].try_into().expect("LANES values");
                for i in 0..LANES {
                    acc[r][i] = qv[i].mul_add(wv[i], acc[r][i]);
                }
            }
        }
        for r in 0..B {
            let mut s = acc[r].iter().sum::<f32>();
            for t in full..d {
                s = qs[r][t].mul_add(f32::from_bits((row[t] as u32) << 16), s);
            }
            out[r * n + j] = s;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(v: &mut [f32]) {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        if n > 0.0 {
            v.iter_mut().for_each(|x| *x /= n);
        }
    }

    /// Pseudo-random unit rows with many near-duplicates (so that the
    /// candidate set is larger than k), dimension with a SIMD tail.
    fn rows(n: usize, d: usize) -> Vec<f32> {
        let mut rng = recur_core_free_rng(3);
        let base: Vec<f32> = (0..d).map(|_| rng()).collect();
        let mut v = Vec::with_capacity(n * d);
        for i in 0..n {
            let mut r: Vec<f32> = base
                .iter()
                .map(|b| if i % 3 == 0 { b + 0.01 * rng() } else { rng() })
                .collect();
            unit(&mut r);
            v.extend(r);
        }
        v
    }

    fn recur_core_free_rng(seed: u64) -> impl FnMut() -> f32 {
        let mut s = seed;
        move || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        }
    }

    /// Every row scored with `dot`, best first, ties by index.
    fn brute(r: &UnitRows, q: &[f32], k: usize) -> Vec<(usize, f32)> {
        let mut all: Vec<(usize, f32)> = (0..r.len()).map(|i| (i, exact(q, r.row(i)))).collect();
        all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        all.truncate(k);
        all
    }

    /// Both coarse passes (few queries in bf16, many through the f32
    /// GEMM), on one and two threads, give exactly the brute-force answer,
    /// scores bit for bit; queries near a cluster of near-duplicate rows
    /// make the candidate sets larger than k.
    #[test]
    fn two_pass_search_equals_scoring_every_row() {
        let (n, d) = (3001, 37);
        let r = UnitRows::new(rows(n, d), d);
        assert_eq!(r.len(), n);
        let mut rng = recur_core_free_rng(9);
        let mut queries = Vec::new();
        for i in 0..9 {
            let mut q: Vec<f32> = if i % 2 == 0 {
                r.row(3 * i).iter().map(|v| v + 0.005 * rng()).collect()
            } else {
                (0..d).map(|_| rng()).collect()
            };
            unit(&mut q);
            queries.extend(q);
        }
        for k in [1, 5, 40] {
            let want: Vec<_> = queries.chunks(d).map(|q| brute(&r, q, k)).collect();
            for threads in [1, 2] {
                // Nine at once (GEMM) and one, two and four at a time (bf16).
                assert_eq!(r.nearest(&queries, k, threads), want, "k {k}, batch of 9");
                for b in [1, 2, 4] {
                    for (i, chunk) in queries.chunks(b * d).enumerate() {
                        assert_eq!(
                            r.nearest(chunk, k, threads),
                            want[i * b..i * b + chunk.len() / d],
                            "k {k}, batch of {b}, threads {threads}"
                        );
                    }
                }
            }
        }
    }

    /// k beyond the rows, an empty batch, a zero query (every score 0: all
    /// rows are candidates) and a NaN query are answered, not panics.
    #[test]
    fn edge_queries_are_answered() {
        let d = 8;
        let r = UnitRows::new(rows(20, d), d);
        assert_eq!(r.nearest(&[], 3, 1), Vec::<Vec<(usize, f32)>>::new());
        let q = r.row(4).to_vec();
        let all = r.nearest(&q, 50, 1);
        assert_eq!(all[0].len(), 20);
        assert_eq!(all[0][0].0, 4);
        let zero = r.nearest(&[0.0; 8], 3, 1);
        assert_eq!(zero[0].iter().map(|x| x.0).collect::<Vec<_>>(), [0, 1, 2]);
        let nan = r.nearest(&[f32::NAN; 8], 3, 1);
        assert_eq!(nan[0].len(), 3);
    }

    #[test]
    fn kth_largest_by_buffer_and_by_selection_agree() {
        let mut rng = recur_core_free_rng(4);
        let mut v: Vec<f32> = (0..500).map(|_| rng()).collect();
        v[7] = f32::NAN;
        let mut sorted: Vec<f32> = v.iter().copied().filter(|x| !x.is_nan()).collect();
        sorted.sort_by(|a, b| b.total_cmp(a));
        for k in [1, 2, 5, 64, 65, 300, 499] {
            assert_eq!(kth_largest(&v, k), sorted[k - 1], "k {k}");
        }
        assert_eq!(kth_largest(&v, 500), f32::NEG_INFINITY);
        assert_eq!(kth_largest(&[f32::NAN; 3], 2), f32::NEG_INFINITY);
    }
}

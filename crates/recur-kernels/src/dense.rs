//! Row passes and attention on plain slices, for inference code
//! that runs outside candle's graph: the sentence encoder's BERT forward
//! (`recur-text`), where candle's per-op tensors, scalar `erf` and spinning
//! element-wise pool cost as much as the products themselves.
//!
//! Everything works on `[rows, width]` row-major buffers the caller owns,
//! so a forward pass allocates its activations once and reuses them. Shape
//! mistakes are programming errors here (the callers check user input) and
//! panic with the shapes.

use crate::act::exp;
use crate::act::{gelu_erf, gelu_tanh};
use crate::mat::SendPtr;
use multiversion::multiversion;
use rayon::prelude::*;

/// Rows per parallel task of the row passes: small enough to split a
/// batch-1 forward across two cores, large enough to amortise a task.
const ROWS_PER_TASK: usize = 16;

/// The activations [`activate`] applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// Exact GELU, `x/2 (1 + erf(x / sqrt 2))`.
    Gelu,
    /// GELU's tanh approximation.
    GeluTanh,
    Relu,
}

/// Applies `act` to every value, in parallel over row blocks of `width`.
pub fn activate(v: &mut [f32], width: usize, act: Activation) {
    v.par_chunks_mut(width.max(1) * ROWS_PER_TASK)
        .for_each(|c| activate_slice(c, act));
}

#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma", "aarch64+neon"))]
fn activate_slice(v: &mut [f32], act: Activation) {
    match act {
        Activation::Gelu => v.iter_mut().for_each(|x| *x = gelu_erf(*x)),
        Activation::GeluTanh => v.iter_mut().for_each(|x| *x = gelu_tanh(*x)),
        Activation::Relu => v.iter_mut().for_each(|x| *x = x.max(0.0)),
    }
}

/// `x = LayerNorm(x + r) * gamma + beta` over rows of `gamma.len()`, in
/// place: the residual add and the normalisation in one pass per row (two
/// reads, one write), in parallel over row blocks. The variance is the
/// biased one over the row, as PyTorch's.
pub fn add_layer_norm(x: &mut [f32], r: Option<&[f32]>, gamma: &[f32], beta: &[f32], eps: f32) {
    let h = gamma.len();
    assert_eq!(beta.len(), h, "beta is [{h}]");
    assert_eq!(x.len() % h.max(1), 0, "x is [rows, {h}]");
    if let Some(r) = r {
        assert_eq!(r.len(), x.len(), "the residual is x's shape");
    }
    let block = h * ROWS_PER_TASK;
    match r {
        Some(r) => x
            .par_chunks_mut(block)
            .zip(r.par_chunks(block))
            .for_each(|(x, r)| norm_rows(x, Some(r), gamma, beta, eps)),
        None => x
            .par_chunks_mut(block)
            .for_each(|x| norm_rows(x, None, gamma, beta, eps)),
    }
}

#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma", "aarch64+neon"))]
fn norm_rows(x: &mut [f32], r: Option<&[f32]>, gamma: &[f32], beta: &[f32], eps: f32) {
    let h = gamma.len();
    for (i, row) in x.chunks_exact_mut(h).enumerate() {
        if let Some(r) = r {
            for (a, b) in row.iter_mut().zip(&r[i * h..(i + 1) * h]) {
                *a += *b;
            }
        }
        let mean = sum8(row) / h as f32;
        let mut var = [0f32; 8];
        let mut chunks = row.chunks_exact(8);
        for c in &mut chunks {
            for j in 0..8 {
                let d = c[j] - mean;
                var[j] = d.mul_add(d, var[j]);
            }
        }
        let mut v = var.iter().sum::<f32>();
        for &a in chunks.remainder() {
            v += (a - mean) * (a - mean);
        }
        let inv = 1.0 / (v / h as f32 + eps).sqrt();
        for ((a, g), b) in row.iter_mut().zip(gamma).zip(beta) {
            *a = ((*a - mean) * inv).mul_add(*g, *b);
        }
    }
}

/// Multi-head self-attention over sequences packed end to end, with no
/// padding: `qkv [rows, 3H]` holds each token's `[q | k | v]` (heads
/// side by side within each), sequence `s` is rows `offsets[s]..offsets[s +
/// 1]`, and `ctx [rows, H]` gets `softmax(q k^T / sqrt(d)) v` per head. A
/// token attends to the tokens of its own sequence only, which is what a
/// padded batch with an attention mask computes (masked keys get weight
/// e^-inf = 0), without the padded rows. One task per (sequence, head); the
/// scores of a query live in one small buffer and softmax is fused into
/// the weighted sum.
pub fn attention(qkv: &[f32], heads: usize, offsets: &[usize], ctx: &mut [f32]) {
    let rows = *offsets.last().unwrap_or(&0);
    assert!(
        heads > 0 && rows > 0 && ctx.len().is_multiple_of(rows),
        "ctx is [{rows}, H]"
    );
    let h = ctx.len() / rows;
    assert_eq!(qkv.len(), rows * 3 * h, "qkv is [{rows}, 3 x {h}]");
    assert_eq!(h % heads, 0, "{heads} heads do not divide {h}");
    assert!(offsets.windows(2).all(|w| w[0] <= w[1]), "offsets go up");
    let dh = h / heads;
    let scale = 1.0 / (dh as f32).sqrt();
    let tasks: Vec<(usize, usize)> = (0..offsets.len() - 1)
        .filter(|&s| offsets[s + 1] > offsets[s])
        .flat_map(|s| (0..heads).map(move |j| (s, j)))
        .collect();
    let out = SendPtr(ctx.as_mut_ptr());
    tasks.par_iter().for_each(|&(s, j)| {
        // A whole-struct copy, so the closure captures the Send wrapper.
        let (out, offsets) = (out, offsets);
        let seq = offsets[s]..offsets[s + 1];
        let mut scores = vec![0f32; seq.len()];
        let mut acc = vec![0f32; dh];
        for i in seq.clone() {
            attend(qkv, h, dh, j, seq.clone(), i, scale, &mut scores, &mut acc);
            // SAFETY: row i < rows and columns j*dh..(j+1)*dh < h of ctx,
            // which has rows x h values; only the task (s, j) writes this
            // block (rows of s, columns of head j).
            let dst = unsafe { std::slice::from_raw_parts_mut(out.0.add(i * h + j * dh), dh) };
            dst.copy_from_slice(&acc);
        }
    });
}

/// One query row `i` of head `j` against the keys and values of `seq`.
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma", "aarch64+neon"))]
#[allow(clippy::too_many_arguments)]
fn attend(
    qkv: &[f32],
    h: usize,
    dh: usize,
    j: usize,
    seq: std::ops::Range<usize>,
    i: usize,
    scale: f32,
    scores: &mut [f32],
    acc: &mut [f32],
) {
    let w = 3 * h;
    let q = &qkv[i * w + j * dh..][..dh];
    let mut max = f32::NEG_INFINITY;
    for (s, r) in scores.iter_mut().zip(seq.clone()) {
        *s = dot(q, &qkv[r * w + h + j * dh..][..dh]) * scale;
        max = max.max(*s);
    }
    let mut total = 0f32;
    for s in scores.iter_mut() {
        *s = exp(*s - max);
        total += *s;
    }
    acc.fill(0.0);
    for (p, r) in scores.iter().zip(seq) {
        let v = &qkv[r * w + 2 * h + j * dh..][..dh];
        for (a, x) in acc.iter_mut().zip(v) {
            *a = p.mul_add(*x, *a);
        }
    }
    let inv = 1.0 / total;
    acc.iter_mut().for_each(|a| *a *= inv);
}

/// A sum in eight interleaved lanes (vectorises; pairwise-like accuracy).
#[inline(always)]
pub(crate) fn sum8(v: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let mut chunks = v.chunks_exact(8);
    for c in &mut chunks {
        for j in 0..8 {
            acc[j] += c[j];
        }
    }
    acc.iter().sum::<f32>() + chunks.remainder().iter().sum::<f32>()
}

/// A dot product in eight interleaved lanes.
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for j in 0..8 {
            acc[j] = x[j].mul_add(y[j], acc[j]);
        }
    }
    let mut s = acc.iter().sum::<f32>();
    for (x, y) in ra.iter().zip(rb) {
        s = x.mul_add(*y, s);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn val(i: usize) -> f32 {
        ((i * 7919 % 101) as f32 - 50.0) / 25.0
    }

    #[test]
    fn add_layer_norm_matches_its_definition() {
        let (rows, h) = (37, 21);
        let x0: Vec<f32> = (0..rows * h).map(val).collect();
        let r: Vec<f32> = (0..rows * h).map(|i| val(i + 5)).collect();
        let g: Vec<f32> = (0..h).map(|i| 1.0 + val(i) / 10.0).collect();
        let b: Vec<f32> = (0..h).map(|i| val(i + 1) / 10.0).collect();
        let mut x = x0.clone();
        add_layer_norm(&mut x, Some(&r), &g, &b, 1e-12);
        for i in 0..rows {
            let s: Vec<f64> = (0..h)
                .map(|j| (x0[i * h + j] + r[i * h + j]) as f64)
                .collect();
            let mean = s.iter().sum::<f64>() / h as f64;
            let var = s.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / h as f64;
            for j in 0..h {
                let want = (s[j] - mean) / (var + 1e-12).sqrt() * g[j] as f64 + b[j] as f64;
                assert!((x[i * h + j] as f64 - want).abs() < 1e-5, "({i}, {j})");
            }
        }
    }

    /// Packed attention against a plain per-sequence softmax(q k^T) v in
    /// f64, with an empty sequence and a one-token one among them.
    #[test]
    fn attention_matches_its_definition_per_sequence() {
        let (heads, dh) = (3, 5);
        let h = heads * dh;
        let offsets = [0, 4, 4, 5, 12];
        let rows = 12;
        let qkv: Vec<f32> = (0..rows * 3 * h).map(|i| val(i) / 2.0).collect();
        let mut ctx = vec![f32::NAN; rows * h];
        attention(&qkv, heads, &offsets, &mut ctx);
        for s in 0..offsets.len() - 1 {
            let seq = offsets[s]..offsets[s + 1];
            for i in seq.clone() {
                for j in 0..heads {
                    let at = |r: usize, part: usize, d: usize| {
                        qkv[r * 3 * h + part * h + j * dh + d] as f64
                    };
                    let sc: Vec<f64> = seq
                        .clone()
                        .map(|r| {
                            (0..dh).map(|d| at(i, 0, d) * at(r, 1, d)).sum::<f64>()
                                / (dh as f64).sqrt()
                        })
                        .collect();
                    let m = sc.iter().cloned().fold(f64::MIN, f64::max);
                    let e: Vec<f64> = sc.iter().map(|v| (v - m).exp()).collect();
                    let z: f64 = e.iter().sum();
                    for d in 0..dh {
                        let want: f64 = seq.clone().zip(&e).map(|(r, p)| p / z * at(r, 2, d)).sum();
                        let got = ctx[i * h + j * dh + d] as f64;
                        assert!(
                            (got - want).abs() < 1e-5,
                            "row {i} head {j} dim {d}: {got} vs {want}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn activations_and_dot() {
        let mut v = vec![-3.0f32, -0.5, 0.0, 0.5, 3.0];
        activate(&mut v, 5, Activation::Relu);
        assert_eq!(v, [0.0, 0.0, 0.0, 0.5, 3.0]);
        let mut g = vec![-1.0f32, 1.0];
        activate(&mut g, 2, Activation::Gelu);
        // torch.nn.functional.gelu(torch.tensor([-1., 1.]))
        assert!((g[0] + 0.158_655_26).abs() < 1e-6 && (g[1] - 0.841_344_7).abs() < 1e-6);
        let a: Vec<f32> = (0..29).map(val).collect();
        let b: Vec<f32> = (0..29).map(|i| val(i + 2)).collect();
        let want: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - want).abs() < 1e-4);
    }
}

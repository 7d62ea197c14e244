//! Initialisers as PyTorch defines them, drawn from recur's seeded
//! generator (candle's CPU generator cannot be seeded). Orthogonal uses
//! Gram-Schmidt: for the tall `[4H, H]` recurrent matrices it gives the same
//! distribution as PyTorch's sign-corrected QR, and it is twenty lines where
//! a linear-algebra crate would be a large dependency for one function.

use recur_core::rng::Rng;

/// Xavier (Glorot) uniform for a `[fan_out, fan_in]` weight.
pub fn xavier_uniform(rng: &mut Rng, fan_out: usize, fan_in: usize) -> Vec<f32> {
    let bound = (6.0 / (fan_in + fan_out) as f64).sqrt() as f32;
    (0..fan_out * fan_in)
        .map(|_| rng.uniform(-bound, bound))
        .collect()
}

/// `U(-1/sqrt(fan_in), 1/sqrt(fan_in))`: PyTorch's default for `nn.Linear`
/// weights and biases (kaiming uniform with `a = sqrt(5)`).
pub fn linear_default(rng: &mut Rng, n: usize, fan_in: usize) -> Vec<f32> {
    let bound = 1.0 / (fan_in as f32).sqrt();
    (0..n).map(|_| rng.uniform(-bound, bound)).collect()
}

/// A `[rows, cols]` matrix (row-major) with orthonormal columns when
/// `rows >= cols`, orthonormal rows otherwise.
pub fn orthogonal(rng: &mut Rng, rows: usize, cols: usize) -> Vec<f32> {
    let (tall, short) = (rows.max(cols), rows.min(cols));
    // Columns of a tall random normal matrix, orthonormalised in f64.
    let mut q: Vec<Vec<f64>> = (0..short)
        .map(|_| (0..tall).map(|_| rng.normal() as f64).collect())
        .collect();
    for j in 0..short {
        for k in 0..j {
            let dot: f64 = q[k].iter().zip(&q[j]).map(|(a, b)| a * b).sum();
            let qk = q[k].clone();
            q[j].iter_mut().zip(&qk).for_each(|(v, u)| *v -= dot * u);
        }
        let norm = q[j].iter().map(|v| v * v).sum::<f64>().sqrt();
        q[j].iter_mut().for_each(|v| *v /= norm);
    }
    let mut out = vec![0f32; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            // Tall: column c of Q at row r. Wide: the transpose.
            out[r * cols + c] = if rows >= cols { q[c][r] } else { q[r][c] } as f32;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orthogonal_columns_are_orthonormal() {
        let mut rng = Rng::new(1);
        let (r, c) = (12, 3);
        let m = orthogonal(&mut rng, r, c);
        for a in 0..c {
            for b in 0..c {
                let dot: f32 = (0..r).map(|i| m[i * c + a] * m[i * c + b]).sum();
                assert!(
                    (dot - if a == b { 1.0 } else { 0.0 }).abs() < 1e-5,
                    "{a},{b}: {dot}"
                );
            }
        }
    }

    #[test]
    fn xavier_respects_its_bound() {
        let mut rng = Rng::new(1);
        let w = xavier_uniform(&mut rng, 256, 16);
        let bound = (6.0f32 / 272.0).sqrt();
        assert!(w.iter().all(|v| v.abs() <= bound));
        assert!(w.iter().any(|v| v.abs() > bound * 0.9));
    }
}

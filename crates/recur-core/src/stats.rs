//! Summary statistics shared by the benchmarks, the leaderboard and the
//! service's latency reports, so every percentile recur prints is
//! computed one way (numpy's default, linear interpolation); and the one
//! sigmoid of every probability recur reports (the fused kernels keep
//! their own f32 one, inlined into their loops).

/// The logistic function, in f64: logits to probabilities.
pub fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// Percentile `q` (0-100) of sorted values with linear interpolation.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q / 100.0 * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn percentile_interpolates_like_numpy() {
        let v: Vec<f64> = (1..=5).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 3.0);
        assert!((percentile(&v, 95.0) - 4.8).abs() < 1e-12);
        assert_eq!(percentile(&v, 0.0), 1.0);
    }
}

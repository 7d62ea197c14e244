//! The decision threshold by expected value (SYSTEM.md Job A, step 10):
//! the mean value per decision under a cost matrix, over 100 thresholds
//! in [0.01, 0.99]; the best is kept (the lowest on a tie).

use recur_core::config::CostMatrix;
use serde::{Deserialize, Serialize};

/// Mean value per row of acting when `p >= t`.
pub fn expected_value(p: &[f64], y: &[f32], t: f64, c: &CostMatrix) -> f64 {
    if p.is_empty() {
        return 0.0;
    }
    let total: f64 = p
        .iter()
        .zip(y)
        .map(|(&pi, &yi)| match (pi >= t, yi > 0.5) {
            (true, true) => c.tp,
            (true, false) => c.fp,
            (false, false) => c.tn,
            (false, true) => c.fn_,
        })
        .sum();
    total / p.len() as f64
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Threshold {
    pub threshold: f64,
    pub expected_value: f64,
}

/// The 100 thresholds searched.
pub fn grid() -> impl Iterator<Item = f64> {
    (0..100).map(|i| 0.01 + 0.98 * i as f64 / 99.0)
}

/// The threshold of highest expected value on `p`, `y` (validation).
pub fn best_threshold(p: &[f64], y: &[f32], c: &CostMatrix) -> Threshold {
    let mut best = Threshold {
        threshold: 0.5,
        expected_value: f64::NEG_INFINITY,
    };
    for t in grid() {
        let ev = expected_value(p, y, t, c);
        if ev > best.expected_value {
            best = Threshold {
                threshold: t,
                expected_value: ev,
            };
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_value_counts_each_outcome() {
        let c = CostMatrix::default();
        // tp, fp, tn, fn at t = 0.5.
        let ev = expected_value(&[0.9, 0.8, 0.1, 0.2], &[1.0, 0.0, 0.0, 1.0], 0.5, &c);
        assert!((ev - (0.005 - 0.003 + 0.0 - 0.001) / 4.0).abs() < 1e-15);
    }

    #[test]
    fn the_best_threshold_separates_when_it_can() {
        let p = [0.05, 0.2, 0.3, 0.7, 0.8, 0.95];
        let y = [0.0, 0.0, 0.0, 1.0, 1.0, 1.0];
        let b = best_threshold(&p, &y, &CostMatrix::default());
        assert!(b.threshold > 0.3 && b.threshold <= 0.7, "{b:?}");
        assert!((b.expected_value - 0.005 / 2.0).abs() < 1e-12);
        assert_eq!(grid().count(), 100);
        let g: Vec<f64> = grid().collect();
        assert!((g[0] - 0.01).abs() < 1e-12 && (g[99] - 0.99).abs() < 1e-12);
    }
}

//! The decision threshold by expected value (SYSTEM.md Job A, step 10):
//! the mean value per decision under a cost matrix, over 100 thresholds
//! in [0.01, 0.99]; the best is kept (the lowest on a tie).

use crate::report::readable;
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

/// A warning when acting on every row, or on none, is worth more on `p`,
/// `y` than `best`, the grid's best: no threshold in [0.01, 0.99] can
/// express that (probabilities at or beyond the grid's ends, a cost
/// matrix that favours one decision throughout), and the deployed
/// decision then does worse than the trivial one.
pub fn edge_note(p: &[f64], y: &[f32], c: &CostMatrix, best: Threshold) -> Option<String> {
    let always = expected_value(p, y, f64::NEG_INFINITY, c);
    let never = expected_value(p, y, f64::INFINITY, c);
    let (what, ev) = if always >= never {
        ("acting on every row", always)
    } else {
        ("acting on none", never)
    };
    // Beyond the sums' rounding: a tie is no reason to speak.
    let tol = 1e-12
        * [c.tp, c.fp, c.tn, c.fn_]
            .iter()
            .fold(1.0f64, |m, v| m.max(v.abs()));
    (ev > best.expected_value + tol).then(|| {
        format!(
            "the best threshold on the grid [0.01, 0.99] ({:.4}) is worth {} per row on validation, \
             and {what} would be worth {}: under this cost matrix the threshold cannot \
             do as well as the trivial decision; check `cost` (tp, fp, tn, fn) against \
             the base rate, and whether the probabilities lie within the grid",
            best.threshold,
            readable(best.expected_value, 4),
            readable(ev, 4)
        )
    })
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
    fn a_threshold_that_loses_to_the_trivial_decision_is_said() {
        // Rare events where a true positive is worth far more than a false
        // one costs, and the probabilities all lie below the grid: acting
        // on every row beats any threshold in [0.01, 0.99].
        let p = [0.002, 0.004, 0.006, 0.008, 0.009];
        let y = [0.0, 1.0, 0.0, 1.0, 0.0];
        let c = CostMatrix {
            tp: 1.0,
            fp: -0.001,
            tn: 0.0,
            fn_: 0.0,
        };
        let b = best_threshold(&p, &y, &c);
        let note = edge_note(&p, &y, &c, b).expect("acting on every row is better");
        assert!(
            note.contains("acting on every row would be worth 0.3994"),
            "{note}"
        );
        // Every decision costs: acting on none is better.
        let all_cost = CostMatrix {
            tp: -1.0,
            fp: -1.0,
            tn: 0.0,
            fn_: 0.0,
        };
        let p2 = [0.2, 0.995, 0.4, 0.999];
        let b = best_threshold(&p2, &y[..4], &all_cost);
        assert!(edge_note(&p2, &y[..4], &all_cost, b)
            .unwrap()
            .contains("acting on none would be worth 0.0000"));
        // A threshold that separates is left alone, and so is a tie.
        let sep = [0.05, 0.2, 0.3, 0.7, 0.8, 0.95];
        let ys = [0.0, 0.0, 0.0, 1.0, 1.0, 1.0];
        let d = CostMatrix::default();
        assert_eq!(
            edge_note(&sep, &ys, &d, best_threshold(&sep, &ys, &d)),
            None
        );
        // Costs of 1e100 print in exponent form, not as 100 digits.
        let huge = CostMatrix {
            tp: 1e100,
            fp: 1e100,
            tn: 0.0,
            fn_: 0.0,
        };
        let n = edge_note(&p, &y, &huge, best_threshold(&p, &y, &huge)).unwrap();
        assert!(n.contains("1.000e100") && n.len() < 400, "{n}");
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

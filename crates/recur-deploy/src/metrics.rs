//! Binary classification metrics on probabilities: ROC AUC (ties share
//! their average rank), PR AUC as average precision (scikit-learn's
//! definition), log loss (probabilities clipped to [eps, 1 - eps], eps
//! float64's epsilon, as scikit-learn clips them),
//! Brier score and accuracy at 0.5. AUC and PR AUC are `None` when only one
//! class is present, where they are undefined.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub auc: Option<f64>,
    pub pr_auc: Option<f64>,
    pub logloss: f64,
    pub brier: f64,
    pub accuracy: f64,
    pub n: usize,
    pub positives: usize,
    /// Macro F1 (more than two classes; see `crate::multiclass`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub macro_f1: Option<f64>,
    /// Counts of true class (rows) by predicted class (columns), with
    /// more than two classes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confusion: Option<Vec<Vec<usize>>>,
}

/// ROC AUC of probabilities `p` against labels `y`; `None` with one class only.
pub fn roc_auc(p: &[f64], y: &[f32]) -> Option<f64> {
    let pos = y.iter().filter(|v| **v > 0.5).count();
    let neg = y.len() - pos;
    if pos == 0 || neg == 0 {
        return None;
    }
    let mut idx: Vec<usize> = (0..p.len()).collect();
    idx.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && p[idx[j + 1]] == p[idx[i]] {
            j += 1;
        }
        let avg_rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += avg_rank * idx[i..=j].iter().filter(|&&k| y[k] > 0.5).count() as f64;
        i = j + 1;
    }
    Some((rank_sum - (pos * (pos + 1)) as f64 / 2.0) / (pos as f64 * neg as f64))
}

/// Points `[false positive rate, true positive rate]` of the ROC curve,
/// one per distinct score from the highest down (thinned to at most
/// `max_points`, ends kept), starting at `[0, 0]` and ending at `[1, 1]`.
pub fn roc_curve(p: &[f64], y: &[f32], max_points: usize) -> Vec<[f64; 2]> {
    let pos = y.iter().filter(|v| **v > 0.5).count() as f64;
    let neg = y.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return Vec::new();
    }
    let mut idx: Vec<usize> = (0..p.len()).collect();
    idx.sort_by(|&a, &b| p[b].total_cmp(&p[a]));
    let mut pts = vec![[0.0, 0.0]];
    let (mut tp, mut fp) = (0.0, 0.0);
    let mut i = 0;
    // NaN scores (which sort first) are one group, as equal scores are:
    // with `==` alone a NaN never ended its group and points piled up
    // until memory ran out.
    let same = |a: f64, b: f64| a == b || (a.is_nan() && b.is_nan());
    while i < idx.len() {
        let mut j = i;
        while j < idx.len() && same(p[idx[j]], p[idx[i]]) {
            if y[idx[j]] > 0.5 {
                tp += 1.0;
            } else {
                fp += 1.0;
            }
            j += 1;
        }
        pts.push([fp / neg, tp / pos]);
        i = j;
    }
    let step = pts.len().div_ceil(max_points.max(2));
    if step > 1 {
        let last = *pts.last().expect("at least two points");
        pts = pts.into_iter().step_by(step).collect();
        if pts.last() != Some(&last) {
            pts.push(last);
        }
    }
    pts
}

/// Average precision (PR AUC) as scikit-learn computes it; `None` with
/// one class only.
pub fn average_precision(p: &[f64], y: &[f32]) -> Option<f64> {
    let pos = y.iter().filter(|v| **v > 0.5).count();
    if pos == 0 || pos == y.len() {
        return None;
    }
    let mut idx: Vec<usize> = (0..p.len()).collect();
    idx.sort_by(|&a, &b| p[b].total_cmp(&p[a]));
    let (mut tp, mut fp, mut ap, mut prev_recall) = (0usize, 0usize, 0.0, 0.0);
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && p[idx[j + 1]] == p[idx[i]] {
            j += 1;
        }
        for &k in &idx[i..=j] {
            if y[k] > 0.5 {
                tp += 1
            } else {
                fp += 1
            }
        }
        let recall = tp as f64 / pos as f64;
        ap += (recall - prev_recall) * tp as f64 / (tp + fp) as f64;
        prev_recall = recall;
        i = j + 1;
    }
    Some(ap)
}

impl Metrics {
    /// Every metric of probabilities `p` against labels `y`.
    pub fn compute(p: &[f64], y: &[f32]) -> Metrics {
        let n = p.len().max(1) as f64;
        let logloss = p
            .iter()
            .zip(y)
            .map(|(&q, &t)| {
                let q = q.clamp(f64::EPSILON, 1.0 - f64::EPSILON);
                if t > 0.5 {
                    -q.ln()
                } else {
                    -(1.0 - q).ln()
                }
            })
            .sum::<f64>()
            / n;
        let brier = p
            .iter()
            .zip(y)
            .map(|(&q, &t)| (q - t as f64).powi(2))
            .sum::<f64>()
            / n;
        let correct = p
            .iter()
            .zip(y)
            .filter(|(&q, &t)| (q >= 0.5) == (t > 0.5))
            .count();
        Metrics {
            auc: roc_auc(p, y),
            pr_auc: average_precision(p, y),
            logloss,
            brier,
            accuracy: correct as f64 / n,
            n: p.len(),
            positives: y.iter().filter(|v| **v > 0.5).count(),
            macro_f1: None,
            confusion: None,
        }
    }
}

#[cfg(test)]
mod roc_tests {
    use super::*;

    #[test]
    fn the_roc_curve_climbs_from_corner_to_corner_and_its_area_is_the_auc() {
        let p = [0.9, 0.8, 0.7, 0.6, 0.55, 0.4, 0.3, 0.2];
        let y = [1.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0];
        let c = roc_curve(&p, &y, 100);
        assert_eq!(c.first(), Some(&[0.0, 0.0]));
        assert_eq!(c.last(), Some(&[1.0, 1.0]));
        assert!(c
            .windows(2)
            .all(|w| w[0][0] <= w[1][0] && w[0][1] <= w[1][1]));
        let area: f64 = c
            .windows(2)
            .map(|w| (w[1][0] - w[0][0]) * (w[0][1] + w[1][1]) / 2.0)
            .sum();
        assert!((area - roc_auc(&p, &y).unwrap()).abs() < 1e-12);
        assert!(roc_curve(&p, &y, 3).len() <= 4);
        // NaN scores end, as one group: a point each, not a loop.
        let p = [f64::NAN, 0.8, f64::NAN, 0.2];
        let c = roc_curve(&p, &[1.0, 0.0, 0.0, 1.0], 100);
        assert_eq!(c.len(), 4, "{c:?}");
        assert_eq!(c.last(), Some(&[1.0, 1.0]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_with_ties_matches_the_pairwise_definition() {
        let p = [0.1, 0.4, 0.35, 0.8, 0.4, 0.9];
        let y = [0.0, 0.0, 1.0, 1.0, 1.0, 0.0];
        // Pairs (pos, neg): count pos > neg, ties half.
        let mut s = 0.0;
        for i in 0..6 {
            for j in 0..6 {
                if y[i] == 1.0 && y[j] == 0.0 {
                    s += if p[i] > p[j] {
                        1.0
                    } else if p[i] == p[j] {
                        0.5
                    } else {
                        0.0
                    };
                }
            }
        }
        assert!((roc_auc(&p, &y).unwrap() - s / 9.0).abs() < 1e-12);
        assert_eq!(roc_auc(&p, &[1.0; 6]), None);
    }

    #[test]
    fn average_precision_matches_sklearn() {
        // sklearn.metrics.average_precision_score([0,0,1,1], [0.1,0.4,0.35,0.8]) = 0.8333...
        let ap = average_precision(&[0.1, 0.4, 0.35, 0.8], &[0.0, 0.0, 1.0, 1.0]).unwrap();
        assert!((ap - 0.8333333333333333).abs() < 1e-12, "{ap}");
    }

    #[test]
    fn logloss_and_brier() {
        let m = Metrics::compute(&[0.8, 0.3], &[1.0, 0.0]);
        assert!((m.logloss - (-(0.8f64.ln()) - 0.7f64.ln()) / 2.0).abs() < 1e-12);
        assert!((m.brier - (0.04 + 0.09) / 2.0).abs() < 1e-12);
        assert_eq!(m.accuracy, 1.0);
    }
}

//! Probability calibration fit on validation (SYSTEM.md Job A, step 9):
//! Platt scaling (a logistic fit on the logit) and isotonic regression (pool
//! adjacent violators, interpolated between block edges as scikit-learn
//! does), with the expected calibration error and a reliability table to
//! show what each did.

use recur_core::config::CalibrationKind;
use recur_core::stats::sigmoid;
use serde::{Deserialize, Serialize};

/// A fitted map from raw to calibrated probability.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Calibrator {
    Identity,
    /// `sigmoid(a * logit(p) + b)`.
    Platt {
        a: f64,
        b: f64,
    },
    /// Non-decreasing steps: `y` at `x`, linear in between, flat outside.
    Isotonic {
        x: Vec<f64>,
        y: Vec<f64>,
    },
}

const EPS: f64 = 1e-7;

fn logit(p: f64) -> f64 {
    let p = p.clamp(EPS, 1.0 - EPS);
    (p / (1.0 - p)).ln()
}

impl Calibrator {
    /// Fits `kind` on probabilities `p` and 0/1 labels `y` (validation).
    pub fn fit(kind: CalibrationKind, p: &[f64], y: &[f32]) -> Calibrator {
        match kind {
            CalibrationKind::None => Calibrator::Identity,
            CalibrationKind::Platt => platt(p, y),
            CalibrationKind::Isotonic => isotonic(p, y),
        }
    }

    /// The calibrated probability of raw probability `p`.
    pub fn apply(&self, p: f64) -> f64 {
        match self {
            Calibrator::Identity => p,
            Calibrator::Platt { a, b } => sigmoid(a * logit(p) + b),
            Calibrator::Isotonic { x, y } => interp(p, x, y),
        }
    }

    /// Refuses a calibrator that could not have been fit (a file edited
    /// by hand): non-finite coefficients, or isotonic steps that are empty,
    /// of two lengths, unsorted or outside [0, 1].
    pub fn check(&self) -> std::result::Result<(), String> {
        match self {
            Calibrator::Identity => Ok(()),
            Calibrator::Platt { a, b } => {
                if a.is_finite() && b.is_finite() {
                    Ok(())
                } else {
                    Err(format!(
                        "Platt coefficients a = {a}, b = {b} must be finite"
                    ))
                }
            }
            Calibrator::Isotonic { x, y } => {
                if x.is_empty() || x.len() != y.len() {
                    return Err(format!(
                        "isotonic steps need x and y of one length, at least 1 (x has {}, y {})",
                        x.len(),
                        y.len()
                    ));
                }
                let in_unit = |v: &f64| (0.0..=1.0).contains(v);
                if !x.iter().all(in_unit) || !y.iter().all(in_unit) {
                    return Err("isotonic x and y must lie in [0, 1]".into());
                }
                if x.windows(2).any(|w| w[0] > w[1]) || y.windows(2).any(|w| w[0] > w[1]) {
                    return Err("isotonic x and y must be non-decreasing".into());
                }
                Ok(())
            }
        }
    }

    /// The calibrated probabilities of raw probabilities `p`.
    pub fn apply_all(&self, p: &[f64]) -> Vec<f64> {
        p.iter().map(|&v| self.apply(v)).collect()
    }
}

/// Platt's fit by Newton's method on the log loss, with his smoothed
/// targets `(N+ + 1) / (N+ + 2)` and `1 / (N- + 2)` against overfitting.
///
/// Each Newton step is taken only as far as it lowers the loss (halved
/// until it does: the backtracking of Lin, Lin and Weng's "A note on
/// Platt's probabilistic outputs"). Plain Newton from `a = 1` diverged
/// on over-confident scores (an over-fit model's, the case calibration is
/// for): it ended at `a = -20963` and turned a test AUC of 0.92 into 0.16.
/// Where every full step passes the test of sufficient decrease, as on
/// every well-behaved fit, the iterates are plain Newton's, bit for bit.
fn platt(p: &[f64], y: &[f32]) -> Calibrator {
    let pos = y.iter().filter(|&&v| v > 0.5).count() as f64;
    let neg = y.len() as f64 - pos;
    let (hi, lo) = ((pos + 1.0) / (pos + 2.0), 1.0 / (neg + 2.0));
    let z: Vec<f64> = p.iter().map(|&v| logit(v)).collect();
    let t: Vec<f64> = y.iter().map(|&v| if v > 0.5 { hi } else { lo }).collect();
    // The log loss against the smoothed targets, `softplus(s) - t s` per
    // row (no overflow for any `s`).
    let loss = |a: f64, b: f64| -> f64 {
        z.iter()
            .zip(&t)
            .map(|(zi, ti)| {
                let s = a * zi + b;
                s.max(0.0) + (-s.abs()).exp().ln_1p() - ti * s
            })
            .sum()
    };
    let (mut a, mut b) = (1.0f64, 0.0f64);
    let mut f = loss(a, b);
    for _ in 0..100 {
        let (mut ga, mut gb, mut haa, mut hab, mut hbb) = (0.0, 0.0, 1e-12, 0.0, 1e-12);
        for (zi, ti) in z.iter().zip(&t) {
            let q = sigmoid(a * zi + b);
            let (d, w) = (q - ti, q * (1.0 - q));
            ga += d * zi;
            gb += d;
            haa += w * zi * zi;
            hab += w * zi;
            hbb += w;
        }
        let det = haa * hbb - hab * hab;
        if det.abs() < 1e-18 {
            break;
        }
        let (da, db) = ((hbb * ga - hab * gb) / det, (haa * gb - hab * ga) / det);
        if da.abs() < 1e-10 && db.abs() < 1e-10 {
            a -= da;
            b -= db;
            break;
        }
        // The loss falls along -(da, db) at rate `slope` (the Hessian is
        // positive definite); a step is kept when it gains at least a
        // ten-thousandth of that, or the loss is level to rounding.
        let slope = ga * da + gb * db;
        let mut step = 1.0;
        let moved = loop {
            let (na, nb) = (a - step * da, b - step * db);
            let nf = loss(na, nb);
            if nf <= f - 1e-4 * step * slope || nf <= f + 1e-12 * f.abs().max(1.0) {
                a = na;
                b = nb;
                f = nf;
                break true;
            }
            step *= 0.5;
            if step < 1e-10 {
                break false;
            }
        };
        if !moved {
            break;
        }
    }
    Calibrator::Platt { a, b }
}

/// Pool adjacent violators over the points sorted by `p` (equal `p`
/// pooled first); each block keeps its lowest and highest `p`.
fn isotonic(p: &[f64], y: &[f32]) -> Calibrator {
    let mut order: Vec<usize> = (0..p.len()).collect();
    order.sort_by(|&i, &j| p[i].total_cmp(&p[j]));
    // Equal scores are one point (their labels' mean, weighted by their
    // count) before any pooling, as scikit-learn does: adding tied rows one
    // at a time let each pool on its own, which made the fit depend on the
    // rows' order and miss the least-squares one (tree scores tie often).
    let mut points: Vec<(f64, f64, f64)> = Vec::new();
    for i in order {
        let (x, v) = (p[i], y[i] as f64);
        match points.last_mut() {
            Some(t) if t.2 == x => {
                t.0 += v;
                t.1 += 1.0;
            }
            _ => points.push((v, 1.0, x)),
        }
    }
    // (sum of y, count, lowest x, highest x)
    let mut blocks: Vec<(f64, f64, f64, f64)> = Vec::new();
    for (v, c, x) in points {
        blocks.push((v, c, x, x));
        while blocks.len() > 1 {
            let n = blocks.len();
            let (prev, last) = (blocks[n - 2], blocks[n - 1]);
            if prev.0 / prev.1 <= last.0 / last.1 {
                break;
            }
            blocks[n - 2] = (prev.0 + last.0, prev.1 + last.1, prev.2, last.3);
            blocks.pop();
        }
    }
    let (mut x, mut ys) = (Vec::new(), Vec::new());
    for (s, c, lo, hi) in blocks {
        let m = s / c;
        x.push(lo);
        ys.push(m);
        if hi > lo {
            x.push(hi);
            ys.push(m);
        }
    }
    if x.is_empty() {
        return Calibrator::Identity;
    }
    Calibrator::Isotonic { x, y: ys }
}

fn interp(v: f64, x: &[f64], y: &[f64]) -> f64 {
    if v.is_nan() {
        return v;
    }
    if v <= x[0] {
        return y[0];
    }
    if v >= x[x.len() - 1] {
        return y[y.len() - 1];
    }
    let i = x.partition_point(|&xi| xi <= v);
    let (x0, x1, y0, y1) = (x[i - 1], x[i], y[i - 1], y[i]);
    if x1 == x0 {
        y1
    } else {
        y0 + (y1 - y0) * (v - x0) / (x1 - x0)
    }
}

/// One bin of a reliability table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bin {
    pub lo: f64,
    pub hi: f64,
    pub count: usize,
    pub mean_predicted: f64,
    pub fraction_positive: f64,
}

/// Equal-width bins over [0, 1] (empty bins left out).
pub fn reliability(p: &[f64], y: &[f32], bins: usize) -> Vec<Bin> {
    let mut acc = vec![(0usize, 0.0f64, 0.0f64); bins];
    for (&pi, &yi) in p.iter().zip(y) {
        let b = ((pi * bins as f64) as usize).min(bins - 1);
        acc[b].0 += 1;
        acc[b].1 += pi;
        acc[b].2 += yi as f64;
    }
    acc.iter()
        .enumerate()
        .filter(|(_, a)| a.0 > 0)
        .map(|(i, &(n, sp, sy))| Bin {
            lo: i as f64 / bins as f64,
            hi: (i + 1) as f64 / bins as f64,
            count: n,
            mean_predicted: sp / n as f64,
            fraction_positive: sy / n as f64,
        })
        .collect()
}

/// Expected calibration error over 10 equal-width bins:
/// `sum_b n_b / N * |fraction positive - mean predicted|`.
pub fn ece(p: &[f64], y: &[f32]) -> f64 {
    let n = p.len().max(1) as f64;
    reliability(p, y, 10)
        .iter()
        .map(|b| b.count as f64 / n * (b.fraction_positive - b.mean_predicted).abs())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Probabilities that are too confident: the truth is `0.5 + (p - 0.5) / 2`.
    fn overconfident(n: usize) -> (Vec<f64>, Vec<f32>) {
        let mut g = recur_core::rng::Rng::new(3);
        let p: Vec<f64> = (0..n).map(|_| g.unit() as f64).collect();
        let y = p
            .iter()
            .map(|&v| ((g.unit() as f64) < 0.5 + (v - 0.5) / 2.0) as u8 as f32)
            .collect();
        (p, y)
    }

    #[test]
    fn isotonic_output_is_monotone_and_lowers_the_error() {
        let (p, y) = overconfident(4000);
        let c = Calibrator::fit(CalibrationKind::Isotonic, &p, &y);
        let grid: Vec<f64> = (0..=1000).map(|i| i as f64 / 1000.0).collect();
        let out = c.apply_all(&grid);
        assert!(out.windows(2).all(|w| w[0] <= w[1]), "not monotone");
        assert!(out.iter().all(|v| (0.0..=1.0).contains(v)));
        let before = ece(&p, &y);
        let after = ece(&c.apply_all(&p), &y);
        assert!(after < before / 3.0, "ECE {before} -> {after}");
    }

    /// Tied scores are pooled before their neighbours, whatever the rows'
    /// order: the least-squares fit scikit-learn gives.
    #[test]
    fn pav_pools_tied_scores_first_in_any_order() {
        let p = [0.1, 0.1, 0.2, 0.2, 0.2];
        let want = Calibrator::Isotonic {
            x: vec![0.1, 0.2],
            y: vec![0.5, 2.0 / 3.0],
        };
        for y in [[0.0, 1.0, 0.0, 1.0, 1.0], [0.0, 1.0, 1.0, 1.0, 0.0]] {
            assert_eq!(Calibrator::fit(CalibrationKind::Isotonic, &p, &y), want);
        }
        // A violation across tied groups pools the groups whole.
        let c = Calibrator::fit(
            CalibrationKind::Isotonic,
            &[0.1, 0.1, 0.1, 0.2, 0.2],
            &[1.0, 1.0, 0.0, 0.0, 1.0],
        );
        assert_eq!(
            c,
            Calibrator::Isotonic {
                x: vec![0.1, 0.2],
                y: vec![0.6, 0.6]
            }
        );
    }

    #[test]
    fn pav_pools_violators_to_their_mean() {
        let c = Calibrator::fit(
            CalibrationKind::Isotonic,
            &[0.1, 0.2, 0.3, 0.4],
            &[0.0, 1.0, 0.0, 1.0],
        );
        // 0.2 and 0.3 violate (1 then 0): pooled to 0.5.
        assert_eq!(
            c,
            Calibrator::Isotonic {
                x: vec![0.1, 0.2, 0.3, 0.4],
                y: vec![0.0, 0.5, 0.5, 1.0]
            }
        );
        assert_eq!(c.apply(0.25), 0.5);
        assert_eq!(c.apply(0.05), 0.0);
        assert!((c.apply(0.35) - 0.75).abs() < 1e-12);
    }

    #[test]
    fn platt_recovers_a_known_logistic_map() {
        // Labels drawn from sigmoid(0.5 * logit(p) - 0.3).
        let mut g = recur_core::rng::Rng::new(5);
        let p: Vec<f64> = (0..20000).map(|_| 0.02 + 0.96 * g.unit() as f64).collect();
        let y: Vec<f32> = p
            .iter()
            .map(|&v| ((g.unit() as f64) < sigmoid(0.5 * logit(v) - 0.3)) as u8 as f32)
            .collect();
        let Calibrator::Platt { a, b } = Calibrator::fit(CalibrationKind::Platt, &p, &y) else {
            panic!()
        };
        assert!(
            (a - 0.5).abs() < 0.05 && (b + 0.3).abs() < 0.05,
            "a {a} b {b}"
        );
        let (q, z) = overconfident(4000);
        let c = Calibrator::fit(CalibrationKind::Platt, &q, &z);
        assert!(ece(&c.apply_all(&q), &z) < ece(&q, &z));
    }

    /// Scores ten times too sure of themselves (an over-fit model's), and
    /// scores saturated at 0 and 1: the fit reaches the loss's minimum
    /// instead of running away (plain Newton had ended at slopes of -2e4
    /// and 6e6, which turned the ranking upside down or into two values).
    #[test]
    fn platt_finds_the_minimum_on_overconfident_and_saturated_scores() {
        let mut g = recur_core::rng::Rng::new(11);
        let q: Vec<f64> = (0..3000).map(|_| 0.05 + 0.9 * g.unit() as f64).collect();
        let y: Vec<f32> = q
            .iter()
            .map(|&v| ((g.unit() as f64) < v) as u8 as f32)
            .collect();
        let p: Vec<f64> = q.iter().map(|&v| sigmoid(10.0 * logit(v))).collect();
        let Calibrator::Platt { a, b } = Calibrator::fit(CalibrationKind::Platt, &p, &y) else {
            panic!()
        };
        assert!((a - 0.1).abs() < 0.02 && b.abs() < 0.1, "a {a} b {b}");
        // Saturated: every score 0 or 1, right two times in three.
        let p: Vec<f64> = (0..600).map(|i| (i % 2) as f64).collect();
        let y: Vec<f32> = (0..600)
            .map(|i| ((i % 2 == 1) == (i % 3 != 0)) as u8 as f32)
            .collect();
        let c = Calibrator::fit(CalibrationKind::Platt, &p, &y);
        let Calibrator::Platt { a, b } = c else {
            panic!()
        };
        assert!(a.is_finite() && b.is_finite() && a > 0.0, "a {a} b {b}");
        // The frequencies of each group, as a two-point fit must give.
        let (hit1, hit0) = (c.apply(1.0), c.apply(0.0));
        assert!(
            (hit1 - 0.667).abs() < 0.01 && (hit0 - 0.333).abs() < 0.01,
            "{hit1} {hit0}"
        );
    }

    #[test]
    fn ece_of_a_hand_made_case() {
        // Bin [0.1, 0.2): predicted 0.15 twice, one positive: |0.5 - 0.15| * 2/4;
        // bin [0.9, 1.0]: 0.95 twice, both positive: |1 - 0.95| * 2/4.
        let e = ece(&[0.15, 0.15, 0.95, 0.95], &[0.0, 1.0, 1.0, 1.0]);
        assert!((e - (0.35 * 0.5 + 0.05 * 0.5)).abs() < 1e-12, "{e}");
        let r = reliability(&[0.15, 0.15, 0.95, 0.95], &[0.0, 1.0, 1.0, 1.0], 10);
        assert_eq!(r.len(), 2);
        assert_eq!((r[1].count, r[1].fraction_positive), (2, 1.0));
    }
}

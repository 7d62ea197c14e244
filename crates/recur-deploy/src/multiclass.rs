//! More than two classes: the softmax of a classifier's K logits, with the
//! temperature that calibrates it (Guo et al. 2017: one scalar `T`, fit on
//! validation by minimising log loss, so the predicted class never changes
//! and only the confidence does), and the metrics scikit-learn reports for
//! it: accuracy, macro F1, one-vs-rest macro ROC AUC, log loss, the
//! multi-class Brier score and the confusion matrix. Two classes keep
//! `crate::metrics` and the Platt and isotonic calibrators.

use crate::metrics::{roc_auc, Metrics};

/// Row-wise softmax of `logits [n * k]` divided by `temperature`.
pub fn softmax(logits: &[f32], k: usize, temperature: f64) -> Vec<f64> {
    let mut out = Vec::with_capacity(logits.len());
    for row in logits.chunks(k) {
        let z: Vec<f64> = row.iter().map(|&v| v as f64 / temperature).collect();
        let max = z.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v));
        let e: Vec<f64> = z.iter().map(|&v| (v - max).exp()).collect();
        let s: f64 = e.iter().sum();
        out.extend(e.iter().map(|v| v / s));
    }
    out
}

/// The index of each row's largest probability (the first on ties).
pub fn argmax(p: &[f64], k: usize) -> Vec<usize> {
    p.chunks(k)
        .map(|r| {
            (0..k)
                .fold((0, f64::NEG_INFINITY), |(bi, bv), i| {
                    if r[i] > bv {
                        (i, r[i])
                    } else {
                        (bi, bv)
                    }
                })
                .0
        })
        .collect()
}

/// Mean `-ln p[y]`, probabilities clipped at float64's epsilon as
/// `crate::metrics` and scikit-learn clip them (1e-15 gave 18.10 where
/// scikit-learn gives 18.34 for a sure mistake).
pub fn log_loss(p: &[f64], y: &[f32], k: usize) -> f64 {
    let s: f64 = p
        .chunks(k)
        .zip(y)
        .map(|(r, &c)| -r[c as usize].clamp(f64::EPSILON, 1.0).ln())
        .sum();
    // `+ 0.0` turns the -0 of certainty into 0.
    s / y.len().max(1) as f64 + 0.0
}

/// The macro average over classes of each class's ROC AUC against the
/// rest (scikit-learn's `multi_class="ovr", average="macro"`); classes
/// absent from `y` (where the AUC is undefined) are left out; `None` when
/// no class has both.
pub fn macro_auc(p: &[f64], y: &[f32], k: usize) -> Option<f64> {
    let aucs: Vec<f64> = (0..k)
        .filter_map(|c| {
            let pc: Vec<f64> = p.chunks(k).map(|r| r[c]).collect();
            let yc: Vec<f32> = y.iter().map(|&v| f32::from(v as usize == c)).collect();
            roc_auc(&pc, &yc)
        })
        .collect();
    (!aucs.is_empty()).then(|| aucs.iter().sum::<f64>() / aucs.len() as f64)
}

/// Counts of true class (rows) against predicted class (columns).
pub fn confusion(pred: &[usize], y: &[f32], k: usize) -> Vec<Vec<usize>> {
    let mut m = vec![vec![0; k]; k];
    for (&p, &t) in pred.iter().zip(y) {
        m[t as usize][p] += 1;
    }
    m
}

/// The unweighted mean of each class's F1, `2 tp / (actual + predicted)`,
/// over the classes that are present or predicted (scikit-learn's
/// `average="macro"` with its default labels and `zero_division=0`).
pub fn macro_f1(conf: &[Vec<usize>]) -> f64 {
    let k = conf.len();
    let mut sum = 0.0;
    let mut counted = 0;
    for c in 0..k {
        let tp = conf[c][c] as f64;
        let actual: usize = conf[c].iter().sum();
        let predicted: usize = conf.iter().map(|r| r[c]).sum();
        if actual == 0 && predicted == 0 {
            continue;
        }
        counted += 1;
        let denom = (actual + predicted) as f64;
        sum += 2.0 * tp / denom;
    }
    if counted == 0 {
        0.0
    } else {
        sum / counted as f64
    }
}

impl Metrics {
    /// Every metric of class probabilities `p [n * k]` against class
    /// indices `y`: `auc` is the macro one-vs-rest AUC, `brier` the mean
    /// over windows of the squared distance to the one-hot label, `accuracy`
    /// of the most probable class; `pr_auc` is left out and `positives`
    /// is 0 (they are two-class notions).
    pub fn compute_multi(p: &[f64], y: &[f32], k: usize) -> Metrics {
        let n = y.len().max(1) as f64;
        let pred = argmax(p, k);
        let conf = confusion(&pred, y, k);
        let brier = p
            .chunks(k)
            .zip(y)
            .map(|(r, &c)| {
                r.iter()
                    .enumerate()
                    .map(|(i, &q)| (q - f64::from(u8::from(i == c as usize))).powi(2))
                    .sum::<f64>()
            })
            .sum::<f64>()
            / n;
        let correct = pred
            .iter()
            .zip(y)
            .filter(|(&p, &t)| p == t as usize)
            .count();
        Metrics {
            auc: macro_auc(p, y, k),
            pr_auc: None,
            logloss: log_loss(p, y, k),
            brier,
            accuracy: correct as f64 / n,
            n: y.len(),
            positives: 0,
            macro_f1: Some(macro_f1(&conf)),
            confusion: Some(conf),
        }
    }
}

/// The temperature `T` that minimises the validation log loss of
/// `softmax(z / T)`: a golden-section search over `ln T` in
/// [ln 0.05, ln 20] (the loss is convex in `1 / T`). 1 when the search
/// cannot beat it, so calibration never makes validation worse. 1 as well
/// when the model gets every validation window right, or the minimum lies
/// on a bound of the range: a validation set the model separates
/// perfectly rewards ever sharper probabilities without end, which says
/// nothing of the data it has not seen.
pub fn fit_temperature(logits: &[f32], y: &[f32], k: usize) -> f64 {
    let pred = argmax(&softmax(logits, k, 1.0), k);
    if pred.iter().zip(y).all(|(&p, &c)| p == c as usize) {
        return 1.0;
    }
    let loss = |lt: f64| log_loss(&softmax(logits, k, lt.exp()), y, k);
    let (mut a, mut b) = (0.05f64.ln(), 20f64.ln());
    let g = (5f64.sqrt() - 1.0) / 2.0;
    let (mut c, mut d) = (b - g * (b - a), a + g * (b - a));
    let (mut fc, mut fd) = (loss(c), loss(d));
    for _ in 0..60 {
        if fc < fd {
            b = d;
            d = c;
            fd = fc;
            c = b - g * (b - a);
            fc = loss(c);
        } else {
            a = c;
            c = d;
            fc = fd;
            d = a + g * (b - a);
            fd = loss(d);
        }
    }
    let lt = (a + b) / 2.0;
    let on_bound = lt < 0.05f64.ln() + 0.01 || lt > 20f64.ln() - 0.01;
    let t = lt.exp();
    if !on_bound && loss(lt) < loss(0.0) {
        t
    } else {
        1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sure mistake costs `-ln eps`, float64's epsilon, as in
    /// scikit-learn's `log_loss` (1e-15 gave 34.5, where it gives 36.0).
    #[test]
    fn a_sure_mistake_is_clipped_as_scikit_learn_clips_it() {
        let want = -f64::EPSILON.ln();
        assert!((log_loss(&[1.0, 0.0], &[1.0], 2) - want).abs() < 1e-12);
        let m = crate::metrics::Metrics::compute(&[0.0, 1.0], &[1.0, 0.0]);
        assert!((m.logloss - want).abs() < 1e-12, "{}", m.logloss);
    }

    #[test]
    fn temperature_lowers_the_log_loss_of_overconfident_logits() {
        // Right two times in three, but with logits that claim certainty.
        let z: Vec<f32> = (0..30)
            .flat_map(|i| {
                let c = i % 3;
                let pred = if i % 3 == 2 { (c + 1) % 3 } else { c };
                (0..3).map(move |j| if j == pred { 8.0 } else { 0.0 })
            })
            .collect();
        let y: Vec<f32> = (0..30).map(|i| (i % 3) as f32).collect();
        let t = fit_temperature(&z, &y, 3);
        assert!(t > 2.0, "{t}");
        let before = log_loss(&softmax(&z, 3, 1.0), &y, 3);
        let after = log_loss(&softmax(&z, 3, t), &y, 3);
        assert!(after < before - 0.5, "{before} -> {after}");
        // The predicted class never changes.
        assert_eq!(
            argmax(&softmax(&z, 3, 1.0), 3),
            argmax(&softmax(&z, 3, t), 3)
        );
        // Every window right: no temperature is best, so none is fit.
        let sure: Vec<f32> = (0..30)
            .flat_map(|i| (0..3).map(move |j| if j == i % 3 { 2.0 } else { 0.0 }))
            .collect();
        assert_eq!(fit_temperature(&sure, &y, 3), 1.0);
    }

    #[test]
    fn confusion_and_macro_f1_by_hand() {
        let pred = [0, 0, 1, 2, 2, 2];
        let y = [0.0, 1.0, 1.0, 2.0, 2.0, 0.0];
        let m = confusion(&pred, &y, 3);
        assert_eq!(m, vec![vec![1, 0, 1], vec![1, 1, 0], vec![0, 0, 2]]);
        // F1: class 0 2*1/(2+2)=0.5, class 1 2*1/(2+1)=2/3, class 2 2*2/(2+3)=0.8.
        assert!((macro_f1(&m) - (0.5 + 2.0 / 3.0 + 0.8) / 3.0).abs() < 1e-12);
    }
}

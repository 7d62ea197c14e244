//! Temporal feature selection (SYSTEM.md Job A, step 2), fit on the
//! training rows only: every statistic is computed over `train` and
//! nothing else, so validation and test rows cannot choose the features
//! they are scored on. Filters, in order: constant; lag-1 autocorrelation
//! `|ac| >= min`; noise ratio `std / |mean| < max` and outlier share
//! (`|z| > outlier_z`) `< max`; trend strength (only when a minimum is set);
//! then the `max_features` most important by
//! `(|corr(x[t], y[t])| + |corr(x[t], y[t+1])|) / 2`. The kept features are
//! smoothed with a causal EWMA, which reads only the past.

use crate::scaler::is_constant;
use recur_core::config::SelectionConfig;
use recur_core::{Error, Result};
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// One feature's statistics on the training rows and the verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureStats {
    pub feature: String,
    pub mean: f64,
    pub std: f64,
    pub distinct: usize,
    pub autocorr: f64,
    /// `std / |mean|`; infinite when the mean is 0 or the ratio overflows
    /// (JSON: null).
    #[serde(with = "infinite_as_null")]
    pub noise_ratio: f64,
    pub outlier_share: f64,
    pub trend: f64,
    pub importance: f64,
    pub kept: bool,
    /// Why it was dropped (None when kept).
    pub dropped_by: Option<String>,
}

/// The outcome of selection: the kept features in their original order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Selection {
    pub kept: Vec<String>,
    pub table: Vec<FeatureStats>,
    pub ewma_span: usize,
    /// The training rows the statistics came from.
    pub train_rows: (usize, usize),
}

/// JSON has no infinity: written as null, read back as infinity.
mod infinite_as_null {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes a non-finite ratio as `null`, since JSON has no infinity.
    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() {
            s.serialize_f64(*v)
        } else {
            s.serialize_none()
        }
    }

    /// Reads a ratio written by `serialize` (`null` is infinity).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::INFINITY))
    }
}

pub(crate) fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// Population standard deviation.
pub(crate) fn std(v: &[f64], m: f64) -> f64 {
    (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / v.len().max(1) as f64).sqrt()
}

/// Pearson correlation of paired values; 0 when either side is constant.
pub fn corr(a: &[f64], b: &[f64]) -> f64 {
    let (ma, mb) = (mean(a), mean(b));
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma) * (x - ma);
        sbb += (y - mb) * (y - mb);
    }
    let n = a.len() as f64;
    if is_constant(saa / n, ma, n) || is_constant(sbb / n, mb, n) {
        0.0
    } else {
        sab / (saa * sbb).sqrt()
    }
}

/// Lag-1 autocorrelation: the correlation of `x[t]` with `x[t+1]`.
pub(crate) fn lag1_autocorr(x: &[f64]) -> f64 {
    if x.len() > 2 {
        corr(&x[..x.len() - 1], &x[1..])
    } else {
        0.0
    }
}

/// `std / |mean|`; None (infinite) when the mean is zero or the ratio
/// overflows. (No absolute cut-off: a feature's units are its own.)
pub(crate) fn noise_ratio(m: f64, s: f64) -> Option<f64> {
    let r = s / m.abs();
    r.is_finite().then_some(r)
}

/// Statistics of one training series `x` with its row labels `y`.
fn stats(name: &str, x: &[f64], y: &[Option<f32>], cfg: &SelectionConfig) -> FeatureStats {
    let m = mean(x);
    let s = std(x, m);
    let mut sorted = x.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.dedup();
    let distinct = sorted.len();
    let autocorr = lag1_autocorr(x);
    let noise_ratio = noise_ratio(m, s).unwrap_or(f64::INFINITY);
    let outlier_share = if s > 0.0 {
        x.iter()
            .filter(|v| ((*v - m) / s).abs() > cfg.outlier_z)
            .count() as f64
            / x.len() as f64
    } else {
        0.0
    };
    let t: Vec<f64> = (0..x.len()).map(|i| i as f64).collect();
    let trend = corr(&t, x).abs();
    let pairs = |shift: usize| -> (Vec<f64>, Vec<f64>) {
        (0..x.len().saturating_sub(shift))
            .filter_map(|i| y[i + shift].map(|l| (x[i], l as f64)))
            .unzip()
    };
    let (a0, b0) = pairs(0);
    let (a1, b1) = pairs(1);
    let importance = (corr(&a0, &b0).abs() + corr(&a1, &b1).abs()) / 2.0;
    FeatureStats {
        feature: name.to_string(),
        mean: m,
        std: s,
        distinct,
        autocorr,
        noise_ratio,
        outlier_share,
        trend,
        importance,
        kept: false,
        dropped_by: None,
    }
}

/// Selects among `names`, whose values are the row-major `[n, F]` buffer
/// `values`, using only the rows in `train` (with their labels `labels[row]`).
pub fn select(
    names: &[String],
    values: &[f64],
    labels: &[Option<f32>],
    train: Range<usize>,
    cfg: &SelectionConfig,
) -> Result<Selection> {
    let f = names.len();
    let n = values.len() / f.max(1);
    if train.end > n || train.len() < 3 {
        return Err(Error::Msg(format!(
            "feature selection needs at least 3 training rows (rows {}..{} of {n})",
            train.start, train.end
        )));
    }
    let y = &labels[train.clone()];
    let mut table: Vec<FeatureStats> = (0..f)
        .map(|j| {
            let x: Vec<f64> = train.clone().map(|r| values[r * f + j]).collect();
            stats(&names[j], &x, y, cfg)
        })
        .collect();
    for s in table.iter_mut() {
        s.dropped_by = if is_constant(s.std * s.std, s.mean, train.len() as f64) || s.distinct <= 1
        {
            Some(format!(
                "constant (std {:.3e}, {} distinct value(s))",
                s.std, s.distinct
            ))
        } else if s.autocorr.abs() < cfg.min_abs_autocorr {
            Some(format!(
                "autocorrelation |{:.3}| < {}",
                s.autocorr, cfg.min_abs_autocorr
            ))
        } else if cfg.max_noise_ratio.is_finite() && s.noise_ratio >= cfg.max_noise_ratio {
            // (`.inf` turns the filter off: a mean of exactly 0 gives an
            // infinite ratio, which `>=` alone would still drop.)
            Some(format!(
                "noise ratio {:.3} >= {}",
                s.noise_ratio, cfg.max_noise_ratio
            ))
        } else if s.outlier_share >= cfg.max_outlier_share {
            Some(format!(
                "outliers {:.2}% >= {:.2}% (|z| > {})",
                s.outlier_share * 100.0,
                cfg.max_outlier_share * 100.0,
                cfg.outlier_z
            ))
        } else {
            match cfg.min_trend {
                Some(t) if s.trend < t => Some(format!("trend {:.3} < {t}", s.trend)),
                _ => None,
            }
        };
    }
    let mut passing: Vec<usize> = (0..f).filter(|&j| table[j].dropped_by.is_none()).collect();
    passing.sort_by(|&a, &b| {
        table[b]
            .importance
            .total_cmp(&table[a].importance)
            .then(a.cmp(&b))
    });
    for (rank, &j) in passing.iter().enumerate() {
        if rank >= cfg.max_features {
            table[j].dropped_by = Some(format!(
                "importance {:.4} ranks {} (max_features {})",
                table[j].importance,
                rank + 1,
                cfg.max_features
            ));
        } else {
            table[j].kept = true;
        }
    }
    let kept: Vec<String> = table
        .iter()
        .filter(|s| s.kept)
        .map(|s| s.feature.clone())
        .collect();
    if kept.is_empty() {
        let why: Vec<String> = table
            .iter()
            .map(|s| format!("{}: {}", s.feature, s.dropped_by.as_deref().unwrap_or("?")))
            .collect();
        return Err(Error::Msg(format!(
            "feature selection dropped every feature; loosen the `selection:` settings. {}",
            why.join("; ")
        )));
    }
    Ok(Selection {
        kept,
        table,
        ewma_span: cfg.ewma_span,
        train_rows: (train.start, train.end),
    })
}

/// Causal EWMA of span `span` down each column of a row-major `[n, f]`
/// buffer: `s[0] = x[0]`, `s[t] = a x[t] + (1 - a) s[t-1]`,
/// `a = 2 / (span + 1)` (pandas' `ewm(span, adjust=False)`).
pub fn ewma(values: &mut [f64], f: usize, span: usize) {
    if span <= 1 || f == 0 {
        return;
    }
    let a = 2.0 / (span as f64 + 1.0);
    let n = values.len() / f;
    for j in 0..f {
        for r in 1..n {
            values[r * f + j] = a * values[r * f + j] + (1.0 - a) * values[(r - 1) * f + j];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// Features: `signal` (autocorrelated, drives y), `constant`, `white`
    /// (noise), `zero_mean` (mean 0, so an infinite noise ratio), `spiky`.
    fn table(n: usize, seed: u64) -> (Vec<String>, Vec<f64>, Vec<Option<f32>>) {
        let mut g = recur_core::rng::Rng::new(seed);
        let mut values = Vec::new();
        let mut s = 10.0f64;
        let mut labels = Vec::new();
        for i in 0..n {
            s = 10.0 + 0.9 * (s - 10.0) + g.normal() as f64;
            let w = 5.0 + g.normal() as f64;
            let z = if i % 2 == 0 { 1.0 } else { -1.0 } * (1.0 + 0.1 * g.unit() as f64);
            let spike = 5.0 + 0.01 * g.normal() as f64 + if i % 100 < 2 { 100.0 } else { 0.0 };
            values.extend([s, 3.0, w, z, spike]);
            labels.push(Some((s > 10.0) as u8 as f32));
        }
        (
            names(&["signal", "constant", "white", "zero_mean", "spiky"]),
            values,
            labels,
        )
    }

    #[test]
    fn a_signal_in_tiny_units_is_selected_as_in_ordinary_ones() {
        // The same feature in units a trillion times smaller: no filter may
        // take its scale for a property of the data.
        let (n, values, y) = table(2000, 1);
        let tiny: Vec<f64> = values
            .chunks(5)
            .flat_map(|r| [r[0] * 1e-12, r[1]])
            .collect();
        let cfg = SelectionConfig::default();
        let s = select(&names(&["signal", "constant"]), &tiny, &y, 0..1400, &cfg).unwrap();
        assert_eq!(s.kept, vec!["signal".to_string()], "{:?}", s.table);
        let plain = select(&n, &values, &y, 0..1400, &cfg).unwrap();
        let (a, b) = (&s.table[0], &plain.table[0]);
        assert!(
            (a.autocorr - b.autocorr).abs() < 1e-9 && (a.importance - b.importance).abs() < 1e-9
        );
        assert!((a.noise_ratio - b.noise_ratio).abs() < 1e-9 * b.noise_ratio);
        assert!(s.table[1]
            .dropped_by
            .as_deref()
            .unwrap()
            .starts_with("constant"));
    }

    #[test]
    fn each_filter_drops_what_it_should_and_says_why() {
        let (n, values, y) = table(2000, 1);
        let s = select(&n, &values, &y, 0..1400, &SelectionConfig::default()).unwrap();
        assert_eq!(s.kept, vec!["signal".to_string()]);
        let why = |f: &str| {
            s.table
                .iter()
                .find(|t| t.feature == f)
                .unwrap()
                .dropped_by
                .clone()
                .unwrap()
        };
        assert!(why("constant").starts_with("constant"));
        assert!(why("white").starts_with("autocorrelation"));
        assert!(
            why("zero_mean").starts_with("noise ratio"),
            "{}",
            why("zero_mean")
        );
        assert!(why("spiky").starts_with("outliers"), "{}", why("spiky"));
        let sig = &s.table[0];
        assert!(sig.autocorr > 0.8 && sig.importance > 0.3, "{sig:?}");
        // max_features cuts by importance.
        let cfg = SelectionConfig {
            max_noise_ratio: f64::INFINITY,
            min_abs_autocorr: 0.0,
            max_outlier_share: 1.0,
            max_features: 1,
            ..Default::default()
        };
        let s = select(&n, &values, &y, 0..1400, &cfg).unwrap();
        assert_eq!(s.kept, vec!["signal".to_string()]);
        assert!(s.table[2]
            .dropped_by
            .as_ref()
            .unwrap()
            .contains("max_features 1"));
    }

    #[test]
    fn an_infinite_noise_ratio_limit_keeps_a_feature_of_mean_exactly_zero() {
        let cycle = [0.0, 1.0, -1.0];
        let values: Vec<f64> = (0..300).map(|i| cycle[i % 3]).collect();
        let y: Vec<Option<f32>> = (0..300).map(|i| Some((i % 3 == 1) as u8 as f32)).collect();
        let cfg = SelectionConfig {
            max_noise_ratio: f64::INFINITY,
            ..Default::default()
        };
        let s = select(&names(&["exact_zero"]), &values, &y, 0..300, &cfg).unwrap();
        assert!(s.table[0].noise_ratio.is_infinite(), "{:?}", s.table[0]);
        assert_eq!(s.kept, vec!["exact_zero".to_string()], "{:?}", s.table);
        // A finite limit still drops it.
        let s = select(
            &names(&["exact_zero"]),
            &values,
            &y,
            0..300,
            &Default::default(),
        );
        let why = match s {
            Ok(s) => s.table[0].dropped_by.clone().unwrap_or_default(),
            Err(e) => e.to_string(),
        };
        assert!(why.contains("noise ratio"), "{why}");
    }

    #[test]
    fn only_training_rows_are_read() {
        let (n, mut values, mut y) = table(2000, 2);
        let base = select(&n, &values, &y, 0..1400, &SelectionConfig::default()).unwrap();
        // Anything at all in the rows after training changes nothing.
        for v in values[1400 * 5..].iter_mut() {
            *v = f64::NAN;
        }
        for l in y[1400..].iter_mut() {
            *l = Some(1.0);
        }
        let after = select(&n, &values, &y, 0..1400, &SelectionConfig::default()).unwrap();
        assert_eq!(base, after);
        // But the training rows do matter.
        values[10 * 5] += 50.0;
        let moved = select(&n, &values, &y, 0..1400, &SelectionConfig::default()).unwrap();
        assert_ne!(base.table[0].mean, moved.table[0].mean);
    }

    #[test]
    fn dropping_everything_names_each_feature_and_its_filter() {
        let (n, values, y) = table(500, 3);
        let cfg = SelectionConfig {
            min_abs_autocorr: 0.999,
            ..Default::default()
        };
        let e = select(&n, &values, &y, 0..300, &cfg)
            .unwrap_err()
            .to_string();
        for f in [
            "signal: autocorrelation",
            "constant: constant",
            "white: autocorrelation",
        ] {
            assert!(e.contains(f), "{e}");
        }
    }

    #[test]
    fn the_ewma_is_causal_and_matches_the_recursion() {
        let mut v = vec![1.0, 10.0, 2.0, 20.0, 3.0, 30.0];
        ewma(&mut v, 2, 3);
        // a = 0.5: column 0: 1, 1.5, 2.25; column 1: 10, 15, 22.5.
        assert_eq!(v, vec![1.0, 10.0, 1.5, 15.0, 2.25, 22.5]);
        let mut a = vec![1.0, 2.0, 3.0, 4.0];
        let mut b = vec![1.0, 2.0, 3.0, 99.0];
        ewma(&mut a, 1, 5);
        ewma(&mut b, 1, 5);
        assert_eq!(
            a[..3],
            b[..3],
            "a later value changed an earlier smoothed one"
        );
    }
}

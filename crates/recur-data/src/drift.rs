//! Drift of live features against the training reference (SYSTEM.md Job A,
//! step 14): per feature, the population stability index over the training
//! deciles, the Kolmogorov-Smirnov statistic, the shift of the mean in
//! training standard deviations, and the shifts of lag-1 autocorrelation
//! and noise ratio. The reference is summarised at training time (deciles,
//! 201 quantiles for the KS distance, moments) and saved with the model, so
//! a check needs only the model directory and the new table.

use crate::select::{lag1_autocorr, mean, noise_ratio, std};
pub use recur_core::config::DriftThresholds;
use recur_core::stats::percentile;
use recur_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// Noise ratios above this (a mean near zero against the spread) are not
/// compared: their relative change says nothing about drift.
pub const MEANINGFUL_NOISE_RATIO: f64 = 5.0;

/// One feature of the training reference.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FeatureReference {
    pub feature: String,
    pub mean: f64,
    pub std: f64,
    pub autocorr: f64,
    pub noise_ratio: Option<f64>,
    /// Inner decile edges (9 values): the PSI bins.
    pub deciles: Vec<f64>,
    /// The share of training rows in each of the 10 bins.
    pub bin_shares: Vec<f64>,
    /// Whether a value equal to a repeated decile has a bin of its own
    /// (the empty `[e, e)` inside the run of equal edges); false in
    /// references written before it had (their shares were counted
    /// without, and are read as they were counted).
    #[serde(default)]
    pub point_bins: bool,
    /// 201 evenly spaced quantiles (0, 0.5%, ..., 100%): the KS reference.
    pub quantiles: Vec<f64>,
    pub rows: usize,
}

/// What a model directory keeps of its training rows.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Reference {
    pub features: Vec<FeatureReference>,
}

/// Quantile `q` in [0, 1] of sorted values (numpy's linear interpolation).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    percentile(sorted, q * 100.0)
}

/// The bin of `v` among the 10 bins cut at `deciles` (left-closed: `k`
/// edges at or below `v`, bin `k`). With `point_bins`, a value equal to
/// an edge that repeats (a point mass of a tenth of the rows or more)
/// takes the last bin inside the run of equal edges, `[e, e)`, which is
/// empty otherwise: a 0/1 flag that is 0 on 95% of training rows had
/// deciles all 0, and its 0s and 1s fell in one bin, so a flag set on 60%
/// of live rows scored a PSI of 0.
fn bin(deciles: &[f64], v: f64, point_bins: bool, near: Near) -> usize {
    let t = near.tol(v);
    let k = deciles.partition_point(|&e| e <= v + t);
    let at = |e: f64| (e - v).abs() <= t;
    if point_bins && k >= 2 && at(deciles[k - 1]) && at(deciles[k - 2]) {
        k - 1
    } else {
        k
    }
}

/// How close a value must be to a decile or quantile to count as equal to
/// it: a hundred-thousandth of the training standard deviation, or for a
/// column constant in training a millionth of the value.
///
/// PSI and KS compared values with the training deciles and quantiles by
/// exact equality, so a point mass (a value on a tenth of the rows, on an
/// edge) written back with ten digits, or saved as float32, moved bins
/// wholesale: the training rows saved as float32 scored a PSI of 0.35, and
/// a column constant at 0.1 in training scored a PSI of 18 and a KS of 1
/// against 0.1 as f32. A nudge that small is below what the model reads
/// (values scaled by the standard deviation, in f32). The tolerance is
/// relative to the spread, not to the value, so a column of large numbers
/// in a narrow range (IDs, timestamps above 2^24) keeps every distinction
/// the model sees.
#[derive(Clone, Copy)]
struct Near {
    std: f64,
}

impl Near {
    fn tol(self, v: f64) -> f64 {
        if self.std > 0.0 {
            1e-5 * self.std
        } else {
            1e-6 * v.abs()
        }
    }
}

/// Shares of `x` in the 10 decile bins.
fn shares(deciles: &[f64], x: &[f64], point_bins: bool, near: Near) -> Vec<f64> {
    let mut c = vec![0.0; deciles.len() + 1];
    for &v in x {
        c[bin(deciles, v, point_bins, near)] += 1.0;
    }
    c.iter().map(|n| n / x.len().max(1) as f64).collect()
}

impl FeatureReference {
    /// What `of` writes, as a file read back must hold it: 9 sorted
    /// deciles, 10 shares summing to 1, 201 sorted quantiles, every number
    /// finite (an empty `quantiles` indexed out of bounds; reversed deciles
    /// gave a PSI of 6.8 on the training rows themselves).
    fn check(&self) -> std::result::Result<(), String> {
        let sorted = |v: &[f64]| v.windows(2).all(|w| w[0] <= w[1]);
        let finite = |v: &[f64]| v.iter().all(|x| x.is_finite());
        if self.deciles.len() != 9 || !finite(&self.deciles) || !sorted(&self.deciles) {
            return Err(format!(
                "`deciles` must be 9 finite numbers in order, not {:?}",
                self.deciles
            ));
        }
        let total: f64 = self.bin_shares.iter().sum();
        if self.bin_shares.len() != 10
            || !finite(&self.bin_shares)
            || self.bin_shares.iter().any(|&s| s < 0.0)
            || (total - 1.0).abs() > 1e-6
        {
            return Err(format!(
                "`bin_shares` must be 10 shares, none negative, summing to 1, not {:?}",
                self.bin_shares
            ));
        }
        if self.quantiles.len() != 201 || !finite(&self.quantiles) || !sorted(&self.quantiles) {
            return Err(format!(
                "`quantiles` must be 201 finite numbers in order ({} given)",
                self.quantiles.len()
            ));
        }
        if !(self.mean.is_finite() && self.std.is_finite() && self.std >= 0.0) || self.rows == 0 {
            return Err(
                "`mean`, `std` (not negative) and `rows` (at least 1) are out of range".into(),
            );
        }
        Ok(())
    }

    /// The reference statistics of one feature's training values `x`.
    pub fn of(feature: &str, x: &[f64]) -> FeatureReference {
        let m = mean(x);
        let s = spread(m, std(x, m), x.len());
        let mut sorted = x.to_vec();
        sorted.sort_by(f64::total_cmp);
        let deciles: Vec<f64> = (1..10)
            .map(|i| quantile(&sorted, i as f64 / 10.0))
            .collect();
        FeatureReference {
            feature: feature.to_string(),
            mean: m,
            std: s,
            autocorr: lag1_autocorr(x),
            noise_ratio: noise_ratio(m, s),
            bin_shares: shares(&deciles, x, true, Near { std: s }),
            point_bins: true,
            deciles,
            quantiles: (0..=200)
                .map(|i| quantile(&sorted, i as f64 / 200.0))
                .collect(),
            rows: x.len(),
        }
    }
}

/// A column's standard deviation, or 0 where it is only the rounding of
/// a constant column's sums (0.1 written on every row has a std of 1e-17,
/// which made an unchanged column drift by any measure taken in it).
fn spread(mean: f64, std: f64, n: usize) -> f64 {
    if crate::scaler::is_constant(std * std, mean, n as f64) {
        0.0
    } else {
        std
    }
}

/// The file a model directory keeps its reference in.
pub const REFERENCE_FILE: &str = "reference.json";

impl Reference {
    /// The reference of a model directory; None when it has none (models
    /// trained before recur kept one).
    pub fn read(model_dir: &std::path::Path) -> Result<Option<Reference>> {
        let path = model_dir.join(REFERENCE_FILE);
        if !path.exists() {
            return Ok(None);
        }
        let r: Reference = recur_core::fsx::read_json(&path)?;
        for f in &r.features {
            f.check().map_err(|why| {
                recur_core::Error::data(
                    path.display().to_string(),
                    format!("feature {:?}: {why}; retrain to write it again", f.feature),
                )
            })?;
        }
        Ok(Some(r))
    }

    /// The reference of `rows` of a row-major `[n, F]` buffer.
    pub fn of(features: &[String], values: &[f64], rows: std::ops::Range<usize>) -> Reference {
        let f = features.len();
        Reference {
            features: features
                .iter()
                .enumerate()
                .map(|(j, name)| {
                    let x: Vec<f64> = rows.clone().map(|r| values[r * f + j]).collect();
                    FeatureReference::of(name, &x)
                })
                .collect(),
        }
    }
}

/// Population stability index `sum (a - e) ln(a / e)`, shares floored at 1e-4.
pub fn psi(expected: &[f64], actual: &[f64]) -> f64 {
    expected
        .iter()
        .zip(actual)
        .map(|(&e, &a)| {
            let (e, a) = (e.max(1e-4), a.max(1e-4));
            (a - e) * (a / e).ln()
        })
        .sum()
}

/// The reference's distribution function at `v`, from its quantiles
/// (linear between them).
fn ref_cdf(q: &[f64], v: f64) -> f64 {
    let n = q.len() - 1;
    if v < q[0] {
        return 0.0;
    }
    if v >= q[n] {
        return 1.0;
    }
    let i = q.partition_point(|&x| x <= v);
    let (x0, x1) = (q[i - 1], q[i]);
    let frac = if x1 > x0 { (v - x0) / (x1 - x0) } else { 1.0 };
    ((i - 1) as f64 + frac) / n as f64
}

/// Two-sample Kolmogorov-Smirnov distance between the reference (by its
/// quantiles) and the sorted sample `x`: the largest gap between the two
/// distribution functions over every sample value and reference quantile,
/// each read exactly at the point (the drift report itself counts values
/// within 1e-5 training standard deviations of a point as at it).
pub fn ks(quantiles: &[f64], sorted: &[f64]) -> f64 {
    ks_near(quantiles, sorted, None)
}

/// [`ks`] with values within `near`'s tolerance of a point counted at it.
fn ks_near(quantiles: &[f64], sorted: &[f64], near: Option<Near>) -> f64 {
    let n = sorted.len() as f64;
    let mut points: Vec<f64> = sorted.iter().chain(quantiles).copied().collect();
    points.sort_by(f64::total_cmp);
    points.dedup();
    points
        .iter()
        .map(|&p| {
            let p = p + near.map_or(0.0, |near| near.tol(p));
            let sample = sorted.partition_point(|&x| x <= p) as f64 / n;
            (ref_cdf(quantiles, p) - sample).abs()
        })
        .fold(0.0, f64::max)
}

/// One feature's drift figures and verdict.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FeatureDrift {
    pub feature: String,
    pub psi: f64,
    pub ks: f64,
    pub mean_shift: f64,
    pub autocorr_shift: f64,
    pub noise_ratio_shift: Option<f64>,
    pub drift: bool,
    /// The statistics over their thresholds.
    pub reasons: Vec<String>,
}

/// Compares the new values of each reference feature (row-major `[n, F]`,
/// in the reference's feature order) with the reference.
pub fn compare(
    reference: &Reference,
    values: &[f64],
    th: &DriftThresholds,
) -> Result<Vec<FeatureDrift>> {
    let f = reference.features.len();
    let n = values.len() / f.max(1);
    if n < 3 {
        return Err(Error::Msg(format!(
            "{n} rows are too few to check drift; give at least 3"
        )));
    }
    Ok(reference
        .features
        .iter()
        .enumerate()
        .map(|(j, r)| {
            let x: Vec<f64> = (0..n).map(|i| values[i * f + j]).collect();
            let m = mean(&x);
            let s = spread(m, std(&x, m), x.len());
            // The reference's spread read the same way (a file written
            // before kept the rounding of a constant column as its std).
            let r_std = spread(r.mean, r.std, r.rows);
            // A value within a hair of an edge counts as on it, as the
            // reference's shares were counted ([`Near`]).
            let near = Near { std: r_std };
            let mut sorted = x.clone();
            sorted.sort_by(f64::total_cmp);
            let p = psi(&r.bin_shares, &shares(&r.deciles, &x, r.point_bins, near));
            let k = ks_near(&r.quantiles, &sorted, Some(near));
            // In training's standard deviations; raw units for a column that
            // was constant in training (no spread to measure against).
            let ms = (m - r.mean).abs() / if r_std > 0.0 { r_std } else { 1.0 };
            let ac = (lag1_autocorr(&x) - r.autocorr).abs();
            // A noise ratio above 5 means a mean near zero against the
            // spread (z-scored data): its relative change is noise, not drift.
            let nr = match (noise_ratio(r.mean, r_std), noise_ratio(m, s)) {
                (Some(a), Some(b)) if a > 0.0 && a <= MEANINGFUL_NOISE_RATIO => {
                    Some((b - a).abs() / a)
                }
                _ => None,
            };
            let mut reasons = Vec::new();
            let mut over = |name: &str, v: f64, t: f64| {
                if v > t {
                    reasons.push(format!("{name} {} > {}", above(v, t), number(t)));
                }
            };
            over("PSI", p, th.psi);
            over("KS", k, th.ks);
            over("mean shift", ms, th.mean_shift);
            over("autocorrelation shift", ac, th.autocorr_shift);
            if let Some(v) = nr {
                over("noise ratio shift", v, th.noise_ratio_shift);
            }
            FeatureDrift {
                feature: r.feature.clone(),
                psi: p,
                ks: k,
                mean_shift: ms,
                autocorr_shift: ac,
                noise_ratio_shift: nr,
                drift: !reasons.is_empty(),
                reasons,
            }
        })
        .collect())
}

/// A threshold as typed where it is short, in scientific notation where
/// plain digits would run long (`--ks 1e-300` was written out as a
/// 300-digit decimal in every reason).
pub fn number(t: f64) -> String {
    if t != 0.0 && t.is_finite() && !(1e-4..1e6).contains(&t.abs()) {
        format!("{t:e}")
    } else {
        format!("{t}")
    }
}

/// `v` to `d` decimals, or in scientific notation from a million up (a
/// mean shift of 7.8e33 printed 34 digits and broke the table's columns).
pub fn figure(v: f64, d: usize) -> String {
    if v.is_finite() && v.abs() >= 1e6 {
        format!("{v:.3e}")
    } else {
        format!("{v:.d$}")
    }
}

/// `v` (over `t`) to three decimals, or as many more as it takes to show
/// it over `t`: `PSI 0.000 > 0.0001` read as a contradiction ([`figure`]:
/// from a million up in scientific notation).
fn above(v: f64, t: f64) -> String {
    let mut d = 3;
    while d < 12 && format!("{v:.d$}").parse::<f64>().is_ok_and(|x| x <= t) {
        d += 1;
    }
    figure(v, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tolerance of a millionth of the value (a column constant in
    /// training): for these whole-number edges, far apart, the same as
    /// comparing exactly.
    const TIGHT: Near = Near { std: 0.0 };

    #[test]
    fn a_reason_shows_its_value_over_its_threshold() {
        assert_eq!(above(0.25, 0.1), "0.250");
        assert_eq!(above(0.00053, 0.0001), "0.001");
        assert_eq!(above(0.00012, 0.0001), "0.00012");
        assert_eq!(above(0.10004, 0.1), "0.10004");
        assert_eq!(above(7.78e33, 0.5), "7.780e33");
        assert_eq!(number(1e-300), "1e-300");
        assert_eq!(number(0.2), "0.2");
        assert_eq!(figure(12.34567, 3), "12.346");
    }

    /// A reference.json damaged by hand is refused with the feature and
    /// the field, never read into a panic or into figures.
    #[test]
    fn a_damaged_reference_is_refused_by_feature_and_field() {
        let d = tempfile::tempdir().unwrap();
        let x: Vec<f64> = (0..500).map(|i| ((i * 37) % 101) as f64).collect();
        let good = Reference::of(&["a".to_string()], &x, 0..500);
        let write = |r: &Reference| {
            std::fs::write(
                d.path().join(REFERENCE_FILE),
                serde_json::to_string(r).unwrap(),
            )
            .unwrap()
        };
        write(&good);
        assert!(Reference::read(d.path()).unwrap().is_some());
        type Damage = fn(&mut FeatureReference);
        let cases: [(&str, Damage); 4] = [
            ("quantiles", |f| f.quantiles.clear()),
            ("deciles", |f| f.deciles.reverse()),
            ("bin_shares", |f| {
                f.bin_shares.iter_mut().for_each(|s| *s = 0.0)
            }),
            ("std", |f| f.std = -1.0),
        ];
        for (field, damage) in cases {
            let mut r = good.clone();
            damage(&mut r.features[0]);
            write(&r);
            let e = Reference::read(d.path()).unwrap_err().to_string();
            assert!(
                e.contains("reference.json") && e.contains("\"a\"") && e.contains(field),
                "{field}: {e}"
            );
        }
    }

    #[test]
    fn psi_matches_a_hand_computation() {
        // (0.2 - 0.1) ln 2 + (0.1 - 0.2) ln 0.5 + 0 = 0.2 ln 2.
        let v = psi(&[0.1, 0.2, 0.7], &[0.2, 0.1, 0.7]);
        assert!((v - 0.2 * 2f64.ln()).abs() < 1e-12, "{v}");
        assert_eq!(psi(&[0.5, 0.5], &[0.5, 0.5]), 0.0);
    }

    /// A 0/1 flag at 0 on 95% of training rows (every decile 0) and set
    /// on 60% of live rows: its 0s have a bin of their own, so PSI sees
    /// the shift (it was 0: 0s and 1s shared the top bin). A reference
    /// written before keeps the bins its shares were counted in.
    #[test]
    fn a_point_mass_at_the_minimum_has_a_bin_of_its_own() {
        let train: Vec<f64> = (0..400).map(|i| (i % 20 == 0) as u8 as f64).collect();
        let live: Vec<f64> = (0..200).map(|i| (i % 5 < 3) as u8 as f64).collect();
        let r = Reference::of(&["flag".into()], &train, 0..400);
        assert_eq!(r.features[0].deciles, vec![0.0; 9]);
        let d = compare(&r, &live, &DriftThresholds::default()).unwrap();
        // Shares 0.95 / 0.05 against 0.4 / 0.6.
        let want = psi(&[0.95, 0.05], &[0.4, 0.6]);
        assert!((d[0].psi - want).abs() < 1e-12, "{} vs {want}", d[0].psi);
        assert!(d[0].psi > 1.0);
        // The mirror case (a mass at the maximum) was binned apart already
        // and is unchanged; so is every value off a repeated edge.
        let edges = [0.0, 0.0, 0.0, 1.0, 2.0, 3.0, 3.0, 4.0, 5.0];
        assert_eq!(bin(&edges, 0.0, true, TIGHT), 2);
        assert_eq!(bin(&edges, 0.0, false, TIGHT), 3);
        assert_eq!(bin(&edges, 3.0, true, TIGHT), 6);
        for v in [-1.0, 0.5, 1.0, 2.5, 3.5, 4.0, 9.0] {
            assert_eq!(
                bin(&edges, v, true, TIGHT),
                bin(&edges, v, false, TIGHT),
                "{v}"
            );
        }
        let mut old = r.clone();
        old.features[0].point_bins = false;
        old.features[0].bin_shares = shares(&[0.0; 9], &train, false, TIGHT);
        let json = serde_json::to_string(&old)
            .unwrap()
            .replace(",\"point_bins\":false", "");
        let old: Reference = serde_json::from_str(&json).unwrap();
        assert!(!old.features[0].point_bins);
        assert_eq!(
            compare(&old, &live, &DriftThresholds::default()).unwrap()[0].psi,
            0.0
        );
    }

    /// The training rows written back as float32, or with ten digits, or
    /// a constant column read back as f32: the model sees the same
    /// numbers, so nothing drifts. (A feature of point masses on its
    /// deciles, as the rainfall's wind speed, scored a PSI of 0.35; the
    /// constant column a PSI of 18 and a KS of 1.)
    #[test]
    fn values_the_model_reads_alike_do_not_drift() {
        let levels = [0.1, 0.3, 0.7, 1.9, 2.3];
        let train: Vec<f64> = (0..2000)
            .map(|i| levels[(i * 7 + i / 13) % 5] + if i % 3 == 0 { 0.0 } else { i as f64 * 1e-4 })
            .collect();
        let r = Reference::of(&["x".into()], &train, 0..2000);
        let f32_copy: Vec<f64> = train.iter().map(|&v| v as f32 as f64).collect();
        let ten_digits: Vec<f64> = train
            .iter()
            .map(|&v| format!("{v:.9e}").parse().unwrap())
            .collect();
        for (what, live) in [("float32", &f32_copy), ("ten digits", &ten_digits)] {
            let d = &compare(&r, live, &DriftThresholds::default()).unwrap()[0];
            assert!(!d.drift && d.psi < 1e-9 && d.ks < 0.01, "{what}: {d:?}");
        }
        // Large numbers in a narrow range (IDs, timestamps): every step of
        // one is a distinction the model sees, so a change of shape there
        // drifts (rounded to f32 as they are, every value was 2^31).
        let ids: Vec<f64> = (0..2000)
            .map(|i| 2f64.powi(31) + (i * 37 % 129) as f64)
            .collect();
        let r = Reference::of(&["id".into()], &ids, 0..2000);
        let spikes: Vec<f64> = (0..600)
            .map(|i| 2f64.powi(31) + [0.0, 64.0, 128.0][i % 3])
            .collect();
        let d = &compare(&r, &spikes, &DriftThresholds::default()).unwrap()[0];
        assert!(d.psi > 1.0 && d.ks > 0.2, "{d:?}");
        let d = &compare(&r, &ids, &DriftThresholds::default()).unwrap()[0];
        assert!(!d.drift && d.psi < 1e-9, "{d:?}");
        let constant = Reference::of(&["level".into()], &[0.1; 300], 0..300);
        let d = &compare(&constant, &[0.1f32 as f64; 50], &DriftThresholds::default()).unwrap()[0];
        assert!(!d.drift && d.psi < 1e-9 && d.ks == 0.0, "{d:?}");
    }

    #[test]
    fn ks_matches_a_hand_computation() {
        // Reference uniform on [0, 1] (quantiles exact); sample {0.1, 0.2, 0.9}:
        // steps at 1/3, 2/3, 1 against F(x) = x; largest gap 2/3 - 0.2 at 0.2+.
        let q: Vec<f64> = (0..=200).map(|i| i as f64 / 200.0).collect();
        let d = ks(&q, &[0.1, 0.2, 0.9]);
        assert!((d - (2.0 / 3.0 - 0.2)).abs() < 1e-12, "{d}");
        assert!(
            ks(
                &q,
                &(0..1000)
                    .map(|i| (i as f64 + 0.5) / 1000.0)
                    .collect::<Vec<_>>()
            ) < 0.001
        );
    }

    #[test]
    fn the_mean_autocorrelation_and_noise_shifts_are_measured_in_train_units() {
        let train: Vec<f64> = (0..400).map(|i| 10.0 + (i % 4) as f64).collect(); // mean 11.5
        let r = Reference::of(&["x".into()], &train, 0..400);
        let fr = &r.features[0];
        assert!((fr.mean - 11.5).abs() < 1e-12);
        assert!((fr.std - 1.25f64.sqrt()).abs() < 1e-12);
        assert_eq!(fr.deciles.len(), 9);
        assert!((fr.bin_shares.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        // The same values shifted by one std: mean shift exactly 1.
        let moved: Vec<f64> = train.iter().map(|v| v + 1.25f64.sqrt()).collect();
        let d = compare(&r, &moved, &DriftThresholds::default()).unwrap();
        assert!((d[0].mean_shift - 1.0).abs() < 1e-9, "{d:?}");
        assert!(d[0].autocorr_shift < 1e-9);
        assert!(d[0].drift && d[0].reasons.iter().any(|s| s.starts_with("mean shift")));
        // The same values again: no drift at all.
        let same = compare(&r, &train, &DriftThresholds::default()).unwrap();
        assert!(!same[0].drift, "{same:?}");
        assert!(same[0].psi.abs() < 1e-12 && same[0].mean_shift == 0.0);
    }

    #[test]
    fn autocorrelation_and_noise_ratio_shifts_match_a_hand_computation() {
        // Training: 1, 2, ..., 100 (lag-1 autocorrelation 1; mean 50.5;
        // population std sqrt((100^2 - 1) / 12) = 28.8661). New: 1, 3, 1, 3, ...
        // (autocorrelation -1; mean 2, std 1, noise ratio 0.5).
        let train: Vec<f64> = (1..=100).map(|v| v as f64).collect();
        let r = Reference::of(&["x".into()], &train, 0..100);
        let std = ((100.0f64 * 100.0 - 1.0) / 12.0).sqrt();
        assert!((r.features[0].noise_ratio.unwrap() - std / 50.5).abs() < 1e-12);
        let new: Vec<f64> = (0..40)
            .map(|i| if i % 2 == 0 { 1.0 } else { 3.0 })
            .collect();
        let d = &compare(&r, &new, &DriftThresholds::default()).unwrap()[0];
        assert!((d.autocorr_shift - 2.0).abs() < 1e-9, "{d:?}");
        let want = (0.5 - std / 50.5).abs() / (std / 50.5);
        assert!((d.noise_ratio_shift.unwrap() - want).abs() < 1e-12, "{d:?}");
        assert!((d.mean_shift - (50.5 - 2.0) / std).abs() < 1e-12);
    }
}

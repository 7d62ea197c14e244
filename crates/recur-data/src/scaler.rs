//! Standardisation fitted on training rows only and saved with the model:
//! `(x - mean) / std`, population std as scikit-learn's StandardScaler; a
//! constant feature gets std 1 so it maps to 0 instead of dividing by zero.

use serde::{Deserialize, Serialize};

/// Whether a variance `var` of `n` values around `mean` is no more than
/// the rounding of its own sums: a constant column, whatever its units.
/// scikit-learn's rule (`_is_constant_feature`), so that a feature of
/// values near 1e-13 is scaled as theirs is, not taken for a constant by
/// an absolute cut-off.
pub fn is_constant(var: f64, mean: f64, n: f64) -> bool {
    let eps = f64::EPSILON;
    var <= n * eps * var + (n * mean * eps).powi(2)
}

/// The mean and the population variance of each of the `f` columns of a
/// row-major `[rows, f]` buffer over `rows`, and their count (1 for none):
/// the sums [`Scaler::fit`] and the constant-feature rule take.
pub fn moments(
    values: &[f64],
    f: usize,
    rows: impl Iterator<Item = usize> + Clone,
) -> (Vec<f64>, Vec<f64>, f64) {
    let mut mean = vec![0.0; f];
    let mut count = 0usize;
    for r in rows.clone() {
        for (m, x) in mean.iter_mut().zip(&values[r * f..(r + 1) * f]) {
            *m += x;
        }
        count += 1;
    }
    let n = count.max(1) as f64;
    mean.iter_mut().for_each(|m| *m /= n);
    let mut var = vec![0.0; f];
    for r in rows {
        for ((v, x), m) in var.iter_mut().zip(&values[r * f..(r + 1) * f]).zip(&mean) {
            *v += (x - m) * (x - m);
        }
    }
    var.iter_mut().for_each(|v| *v /= n);
    (mean, var, n)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scaler {
    pub features: Vec<String>,
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
}

impl Scaler {
    /// Fits on the given rows of a row-major `[rows, features]` buffer.
    pub fn fit(
        features: Vec<String>,
        values: &[f64],
        rows: impl Iterator<Item = usize> + Clone,
    ) -> Scaler {
        let (mean, var, n) = moments(values, features.len(), rows);
        let std = var
            .iter()
            .zip(&mean)
            .map(|(&v, m)| if is_constant(v, *m, n) { 1.0 } else { v.sqrt() })
            .collect();
        Scaler {
            features,
            mean,
            std,
        }
    }

    /// The first feature whose spread float32 cannot hold as a normal
    /// number (values varying by 1e-40): a model's load check refuses
    /// such a std, so training refuses the feature first.
    pub fn subnormal_std(&self) -> Option<usize> {
        self.std.iter().position(|&s| !(s as f32).is_normal())
    }

    /// The first value of the row-major `values` that the models cannot read:
    /// NaN, or beyond float32 as given or once scaled. (Values smoothed
    /// from these lie between them, so they scale within range too.)
    pub fn beyond_f32(&self, values: &[f64]) -> Option<usize> {
        let f = self.mean.len().max(1);
        values.iter().enumerate().position(|(k, &v)| {
            let z = (v - self.mean[k % f]) / self.std[k % f];
            v.is_nan() || v.abs() > f32::MAX as f64 || !(z as f32).is_finite()
        })
    }

    /// Scales a row-major `[rows, features]` buffer into float32.
    pub fn transform(&self, values: &[f64]) -> Vec<f32> {
        let f = self.mean.len();
        values
            .chunks_exact(f)
            .flat_map(|row| {
                row.iter()
                    .zip(&self.mean)
                    .zip(&self.std)
                    .map(|((x, m), s)| ((x - m) / s) as f32)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_beyond_float32_raw_or_scaled_are_found() {
        let s = Scaler {
            features: vec!["a".into(), "b".into()],
            mean: vec![0.0, 0.0],
            std: vec![1.0, 1e-3],
        };
        assert_eq!(s.beyond_f32(&[1.0, 2.0, 3e38, 1.0]), None);
        assert_eq!(s.beyond_f32(&[1.0, 2.0, 1e39, 1.0]), Some(2));
        assert_eq!(s.beyond_f32(&[1.0, f64::NAN]), Some(1));
        // Within float32 as given, beyond it once divided by std 1e-3.
        assert_eq!(s.beyond_f32(&[1.0, 1.0, 1.0, 3e38]), Some(3));
    }

    #[test]
    fn fits_on_the_given_rows_only() {
        // Two features; rows 0..2 are train, row 2 an outlier outside train.
        let values = [1.0, 5.0, 3.0, 5.0, 100.0, 5.0];
        let s = Scaler::fit(vec!["a".into(), "b".into()], &values, 0..2);
        assert_eq!(s.mean, vec![2.0, 5.0]);
        assert_eq!(s.std, vec![1.0, 1.0]); // b is constant -> 1
        assert_eq!(s.transform(&values), vec![-1.0, 0.0, 1.0, 0.0, 98.0, 0.0]);
    }

    #[test]
    fn a_feature_of_tiny_values_is_scaled_and_a_constant_one_is_not() {
        // Values near 1e-13 (a quantity in other units) vary all the same;
        // a large constant differs from itself only by the sums' rounding.
        let (n, rows) = (1000usize, 0..1000);
        let mut values = Vec::new();
        for r in 0..n {
            values.extend([(r % 7) as f64 * 1e-13, 1e9 + 0.1, (r % 3) as f64]);
        }
        let s = Scaler::fit(vec!["tiny".into(), "big".into(), "c".into()], &values, rows);
        assert!((s.std[0] / 2e-13 - 1.0).abs() < 0.01, "{:?}", s.std);
        assert_eq!(s.std[1], 1.0);
        let z = s.transform(&values);
        assert!(
            z[..30].chunks(3).any(|r| r[0] > 1.0),
            "tiny is spread out once scaled"
        );
        assert!(is_constant(0.0, 0.0, 10.0) && is_constant(0.0, 5.0, 10.0));
        assert!(!is_constant(1e-26, 1e-13, 1000.0));
    }
}

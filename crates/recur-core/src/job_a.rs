//! The optional parts of a Job A config beyond the LSTM (SYSTEM.md Job A,
//! steps 2 and 9-12): temporal feature selection, gradient-boosted trees,
//! calibration, the decision threshold's cost matrix and the ensemble.
//! Each is off when its section is absent, so the seed's configs read as
//! before; every field of a present section has the document's default.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Temporal feature selection, fit on the training rows only.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SelectionConfig {
    /// Keep features whose lag-1 autocorrelation has `|ac| >=` this.
    pub min_abs_autocorr: f64,
    /// Keep features whose `std / |mean|` is below this.
    pub max_noise_ratio: f64,
    /// Keep features with fewer than this share of values beyond `outlier_z`.
    pub max_outlier_share: f64,
    pub outlier_z: f64,
    /// Minimum trend strength `|r|` on time; `null` (default) reports it only.
    pub min_trend: Option<f64>,
    /// Keep the most important this many.
    pub max_features: usize,
    /// Span of the causal EWMA applied to the kept features; 1 turns it off.
    pub ewma_span: usize,
}

impl Default for SelectionConfig {
    fn default() -> Self {
        SelectionConfig {
            min_abs_autocorr: 0.1,
            max_noise_ratio: 5.0,
            max_outlier_share: 0.01,
            outlier_z: 5.0,
            min_trend: None,
            max_features: 50,
            ewma_span: 5,
        }
    }
}

/// The largest lag `trees.lags` takes, in rows back (a larger one leaves
/// no row to train on in any table recur reads in memory).
pub const MAX_LAG: usize = 100_000;

/// Gradient-boosted trees on the current row's features (and lagged copies).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TreesConfig {
    /// Lagged copies of every feature, in rows back (e.g. `[1, 2]`).
    pub lags: Vec<usize>,
    pub iterations: usize,
    pub learning_rate: f64,
    pub max_depth: usize,
    /// Stop after this many rounds without a better validation log loss.
    pub early_stopping_rounds: usize,
    /// An XGBoost JSON model (`binary:logistic`) to use instead of training;
    /// relative to the config file.
    pub xgboost_model: Option<PathBuf>,
}

impl Default for TreesConfig {
    fn default() -> Self {
        TreesConfig {
            lags: Vec::new(),
            iterations: 500,
            learning_rate: 0.05,
            max_depth: 4,
            early_stopping_rounds: 25,
            xgboost_model: None,
        }
    }
}

/// How probabilities are calibrated on validation.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CalibrationKind {
    None,
    Platt,
    #[default]
    Isotonic,
}

/// The value of each outcome of a decision at the threshold.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CostMatrix {
    pub tp: f64,
    pub fp: f64,
    pub tn: f64,
    #[serde(rename = "fn")]
    pub fn_: f64,
}

impl Default for CostMatrix {
    fn default() -> Self {
        CostMatrix {
            tp: 0.005,
            fp: -0.003,
            tn: 0.0,
            fn_: -0.001,
        }
    }
}

/// `fixed` weights from the config, or `dynamic` ones from validation log loss.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum WeightMode {
    #[default]
    Fixed,
    Dynamic,
}

/// The blend of the trees' and the LSTM's probabilities.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EnsembleConfig {
    pub weights: WeightMode,
    pub trees: f64,
    pub lstm: f64,
    /// Dynamic weights are the validation performance shares, the trees'
    /// clipped so that both lie in `[min_weight, max_weight]`.
    pub min_weight: f64,
    pub max_weight: f64,
}

impl Default for EnsembleConfig {
    fn default() -> Self {
        EnsembleConfig {
            weights: WeightMode::Fixed,
            trees: 0.7,
            lstm: 0.3,
            min_weight: 0.1,
            max_weight: 0.9,
        }
    }
}

/// Thresholds of `recur drift`: a statistic above its threshold is drift.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DriftThresholds {
    /// Population stability index over the training deciles.
    pub psi: f64,
    /// Kolmogorov-Smirnov distance to the training distribution.
    pub ks: f64,
    /// |new mean - train mean| / train std.
    pub mean_shift: f64,
    /// |new lag-1 autocorrelation - train's|.
    pub autocorr_shift: f64,
    /// |new noise ratio - train's| / train's.
    pub noise_ratio_shift: f64,
}

impl Default for DriftThresholds {
    fn default() -> Self {
        DriftThresholds {
            psi: 0.2,
            ks: 0.1,
            mean_shift: 0.5,
            autocorr_shift: 0.2,
            noise_ratio_shift: 0.5,
        }
    }
}

/// The search of `recur tune`: ranges (searched on a log scale for the
/// sequence length, hidden size and learning rate) and the pruner.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TuneConfig {
    pub sequence_length: [usize; 2],
    pub hidden_size: [usize; 2],
    pub learning_rate: [f64; 2],
    pub dropout: [f64; 2],
    /// Trials sampled at random before TPE takes over (Optuna's default 10).
    pub startup_trials: usize,
    /// Completed trials before the median rule prunes anything.
    pub prune_after_trials: usize,
    /// Epochs every trial runs before it can be pruned.
    pub warmup_epochs: usize,
}

impl TuneConfig {
    /// Every range low <= high and every value one `recur train` accepts,
    /// so that every sampled trial is a valid config.
    pub fn validate(&self, origin: &str) -> crate::Result<()> {
        let bad = |key: &str, msg: String| {
            Err(crate::Error::config(format!("{origin}: tune.{key}"), msg))
        };
        let [a, b] = self.sequence_length;
        if a == 0 || a > b {
            return bad(
                "sequence_length",
                format!("[{a}, {b}]: need 1 <= low <= high"),
            );
        }
        let [a, b] = self.hidden_size;
        if a == 0 || a > b || b > 4096 {
            return bad(
                "hidden_size",
                format!("[{a}, {b}]: need 1 <= low <= high <= 4096"),
            );
        }
        let [a, b] = self.learning_rate;
        if !(a > 0.0 && a <= b && b.is_finite()) {
            return bad(
                "learning_rate",
                format!("[{a}, {b}]: need 0 < low <= high (sampled on a log scale)"),
            );
        }
        let [a, b] = self.dropout;
        if !(0.0..1.0).contains(&a) || !(0.0..1.0).contains(&b) || a > b {
            return bad(
                "dropout",
                format!("[{a}, {b}]: need 0 <= low <= high < 1, as model.dropout"),
            );
        }
        Ok(())
    }
}

impl Default for TuneConfig {
    fn default() -> Self {
        TuneConfig {
            sequence_length: [8, 64],
            hidden_size: [16, 128],
            learning_rate: [1e-4, 1e-2],
            dropout: [0.0, 0.5],
            startup_trials: 10,
            prune_after_trials: 5,
            warmup_epochs: 3,
        }
    }
}

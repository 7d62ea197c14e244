//! The training config, read from YAML. Every field has a default, so a
//! config names only what differs; unknown keys are refused so a typo is an
//! error rather than a silently ignored setting. The names are the seed's
//! (`model.sequence_length`, `training.early_stopping_patience`, ...), so its
//! `configs/lstm_optimized.yaml` reads as it is.

pub use crate::job_a::{
    CalibrationKind, CostMatrix, DriftThresholds, EnsembleConfig, SelectionConfig, TreesConfig,
    TuneConfig, WeightMode,
};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub data: DataConfig,
    pub model: ModelConfig,
    pub training: TrainingConfig,
    /// Temporal feature selection (off when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selection: Option<SelectionConfig>,
    /// Gradient-boosted trees beside the LSTM (off when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trees: Option<TreesConfig>,
    /// The calibration reported and used for the threshold.
    pub calibration: CalibrationKind,
    /// The value of each decision outcome, for the threshold.
    pub cost: CostMatrix,
    /// Blend of trees and LSTM (needs `trees`; off when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ensemble: Option<EnsembleConfig>,
    /// Thresholds of `recur drift`.
    pub drift: DriftThresholds,
    /// The search of `recur tune` (defaults when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tune: Option<TuneConfig>,
}

/// How the input table is laid out.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// One row per time step; windows slide over the rows.
    #[default]
    Rows,
    /// One whole sequence per row with its label (UCR `.ts`, or CSV label + values).
    Sequences,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// CSV, Parquet or UCR `.ts` file; relative paths are relative to the config file.
    pub path: Option<PathBuf>,
    /// `csv`, `parquet` or `ts`; by default taken from the file extension.
    pub format: Option<String>,
    pub layout: Layout,
    /// Optional column carried to predictions as the time of each row.
    pub time_column: Option<String>,
    /// Feature columns; by default every numeric column except the target,
    /// the time column and unnamed index columns.
    pub features: Option<Vec<String>>,
    pub target: TargetConfig,
    pub split: SplitConfig,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            path: None,
            format: None,
            layout: Layout::Rows,
            time_column: None,
            features: None,
            target: TargetConfig::default(),
            split: SplitConfig::default(),
        }
    }
}

/// The binary target: a 0/1 column (optionally shifted by `horizon`), or a
/// label derived from a price column's future return.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TargetConfig {
    /// Binary (0/1) label column. For the sequences layout, the class column.
    pub column: Option<String>,
    /// Predict the label `horizon` rows ahead (0 = same row).
    pub horizon: usize,
    /// Derive the label from this price column: 1 when
    /// `close[t+h]/close[t] - 1 > tau`, `tau = k * sigma * sqrt(h)`.
    pub price_column: Option<String>,
    pub k: f64,
    /// Rows in the rolling volatility of log returns.
    pub vol_window: usize,
    pub tau_min: f64,
    pub tau_max: f64,
    /// Give no label to rows whose return lies in the neutral zone `|r| <= tau`.
    pub drop_neutral: bool,
    /// For class labels that are not 0/1 (UCR files): the label taken as positive.
    pub positive_label: Option<String>,
}

/// The longest `selection.ewma_span` a config may give.
pub const MAX_EWMA_SPAN: usize = 10_000;

impl Default for TargetConfig {
    fn default() -> Self {
        TargetConfig {
            column: None,
            horizon: 0,
            price_column: None,
            k: 0.5,
            vol_window: 20,
            tau_min: 0.001,
            tau_max: 0.10,
            drop_neutral: false,
            positive_label: None,
        }
    }
}

/// Split in time by row order (never shuffled for the rows layout).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SplitConfig {
    pub train: f64,
    pub val: f64,
    pub test: f64,
    /// Rows left out between parts; default `sequence_length - 1`.
    pub gap: Option<usize>,
    /// Shuffle whole sequences before splitting (sequences layout only).
    /// Unset, the sequences layout shuffles (its rows have no order, and
    /// files sorted by class, as many UCR ones are, left a part of one
    /// class); the rows layout never does. See [`SplitConfig::shuffles`].
    pub shuffle: Option<bool>,
}

impl Default for SplitConfig {
    fn default() -> Self {
        SplitConfig {
            train: 0.70,
            val: 0.15,
            test: 0.15,
            gap: None,
            shuffle: None,
        }
    }
}

impl SplitConfig {
    /// Whether whole series are shuffled before the split: as set, else
    /// for the sequences layout only.
    pub fn shuffles(&self, layout: Layout) -> bool {
        self.shuffle.unwrap_or(layout == Layout::Sequences)
    }
}

/// The Job A classifiers recur trains, listed once: the config's
/// `model.type` names one (`lstm` in YAML); a kind that is not here is
/// refused when the config is read, with the kinds there are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClassifierKind {
    Lstm,
    /// LSTM-FCN (Karim et al. 2017): an LSTM beside three convolution
    /// blocks; for whole series (the sequences layout) above all.
    LstmFcn,
}

impl std::fmt::Display for ClassifierKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ClassifierKind::Lstm => "lstm",
            ClassifierKind::LstmFcn => "lstm-fcn",
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// Model kind: `lstm` or `lstm-fcn`.
    #[serde(rename = "type")]
    pub kind: ClassifierKind,
    pub sequence_length: usize,
    pub hidden_size: usize,
    pub num_layers: usize,
    /// After the last LSTM layer (LSTM-FCN: after its LSTM branch; 0.8 in
    /// the paper).
    pub dropout: f64,
    /// LSTM-FCN: the paper's dimension shuffle (its LSTM reads the F
    /// channels as steps of T values each).
    pub shuffle: bool,
    /// LSTM-FCN: filters of the three convolution blocks.
    pub filters: [usize; 3],
    /// LSTM-FCN: kernel sizes of the three convolution blocks.
    pub kernels: [usize; 3],
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            kind: ClassifierKind::Lstm,
            sequence_length: 32,
            hidden_size: 64,
            num_layers: 1,
            dropout: 0.3,
            shuffle: true,
            filters: [128, 256, 128],
            kernels: [8, 5, 3],
        }
    }
}

/// `auto` (neg/pos counted on train), `none` (1.0) or a number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PosWeight {
    Number(f64),
    Named(String),
}

impl Default for PosWeight {
    fn default() -> Self {
        PosWeight::Named("auto".into())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TrainingConfig {
    pub learning_rate: f64,
    pub weight_decay: f64,
    pub batch_size: usize,
    pub epochs: usize,
    pub early_stopping_patience: usize,
    /// Gradient-norm clipping; 0 turns it off.
    pub grad_clip: f64,
    pub pos_weight: PosWeight,
    /// With more than two classes: `auto` weighs each class's loss by its
    /// inverse frequency on the training labels (`n / (K n_c)`, as
    /// scikit-learn's `balanced`), `none` weighs all alike. Two classes
    /// use `pos_weight`.
    pub class_weight: String,
    pub seed: u64,
    /// `f32` (the default) or `bf16`: the products of training (and of its
    /// validation passes) with bf16 operands and f32 sums, on the CPU's
    /// bf16 instructions where it has them. The weights stay f32.
    pub precision: String,
}

impl Default for TrainingConfig {
    fn default() -> Self {
        TrainingConfig {
            learning_rate: 0.0005,
            weight_decay: 0.0,
            batch_size: 512,
            epochs: 30,
            early_stopping_patience: 5,
            grad_clip: 1.0,
            pos_weight: PosWeight::default(),
            class_weight: "auto".into(),
            seed: 42,
            precision: "f32".into(),
        }
    }
}

impl crate::config_file::ConfigPaths for Config {
    fn paths_mut(&mut self) -> Vec<&mut PathBuf> {
        let xgb = self.trees.as_mut().and_then(|t| t.xgboost_model.as_mut());
        self.data.path.as_mut().into_iter().chain(xgb).collect()
    }
}

impl Config {
    /// Parses YAML text; `origin` names the source in errors.
    pub fn from_yaml(text: &str, origin: &str) -> Result<Config> {
        let cfg: Config = crate::config_file::parse(text, origin)?;
        cfg.validate(origin)?;
        Ok(cfg)
    }

    /// A model directory's `config.yaml` as scoring reads it: held to
    /// [`Config::validate_model`] only, the keys its layout does not read
    /// dropped (training ignored them before they were refused). A model
    /// trained before a rule about training settings was added (a
    /// patience of 0, a trees learning rate of 1.5, a `positive_label` in
    /// a rows config) still scores; retraining from the file checks it
    /// whole.
    pub fn from_saved_yaml(text: &str, origin: &str) -> Result<Config> {
        let mut cfg: Config = crate::config_file::parse(text, origin)?;
        cfg.drop_keys_of_other_layout();
        cfg.validate_model(origin)?;
        Ok(cfg)
    }

    /// Clears the keys the layout does not read (the ones
    /// [`Config::validate_training`] refuses as applying to the other).
    fn drop_keys_of_other_layout(&mut self) {
        let d = &mut self.data;
        match d.layout {
            Layout::Rows => d.target.positive_label = None,
            Layout::Sequences => {
                d.time_column = None;
                d.split.gap = None;
                d.target.horizon = 0;
                d.target.price_column = None;
            }
        }
    }

    /// Reads a YAML file; a relative `data.path` or
    /// `trees.xgboost_model` becomes relative to the file. Settings the
    /// chosen model or target does not read are refused
    /// ([`Config::refuse_unread`]).
    pub fn from_file(path: &Path) -> Result<Config> {
        let cfg = Config::read_saved(path)?;
        cfg.refuse_unread(&path.display().to_string())?;
        Ok(cfg)
    }

    /// [`Config::from_file`] without [`Config::refuse_unread`]: a config
    /// as a model directory saved it, which may hold settings its model
    /// does not read (written before they were refused).
    pub fn read_saved(path: &Path) -> Result<Config> {
        let (cfg, _) = crate::config_file::read::<Config>(path)?;
        cfg.validate(&path.display().to_string())?;
        Ok(cfg)
    }

    /// Refuses settings of another model kind or target that were given:
    /// they trained the same model as without them, and `config.yaml`
    /// recorded them as if they had counted. For a config about to train;
    /// a model directory's saved config is not held to it (models trained
    /// before it still load).
    pub fn refuse_unread(&self, origin: &str) -> Result<()> {
        let bad = |key: &str, msg: String| Err(Error::config(format!("{origin}: {key}"), msg));
        let m = &self.model;
        let tg = &self.data.target;
        let d = ModelConfig::default();
        if m.kind != ClassifierKind::LstmFcn
            && (m.shuffle != d.shuffle || m.filters != d.filters || m.kernels != d.kernels)
        {
            // Trained the same model as without them, and config.yaml
            // recorded them as if they had counted.
            return bad(
                "model.shuffle / filters / kernels",
                format!(
                    "are LSTM-FCN's settings; model.type {} does not read them: remove them",
                    m.kind
                ),
            );
        }
        let dt = TargetConfig::default();
        if tg.price_column.is_none()
            && (tg.k != dt.k
                || tg.vol_window != dt.vol_window
                || tg.tau_min != dt.tau_min
                || tg.tau_max != dt.tau_max
                || tg.drop_neutral != dt.drop_neutral)
        {
            // Ignored without a word, and recorded in config.yaml as if
            // they had shaped the labels.
            return bad(
                "data.target.k / vol_window / tau_min / tau_max / drop_neutral",
                "shape a label derived from a price (price_column); this target does not read \
                 them: remove them"
                    .into(),
            );
        }
        Ok(())
    }

    /// The config as YAML, every key written out (what a model directory
    /// saves), `data.split.shuffle` as what training did (never `null`,
    /// which recur before 2026-12-06 could not read). An unset
    /// `data.split.gap` stays `null`: the default follows the sequence
    /// length (a refit at another length keeps it so); the gap the split
    /// kept is in data.json's `time_split`.
    pub fn to_yaml(&self) -> String {
        let mut c = self.clone();
        c.data.split.shuffle = Some(c.data.split.shuffles(c.data.layout));
        c.to_yaml_as_given()
    }

    /// The config as YAML exactly as held, an unset `data.split.shuffle`
    /// written `null`: what a search's fingerprint hashes, so a `recur
    /// tune` begun before [`Config::to_yaml`] resolved it still resumes.
    pub fn to_yaml_as_given(&self) -> String {
        serde_yaml_ng::to_string(self).expect("config serialises")
    }

    /// `--data` and `--target` over the file's `data.path` and
    /// `data.target.column` (a target column replaces a price rule), then
    /// the checks again; `origin` names the config file in errors.
    pub fn override_data(
        &mut self,
        path: Option<PathBuf>,
        target: Option<String>,
        origin: &str,
    ) -> Result<()> {
        if let Some(d) = path {
            self.data.path = Some(d);
        }
        if let Some(t) = target {
            // The price rule goes whole, its settings with it.
            let d = TargetConfig::default();
            let tg = &mut self.data.target;
            tg.column = Some(t);
            tg.price_column = None;
            (tg.k, tg.vol_window, tg.tau_min, tg.tau_max, tg.drop_neutral) =
                (d.k, d.vol_window, d.tau_min, d.tau_max, d.drop_neutral);
        }
        self.validate(origin)
    }

    /// Checks ranges that serde cannot; names the key at fault: what the
    /// model reads ([`Config::validate_model`]) and what training does
    /// ([`Config::validate_training`]).
    pub fn validate(&self, origin: &str) -> Result<()> {
        self.validate_model(origin)?;
        self.validate_training(origin)
    }

    /// The checks a model directory's saved config is held to: what
    /// scoring reads (the architecture, the label rule, the features, the
    /// smoothing, the lags, the costs and the drift thresholds), bounded
    /// so that a crafted file cannot make scoring allocate or index past a
    /// table. Settings of training alone are left to
    /// [`Config::validate_training`], so a model trained before a rule
    /// about them was added still scores.
    pub fn validate_model(&self, origin: &str) -> Result<()> {
        let bad = |key: &str, msg: String| Err(Error::config(format!("{origin}: {key}"), msg));
        let m = &self.model;
        if self
            .data
            .path
            .as_ref()
            .is_some_and(|p| p.as_os_str().is_empty())
        {
            return bad(
                "data.path",
                "is empty: give the CSV or Parquet file (relative to the config's folder)".into(),
            );
        }
        // The config is saved as YAML, which holds text only: a path of
        // other bytes panicked when the model directory was written.
        let xgb = self.trees.as_ref().and_then(|t| t.xgboost_model.as_ref());
        for (key, p) in [
            ("data.path", self.data.path.as_ref()),
            ("trees.xgboost_model", xgb),
        ] {
            if let Some(p) = p.filter(|p| p.to_str().is_none()) {
                return bad(key, crate::fsx::not_utf8(p));
            }
        }
        if m.sequence_length == 0 {
            return bad("model.sequence_length", "must be at least 1".into());
        }
        if m.hidden_size == 0 || m.num_layers == 0 {
            return bad(
                "model.hidden_size / num_layers",
                "must be at least 1".into(),
            );
        }
        if m.num_layers > crate::lvm_config::MAX_LAYERS {
            // Passed the size check (parameters only), then overflowed the
            // stack after 20 s and 2.7 GB at 30,000 layers.
            return bad(
                "model.num_layers",
                format!(
                    "{} is more than the {} recur builds; 1 to 3 are usual",
                    m.num_layers,
                    crate::lvm_config::MAX_LAYERS
                ),
            );
        }
        if m.kind == ClassifierKind::LstmFcn {
            if m.num_layers != 1 {
                return bad(
                    "model.num_layers",
                    format!("{}: LSTM-FCN has one LSTM layer", m.num_layers),
                );
            }
            if m.filters.contains(&0)
                || m.kernels.contains(&0)
                || m.filters.iter().any(|&f| f > 4096)
                || m.kernels.iter().any(|&k| k > 256)
            {
                return bad(
                    "model.filters / kernels",
                    format!(
                        "{:?} / {:?}: filters 1..=4096 and kernels 1..=256",
                        m.filters, m.kernels
                    ),
                );
            }
        }
        // The models compute in float32: 1e39 is infinite there, and was
        // reported as "the validation loss was never finite".
        let tg = &self.data.target;
        if tg.column.is_some() && tg.price_column.is_some() {
            return bad(
                "data.target",
                "give `column` or `price_column`, not both".into(),
            );
        }
        if tg.price_column.is_some() && tg.horizon == 0 {
            return bad(
                "data.target.horizon",
                "a price target needs a horizon of at least 1".into(),
            );
        }
        if tg.price_column.is_some() {
            if !(tg.k >= 0.0 && tg.k.is_finite()) {
                return bad(
                    "data.target.k",
                    format!("{} must be a number of at least 0", tg.k),
                );
            }
            if !(0.0 <= tg.tau_min && tg.tau_min <= tg.tau_max && tg.tau_max.is_finite()) {
                return bad(
                    "data.target.tau_min / tau_max",
                    format!(
                        "{} and {}: need 0 <= tau_min <= tau_max, both finite",
                        tg.tau_min, tg.tau_max
                    ),
                );
            }
            if tg.vol_window < 2 {
                return bad(
                    "data.target.vol_window",
                    format!(
                        "{}: a standard deviation of returns needs at least 2 rows",
                        tg.vol_window
                    ),
                );
            }
        }
        if let Some(fs) = &self.data.features {
            if fs.is_empty() {
                return bad(
                    "data.features",
                    "is an empty list: name the feature columns, or leave the key out for every \
                     numeric column but the target and time"
                        .into(),
                );
            }
            for (i, f) in fs.iter().enumerate() {
                if fs[..i].contains(f) {
                    return bad("data.features", format!("`{f}` is listed twice"));
                }
            }
        }
        let c = &self.cost;
        for (key, v) in [("tp", c.tp), ("fp", c.fp), ("tn", c.tn), ("fn", c.fn_)] {
            // 1e308 overflowed the expected value to infinity (`null` in
            // report.json).
            if !(v.is_finite() && v.abs() <= 1e100) {
                return bad(
                    &format!("cost.{key}"),
                    format!("{v} must be a finite number of at most 1e100 either way"),
                );
            }
        }
        let dr = &self.drift;
        for (key, v) in [
            ("psi", dr.psi),
            ("ks", dr.ks),
            ("mean_shift", dr.mean_shift),
            ("autocorr_shift", dr.autocorr_shift),
            ("noise_ratio_shift", dr.noise_ratio_shift),
        ] {
            // As `recur drift --psi` and the others take them.
            if !(v.is_finite() && v > 0.0) {
                return bad(
                    &format!("drift.{key}"),
                    format!("{v}: a threshold is a finite number above 0"),
                );
            }
        }
        if let Some(sel) = &self.selection {
            if sel.max_features == 0 || sel.ewma_span == 0 {
                return bad(
                    "selection.max_features / ewma_span",
                    "must be at least 1".into(),
                );
            }
            if sel.ewma_span > MAX_EWMA_SPAN {
                // 1e6 made a model no request could score (min_rows 2.3
                // million); u64::MAX rounded the factor to 0, every
                // feature constant.
                return bad(
                    "selection.ewma_span",
                    format!(
                        "{} rows: a smoothing span is a few rows to a few hundred; at most \
                         {MAX_EWMA_SPAN}",
                        sel.ewma_span
                    ),
                );
            }
        }
        if let Some(tr) = &self.trees {
            if tr.lags.contains(&0) {
                return bad(
                    "trees.lags",
                    "a lag of 0 is the current row, which the trees read anyway: use 1 or more"
                        .into(),
                );
            }
            if let Some(l) = tr
                .lags
                .iter()
                .enumerate()
                .find_map(|(i, l)| tr.lags[..i].contains(l).then_some(l))
            {
                // A model trained so could not be loaded (its inputs would
                // repeat), yet replaced the folder it was written to.
                return bad(
                    "trees.lags",
                    format!("holds lag {l} twice: list each lag once"),
                );
            }
            if let Some(l) = tr.lags.iter().find(|&&l| l > crate::job_a::MAX_LAG) {
                return bad(
                    "trees.lags",
                    format!(
                        "holds {l}; lags are rows back, from 1 to {}",
                        crate::job_a::MAX_LAG
                    ),
                );
            }
            if tr
                .xgboost_model
                .as_ref()
                .is_some_and(|p| p.as_os_str().is_empty())
            {
                return bad(
                    "trees.xgboost_model",
                    "is empty: give an XGBoost JSON model file (relative to the config's folder), \
                     or leave the key out to train the trees"
                        .into(),
                );
            }
        }
        if let Some(e) = &self.ensemble {
            if self.trees.is_none() {
                return bad(
                    "ensemble",
                    "an ensemble blends the trees with the LSTM: add a `trees:` section".into(),
                );
            }
            // Finite, and their sum too: a NaN weight sorted nowhere and
            // indexed past a table, and 1e308 + 1e308 made both 0.
            if !(e.trees >= 0.0 && e.lstm >= 0.0 && (e.trees + e.lstm).is_finite())
                || e.trees + e.lstm <= 0.0
            {
                return bad(
                    "ensemble.trees / lstm",
                    format!(
                        "weights {} and {} must be finite, non-negative and not both 0",
                        e.trees, e.lstm
                    ),
                );
            }
        }
        if (self.selection.is_some() || self.trees.is_some()) && self.data.layout != Layout::Rows {
            return bad(
                "selection / trees",
                "feature selection and trees work on the rows layout".into(),
            );
        }
        // Keys of the other layout were ignored without a word (a
        // positive_label on the rows layout trained the opposite model of
        // the one meant).
        // A model too large for memory is refused before it is allocated:
        // weights, gradients and Adam's two moments, float32.
        let f = self.data.features.as_ref().map_or(64, |f| f.len().max(1));
        let (h, layers) = (m.hidden_size as f64, m.num_layers as f64);
        let params = 4.0 * h * (f as f64 + h + 2.0) + (layers - 1.0) * 4.0 * h * (2.0 * h + 2.0);
        if let Some(size) = too_large_to_train(params) {
            return bad(
                "model.hidden_size / num_layers",
                format!(
                    "{} x {} layers is {size}: too large; recur's classifiers use hidden sizes up to a few thousand",
                    m.hidden_size, m.num_layers,
                ),
            );
        }
        // LSTM-FCN's convolutions: filters 4096 with kernels 256, each
        // within its bounds, made a 17 GB weight whose allocation aborted
        // the process (the Python interpreter with it).
        if m.kind == ClassifierKind::LstmFcn {
            let [f0, f1, f2] = m.filters.map(|v| v as f64);
            let [k0, k1, k2] = m.kernels.map(|v| v as f64);
            let conv = f0 * f as f64 * k0 + f1 * f0 * k1 + f2 * f1 * k2 + 6.0 * (f0 + f1 + f2);
            if let Some(size) = too_large_to_train(conv) {
                return bad(
                    "model.filters / kernels",
                    format!(
                        "{:?} x {:?} is {size}: too large; the paper's are [128, 256, 128] x [8, 5, 3]",
                        m.filters, m.kernels,
                    ),
                );
            }
        }
        Ok(())
    }

    /// The checks of what training alone reads: the optimiser, the
    /// stopping rule, the split, the selection filters, the trees' and
    /// the blend's search, the search itself, and the keys the layout
    /// does not read.
    pub fn validate_training(&self, origin: &str) -> Result<()> {
        let bad = |key: &str, msg: String| Err(Error::config(format!("{origin}: {key}"), msg));
        let m = &self.model;
        let t = &self.training;
        let s = &self.data.split;
        if !(0.0..1.0).contains(&m.dropout) {
            return bad("model.dropout", format!("{} is outside [0, 1)", m.dropout));
        }
        let f32_max = f32::MAX as f64;
        if !(t.learning_rate > 0.0 && t.learning_rate <= f32_max) {
            return bad(
                "training.learning_rate",
                format!(
                    "{} must be a number above 0 that float32 holds (at most 3.4e38)",
                    t.learning_rate
                ),
            );
        }
        if t.early_stopping_patience == 0 {
            // It ran as 1, which nothing said.
            return bad(
                "training.early_stopping_patience",
                "0: give the epochs without improvement to wait, at least 1 (the number of \
                 epochs to never stop early)"
                    .into(),
            );
        }
        // Each named alone (the keyword of the one at 0 came second).
        if t.batch_size == 0 {
            return bad("training.batch_size", "must be at least 1".into());
        }
        if t.epochs == 0 {
            return bad("training.epochs", "must be at least 1".into());
        }
        if t.grad_clip.is_nan()
            || t.grad_clip < 0.0
            || !(t.weight_decay >= 0.0 && t.weight_decay <= f32_max)
        {
            return bad(
                "training.grad_clip / weight_decay",
                format!(
                    "{} and {} must be numbers, not negative (weight_decay at most 3.4e38, \
                     float32's largest)",
                    t.grad_clip, t.weight_decay
                ),
            );
        }
        match &t.pos_weight {
            PosWeight::Number(v) if !(*v > 0.0 && *v <= f32_max) => {
                return bad(
                    "training.pos_weight",
                    format!("{v} must be a positive number that float32 holds (at most 3.4e38)"),
                )
            }
            PosWeight::Named(n) if n != "auto" && n != "none" => {
                return bad(
                    "training.pos_weight",
                    format!("`{n}`: use auto, none or a number"),
                )
            }
            _ => {}
        }
        if t.class_weight != "auto" && t.class_weight != "none" {
            return bad(
                "training.class_weight",
                format!("`{}`: use auto or none", t.class_weight),
            );
        }
        if t.precision != "f32" && t.precision != "bf16" {
            return bad(
                "training.precision",
                format!("`{}`: use f32 or bf16", t.precision),
            );
        }
        for (k, v) in [("train", s.train), ("val", s.val), ("test", s.test)] {
            if !(0.0..=1.0).contains(&v) {
                return bad(&format!("data.split.{k}"), format!("{v} is outside [0, 1]"));
            }
        }
        if s.train <= 0.0 || s.val <= 0.0 || (s.train + s.val + s.test - 1.0).abs() > 1e-6 {
            return bad(
                "data.split",
                format!(
                    "train {} + val {} + test {} must add up to 1, with train and val above 0",
                    s.train, s.val, s.test
                ),
            );
        }
        if let Some(sel) = &self.selection {
            // NaN turned a filter off without a word; a negative share or
            // z failed later with `outliers >= -50%`. (`.inf` for a maximum
            // turns its filter off on purpose, as 0 does for a minimum.)
            let ranges = [
                ("min_abs_autocorr", Some(sel.min_abs_autocorr), 0.0, 1.0),
                (
                    "max_noise_ratio",
                    Some(sel.max_noise_ratio),
                    0.0,
                    f64::INFINITY,
                ),
                // A feature is kept below the share: at 0 none would be.
                (
                    "max_outlier_share",
                    Some(sel.max_outlier_share),
                    f64::MIN_POSITIVE,
                    1.0,
                ),
                (
                    "outlier_z",
                    Some(sel.outlier_z),
                    f64::MIN_POSITIVE,
                    f64::INFINITY,
                ),
                ("min_trend", sel.min_trend, 0.0, 1.0),
            ];
            for (key, v, lo, hi) in ranges {
                if let Some(v) = v.filter(|v| !(lo..=hi).contains(v)) {
                    let range = if hi == f64::INFINITY {
                        "a number above 0 (.inf turns the filter off)".to_string()
                    } else if lo == f64::MIN_POSITIVE {
                        format!(
                            "a number above 0 and up to {hi} (features whose share is at or \
                             above it are dropped: 0 would drop every one)"
                        )
                    } else {
                        format!("a number from {lo} to {hi}")
                    };
                    return bad(&format!("selection.{key}"), format!("{v} must be {range}"));
                }
            }
        }
        if let Some(tr) = &self.trees {
            if tr.early_stopping_rounds == 0 {
                // It behaved as 1: the trees stopped at the first round
                // without improvement.
                return bad(
                    "trees.early_stopping_rounds",
                    "must be at least 1 (rounds without a better validation loss before the \
                     trees stop; a large number keeps nearly every round)"
                        .into(),
                );
            }
            if tr.iterations == 0
                || tr.max_depth == 0
                || tr.learning_rate.is_nan()
                || tr.learning_rate <= 0.0
                || tr.learning_rate > 1.0
            {
                // A rate of 2 or more diverged to trees that could not be
                // saved, read back as "not a forust model".
                return bad(
                    "trees.iterations / max_depth / learning_rate",
                    "must be positive, the learning rate at most 1 (XGBoost's eta; 0.3 is its default)"
                        .into(),
                );
            }
        }
        if let Some(e) = &self.ensemble {
            // Two weights summing to 1 cannot both be above one half (0.6
            // came out as 0.5 each without a word), nor, where the weights
            // are dynamic, both below it (a max_weight of 0.3 came out as
            // 0.5 each); fixed weights never read max_weight.
            let dynamic = e.weights == WeightMode::Dynamic;
            if !(0.0 <= e.min_weight
                && e.min_weight <= 0.5
                && e.min_weight <= e.max_weight
                && (0.5 <= e.max_weight || !dynamic)
                && e.max_weight <= 1.0)
            {
                return bad(
                    "ensemble.min_weight / max_weight",
                    format!(
                        "[{}, {}]: need 0 <= min_weight <= 0.5, min_weight <= max_weight <= 1, \
                         and max_weight >= 0.5 with dynamic weights (the two weights sum to 1, \
                         so one is at least 0.5 and the other at most 0.5)",
                        e.min_weight, e.max_weight
                    ),
                );
            }
            let fixed = EnsembleConfig::default();
            if dynamic && (e.trees != fixed.trees || e.lstm != fixed.lstm) {
                // They were recorded and never read.
                return bad(
                    "ensemble.trees / lstm",
                    format!(
                        "{} / {}: fixed weights, which `weights: dynamic` computes from the \
                         validation log losses instead; leave them out, or use `weights: fixed`",
                        e.trees, e.lstm
                    ),
                );
            }
        }
        let dt = &self.data.target;
        let other: &[(&str, bool)] = match self.data.layout {
            Layout::Rows => &[("data.target.positive_label", dt.positive_label.is_some())],
            Layout::Sequences => &[
                ("data.time_column", self.data.time_column.is_some()),
                ("data.split.gap", s.gap.is_some()),
                ("data.target.horizon", dt.horizon != 0),
                ("data.target.price_column", dt.price_column.is_some()),
            ],
        };
        if let Some((key, _)) = other.iter().find(|k| k.1) {
            let (layout, other) = match self.data.layout {
                Layout::Rows => (
                    "rows",
                    "whole series (data.layout: sequences); a rows label is 0/1 already",
                ),
                Layout::Sequences => (
                    "sequences",
                    "the rows layout; a whole series is one sample with its label",
                ),
            };
            return bad(
                key,
                format!("applies to {other}: leave it out of a {layout} config"),
            );
        }
        if s.shuffle == Some(true) && self.data.layout == Layout::Rows {
            return bad(
                "data.split.shuffle",
                "overlapping windows of one series must be split in time, never shuffled \
                 (shuffle is for the sequences layout)"
                    .into(),
            );
        }
        if let Some(tc) = &self.tune {
            tc.validate(origin)?;
        }
        Ok(())
    }
}

/// The most memory one part of training may take, in GiB: a model's
/// weights with their optimiser state, a batch's activations, the trees'
/// inputs. Past it, the run is refused before it allocates.
pub const TRAINING_MEMORY_GIB: f64 = 8.0;

/// `bytes` in GiB, when that is over [`TRAINING_MEMORY_GIB`].
pub fn gib_over_training_limit(bytes: f64) -> Option<f64> {
    let gib = bytes / (1u64 << 30) as f64;
    (gib > TRAINING_MEMORY_GIB).then_some(gib)
}

/// A model of `params` parameters that would take more than
/// [`TRAINING_MEMORY_GIB`] to train (weights, gradients and Adam's two
/// moments, float32): its size as an error says it. Configs refuse such
/// models before allocating.
pub(crate) fn too_large_to_train(params: f64) -> Option<String> {
    gib_over_training_limit(params * 16.0).map(|gib| {
        format!(
            "about {:.0} million parameters ({gib:.1} GiB to train)",
            params / 1e6
        )
    })
}

/// Where `recur train` / `recur lvm train` write a config's model when no
/// `--out` is given: `runs/<config file stem>`.
pub fn default_out_dir(config: &Path) -> std::path::PathBuf {
    let stem = config
        .file_stem()
        .map_or("model".into(), |s| s.to_string_lossy().to_string());
    Path::new("runs").join(stem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_names_are_accepted_and_defaults_fill_the_rest() {
        let y = "model:\n  sequence_length: 32\n  hidden_size: 64\n  num_layers: 1\n  dropout: 0.3\n\
                 training:\n  learning_rate: 0.0005\n  batch_size: 512\n  epochs: 30\n  early_stopping_patience: 5\n";
        let c = Config::from_yaml(y, "t.yaml").unwrap();
        assert_eq!(c.model.hidden_size, 64);
        assert_eq!(c.training.seed, 42);
        assert_eq!(c.training.pos_weight, PosWeight::Named("auto".into()));
    }

    /// An unset split.shuffle is saved as what training did: true for the
    /// sequences layout, false for rows (a `null` could not be read back
    /// by older recur, whose field was a plain bool).
    #[test]
    fn the_saved_config_says_whether_the_split_was_shuffled() {
        for (layout, want) in [("sequences", "shuffle: true"), ("rows", "shuffle: false")] {
            let c = Config::from_yaml(&format!("data:\n  layout: {layout}\n"), "t.yaml").unwrap();
            assert_eq!(c.data.split.shuffle, None);
            let y = c.to_yaml();
            assert!(y.contains(want) && !y.contains("shuffle: null"), "{y}");
            let back = Config::from_yaml(&y, "back.yaml").unwrap();
            assert_eq!(
                back.data.split.shuffles(back.data.layout),
                layout == "sequences"
            );
        }
    }

    #[test]
    fn a_model_kind_that_is_not_a_classifier_is_refused_with_the_kinds_there_are() {
        let c = Config::from_yaml("model:\n  type: lstm\n", "t.yaml").unwrap();
        assert_eq!(c.model.kind, ClassifierKind::Lstm);
        assert!(c.to_yaml().contains("type: lstm"), "{}", c.to_yaml());
        let e = Config::from_yaml("model:\n  type: gru\n", "t.yaml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("t.yaml")
                && e.contains("model.type")
                && e.contains("`gru`")
                && e.contains("`lstm`"),
            "{e}"
        );
    }

    /// Depths that overflow the stack, factors float32 cannot hold and
    /// spans that smooth everything flat are refused by key; settings of
    /// another model kind or target are refused for a config about to
    /// train, but a saved config holding them still loads.
    #[test]
    fn values_beyond_what_trains_and_settings_nothing_reads_are_refused() {
        for (yaml, key) in [
            ("model: {num_layers: 30000}\n", "model.num_layers"),
            (
                "training: {learning_rate: 1.0e39}\n",
                "training.learning_rate",
            ),
            ("training: {weight_decay: 1.0e39}\n", "weight_decay"),
            ("training: {pos_weight: 1.0e39}\n", "training.pos_weight"),
            ("selection: {ewma_span: 1000000}\n", "selection.ewma_span"),
        ] {
            let e = Config::from_yaml(yaml, "t.yaml").unwrap_err().to_string();
            assert!(e.contains(key), "{yaml}: {e}");
        }
        assert!(Config::from_yaml("model: {num_layers: 64}\n", "t.yaml").is_ok());
        // A path of bytes that are not UTF-8 cannot be saved in config.yaml
        // (writing the model directory panicked): refused before the work.
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStrExt;
            let mut c = Config::default();
            c.data.path = Some(PathBuf::from(std::ffi::OsStr::from_bytes(b"b\xff.csv")));
            let e = c.validate("t.yaml").unwrap_err().to_string();
            assert!(
                e.contains("data.path") && e.contains("is not UTF-8 text"),
                "{e}"
            );
        }
        let d = tempfile::tempdir().unwrap();
        for (yaml, key) in [
            (
                "model: {type: lstm, shuffle: false}\n",
                "model.shuffle / filters / kernels",
            ),
            (
                "model: {filters: [8, 8, 8]}\n",
                "model.shuffle / filters / kernels",
            ),
            (
                "data: {target: {column: y, drop_neutral: true}}\n",
                "data.target.k / vol_window",
            ),
            (
                "data: {target: {column: y, k: 99}}\n",
                "data.target.k / vol_window",
            ),
        ] {
            let p = d.path().join("c.yaml");
            std::fs::write(&p, yaml).unwrap();
            let e = Config::from_file(&p).unwrap_err().to_string();
            assert!(e.contains(key) && e.contains("remove them"), "{yaml}: {e}");
            assert!(Config::from_yaml(yaml, "saved").is_ok(), "{yaml}");
        }
        for ok in [
            "model: {type: lstm-fcn, shuffle: false}\ndata: {layout: sequences}\n",
            "data: {target: {price_column: c, horizon: 5, k: 1.0}}\n",
        ] {
            let p = d.path().join("c.yaml");
            std::fs::write(&p, ok).unwrap();
            Config::from_file(&p).unwrap();
        }
        // A saved config is held to what scoring reads: training rules
        // added since a model was trained do not refuse it, and keys its
        // layout never read are dropped (as training ignored them).
        for yaml in [
            "training: {early_stopping_patience: 0}\n",
            "trees: {learning_rate: 1.5}\n",
            "ensemble: {min_weight: 0.6, max_weight: 0.9}\ntrees: {}\n",
            "data: {split: {train: 0.5, val: 0.1, test: 0.1}}\n",
        ] {
            assert!(Config::from_yaml(yaml, "t.yaml").is_err(), "{yaml}");
            Config::from_saved_yaml(yaml, "saved").unwrap();
        }
        let c = Config::from_saved_yaml("data: {target: {column: y, positive_label: a}}\n", "s")
            .unwrap();
        assert_eq!(c.data.target.positive_label, None);
        let c = Config::from_saved_yaml(
            "data: {layout: sequences, time_column: t, split: {gap: 2}}\n",
            "s",
        )
        .unwrap();
        assert_eq!((c.data.time_column, c.data.split.gap), (None, None));
        for (yaml, key) in [
            ("model: {sequence_length: 0}\n", "model.sequence_length"),
            ("trees: {lags: [1, 1]}\n", "trees.lags"),
            ("selection: {ewma_span: 1000000}\n", "selection.ewma_span"),
            ("model: {hidden_size: 1000000}\n", "model.hidden_size"),
            // Convolutions within their bounds that take 17 GB (an abort).
            (
                "model: {type: lstm-fcn, filters: [4096, 4096, 4096], kernels: [256, 256, 256]}\n",
                "model.filters / kernels",
            ),
        ] {
            let e = Config::from_saved_yaml(yaml, "saved")
                .unwrap_err()
                .to_string();
            assert!(e.contains(key), "{yaml}: {e}");
        }
        // `--target` replaces a price rule whole, its settings with it.
        let p = d.path().join("c.yaml");
        std::fs::write(
            &p,
            "data: {target: {price_column: c, horizon: 5, k: 1.0}}\n",
        )
        .unwrap();
        let mut c = Config::from_file(&p).unwrap();
        c.override_data(None, Some("y".into()), "c.yaml").unwrap();
        assert_eq!(c.data.target.k, TargetConfig::default().k);
        c.refuse_unread("c.yaml").unwrap();
    }

    #[test]
    fn typos_and_bad_values_name_the_key() {
        let e = Config::from_yaml("model:\n  hiden_size: 3\n", "t.yaml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("hiden_size"), "{e}");
        let e = Config::from_yaml("model:\n  dropout: 1.5\n", "t.yaml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("model.dropout"), "{e}");
        for (yaml, key) in [
            (
                "data: {target: {positive_label: '0'}}\n",
                "data.target.positive_label",
            ),
            (
                "data: {layout: sequences, time_column: t}\n",
                "data.time_column",
            ),
            (
                "data: {layout: sequences, split: {gap: 3}}\n",
                "data.split.gap",
            ),
            (
                "data: {layout: sequences, target: {horizon: 2}}\n",
                "data.target.horizon",
            ),
        ] {
            let e = Config::from_yaml(yaml, "t.yaml").unwrap_err().to_string();
            assert!(e.contains(key) && e.contains("leave it out"), "{yaml}: {e}");
        }
        let e = Config::from_yaml("data:\n  split: {shuffle: true}\n", "t.yaml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("never shuffled"), "{e}");
        for (yaml, key) in [
            (
                "tune:\n  learning_rate: [0.01, 0.001]\n",
                "tune.learning_rate",
            ),
            ("tune:\n  dropout: [0.5, 1.5]\n", "tune.dropout"),
            (
                "tune:\n  sequence_length: [64, 8]\n",
                "tune.sequence_length",
            ),
            ("tune:\n  hidden_size: [0, 8]\n", "tune.hidden_size"),
            ("model:\n  hidden_size: 100000\n", "model.hidden_size"),
            (
                "data:\n  target: {price_column: c, horizon: 1, tau_min: 0.5, tau_max: 0.1}\n",
                "data.target.tau_min",
            ),
            (
                "data:\n  target: {price_column: c, horizon: 1, tau_min: .nan}\n",
                "data.target.tau_min",
            ),
            (
                "data:\n  target: {price_column: c, horizon: 1, vol_window: 1}\n",
                "data.target.vol_window",
            ),
            (
                "data:\n  target: {price_column: c, horizon: 1, k: -1}\n",
                "data.target.k",
            ),
            ("data:\n  features: [a, b, a]\n", "data.features"),
            ("data:\n  features: []\n", "data.features"),
            (
                "training: {early_stopping_patience: 0}\n",
                "training.early_stopping_patience",
            ),
            ("cost: {tp: .nan}\n", "cost.tp"),
            ("cost: {fn: .inf}\n", "cost.fn"),
            ("cost: {tp: 1e308}\n", "cost.tp"),
            ("drift: {psi: -1}\n", "drift.psi"),
            ("drift: {psi: 0}\n", "drift.psi"),
            ("drift: {ks: .inf}\n", "drift.ks"),
            ("trees: {lags: [1, 0]}\n", "trees.lags"),
            ("trees: {lags: [1, 2, 1]}\n", "trees.lags"),
            (
                "selection: {min_abs_autocorr: .nan}\n",
                "selection.min_abs_autocorr",
            ),
            (
                "selection: {max_noise_ratio: .nan}\n",
                "selection.max_noise_ratio",
            ),
            (
                "selection: {max_outlier_share: -0.5}\n",
                "selection.max_outlier_share",
            ),
            ("selection: {outlier_z: -3}\n", "selection.outlier_z"),
            ("selection: {min_trend: .nan}\n", "selection.min_trend"),
            (
                "trees: {learning_rate: 2}\n",
                "trees.iterations / max_depth / learning_rate",
            ),
            ("trees: {lags: [1, 100000000000]}\n", "trees.lags"),
            ("trees: {xgboost_model: ''}\n", "trees.xgboost_model"),
            (
                "trees: {early_stopping_rounds: 0}\n",
                "trees.early_stopping_rounds",
            ),
            (
                "trees: {}\nensemble: {weights: dynamic, trees: 0.2, lstm: 0.8}\n",
                "ensemble.trees / lstm",
            ),
            (
                "selection: {max_outlier_share: 0}\n",
                "selection.max_outlier_share",
            ),
            ("data:\n  path: ''\n", "data.path"),
            (
                "training: {weight_decay: .nan}\n",
                "training.grad_clip / weight_decay",
            ),
            (
                "training: {grad_clip: .nan}\n",
                "training.grad_clip / weight_decay",
            ),
            (
                "trees: {}\nensemble: {weights: fixed, trees: .nan, lstm: 0.3}\n",
                "ensemble.trees / lstm",
            ),
            (
                "trees: {}\nensemble: {weights: fixed, trees: .inf, lstm: 0.3}\n",
                "ensemble.trees / lstm",
            ),
            (
                "trees: {}\nensemble: {weights: fixed, trees: 1e308, lstm: 1e308}\n",
                "ensemble.trees / lstm",
            ),
        ] {
            let e = Config::from_yaml(yaml, "t.yaml").unwrap_err().to_string();
            assert!(e.contains(key) && e.contains("t.yaml"), "{yaml}: {e}");
        }
    }
}

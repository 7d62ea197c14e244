//! The YAML config of Job B's latent vector models (`recur lvm train`):
//! data files, model kind and sizes, and the training recipe of SYSTEM.md
//! (MSE or cosine loss, AdamW 5e-4 with decay 0.01, batch 32, 20 epochs,
//! clipping 1.0, cosine annealing or reduce-on-plateau). Every field has
//! that default; unknown keys are refused with their name.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The most layers (blocks) an LVM may have.
pub const MAX_LAYERS: usize = 64;
/// The largest vector dimension, d_model or context an LVM may have (the
/// configs' d_model range stops at 8192 too).
pub const MAX_SIZE: usize = 8192;

/// Each section is a struct with a `Default` holding the recipe's values,
/// and `#[serde(default)]` fills what a file leaves out: the one way every
/// recur config states its defaults (as Job A's `Config` does).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LvmConfig {
    pub data: LvmDataConfig,
    pub model: LvmModelConfig,
    pub training: LvmTrainingConfig,
    /// The search of `recur tune`; its defaults when left out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tune: Option<LvmTuneConfig>,
}

/// The search of `recur tune` over an LVM config: learning rate and weight
/// decay on a log scale, and dropout for the kinds that have it
/// (transformer and mlp); the width (log scale) and the
/// number of layers only when a range is given, since the `average` start
/// fixes the width of the recurrent kinds and the transformer. The
/// objective is the validation cosine on the held-out articles.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LvmTuneConfig {
    pub learning_rate: [f64; 2],
    pub weight_decay: [f64; 2],
    /// [`DEFAULT_TUNE_DROPOUT`] where left out; refused for the kinds
    /// without dropout.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dropout: Option<[f64; 2]>,
    pub d_model: Option<[usize; 2]>,
    pub num_layers: Option<[usize; 2]>,
    /// Trials sampled at random before TPE takes over (Optuna's default 10).
    pub startup_trials: usize,
    /// Completed trials before the median rule prunes anything.
    pub prune_after_trials: usize,
    /// Epochs every trial runs before it can be pruned.
    pub warmup_epochs: usize,
}

impl Default for LvmTuneConfig {
    fn default() -> Self {
        LvmTuneConfig {
            learning_rate: [1e-5, 1e-3],
            weight_decay: [1e-3, 0.3],
            dropout: None,
            d_model: None,
            num_layers: None,
            startup_trials: 10,
            prune_after_trials: 4,
            warmup_epochs: 1,
        }
    }
}

/// The dropout range searched where `tune.dropout` is left out.
pub const DEFAULT_TUNE_DROPOUT: [f64; 2] = [0.0, 0.5];

impl LvmTuneConfig {
    /// Refuses a search of what `model` does not have: a dropout range
    /// for a kind without dropout. Only `recur tune` asks (`lvm train`
    /// never reads the section, and the best.yaml an older search wrote
    /// for such a kind holds one).
    pub fn check_searchable(&self, model: &LvmModelConfig) -> Result<()> {
        if self.dropout.is_some() && !model.kind.has_dropout() {
            return Err(Error::config(
                "tune.dropout",
                format!(
                    "the {} model has no dropout to search (only transformer and mlp have); \
                     leave it out",
                    model.kind
                ),
            ));
        }
        Ok(())
    }

    /// The dropout range searched (for the kinds that have dropout).
    pub fn dropout_range(&self) -> [f64; 2] {
        self.dropout.unwrap_or(DEFAULT_TUNE_DROPOUT)
    }

    /// Every range low <= high and every sampled value one `recur lvm
    /// train` accepts with `model`.
    fn validate(&self, model: &LvmModelConfig, origin: &str) -> Result<()> {
        let bad = |key: &str, msg: String| Err(Error::config(format!("{origin}: tune.{key}"), msg));
        for (key, [a, b]) in [
            ("learning_rate", self.learning_rate),
            ("weight_decay", self.weight_decay),
        ] {
            if !(a > 0.0 && a <= b && b.is_finite()) {
                return bad(
                    key,
                    format!("[{a}, {b}]: need 0 < low <= high (sampled on a log scale)"),
                );
            }
        }
        let [a, b] = self.dropout_range();
        if !(0.0..1.0).contains(&a) || !(0.0..1.0).contains(&b) || a > b {
            return bad(
                "dropout",
                format!("[{a}, {b}]: need 0 <= low <= high < 1, as model.dropout"),
            );
        }
        if let Some([a, b]) = self.d_model {
            if a == 0 || a > b || b > MAX_SIZE {
                return bad(
                    "d_model",
                    format!("[{a}, {b}]: need 1 <= low <= high <= {MAX_SIZE}"),
                );
            }
            let fixed = !matches!(model.kind, LvmKind::Amn | LvmKind::Mlp);
            if model.init == "average" && fixed {
                return bad(
                    "d_model",
                    format!(
                        "the `average` start fixes a {}'s d_model at the vector dimension; leave tune.d_model out or use model.init: pytorch",
                        model.kind
                    ),
                );
            }
            if model.kind == LvmKind::Transformer
                && model.heads > 0
                && b / model.heads * model.heads < a
            {
                return bad(
                    "d_model",
                    format!(
                        "[{a}, {b}] holds no multiple of model.heads ({})",
                        model.heads
                    ),
                );
            }
        }
        if let Some([a, b]) = self.num_layers {
            if model.kind == LvmKind::Amn {
                // Five trials of AMN at 1 to 4 layers scored alike to the
                // last digit, and best.yaml kept one of them.
                return bad(
                    "num_layers",
                    "the attention-mixture model (amn) has no layers to count; leave \
                     tune.num_layers out"
                        .into(),
                );
            }
            if a == 0 || a > b || b > 64 {
                return bad(
                    "num_layers",
                    format!("[{a}, {b}]: need 1 <= low <= high <= 64"),
                );
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LvmDataConfig {
    /// Training windows (.npz, either layout). Required.
    pub train: PathBuf,
    /// Validation windows; without it, `val_fraction` of the training
    /// file's articles are held out.
    pub val: Option<PathBuf>,
    /// Out-of-distribution windows, evaluated after training.
    pub ood: Option<PathBuf>,
    pub val_fraction: f64,
    /// Context length C.
    pub context: usize,
    /// Also train on short windows (a chunks file only): targets with at
    /// least this many chunks before them but fewer than `context`, padded
    /// by repeating the earliest as `/chat` pads. Validation stays on full
    /// windows of the held-out articles, the same set as without. Off by
    /// default.
    pub min_context: Option<usize>,
    /// Also train on every training article read backwards (a chunks file
    /// only): each chunk the target of the `context` chunks after it, the
    /// nearest last, and with `min_context` the short windows at the
    /// article's end. Which sentence comes next and which came before are
    /// much the same question to a sentence encoder, so this doubles the
    /// windows the short Wikipedia leads give. Training only: validation
    /// and OOD stay forward. Off by default.
    pub reverse: bool,
}

impl Default for LvmDataConfig {
    fn default() -> Self {
        LvmDataConfig {
            train: PathBuf::new(),
            val: None,
            ood: None,
            val_fraction: 0.1,
            context: 5,
            min_context: None,
            reverse: false,
        }
    }
}

/// The latent vector models recur trains, listed once: configs, the
/// architecture stored in checkpoints, the importer and the service all
/// name a kind through this (`lstm` in YAML and JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LvmKind {
    Lstm,
    Gru,
    /// The attention mixture network; its `d_model` is the attention width.
    Amn,
    Transformer,
    /// A residual MLP over the flattened context.
    Mlp,
}

impl LvmKind {
    /// Whether the kind's training applies `model.dropout` (the others
    /// have none to apply).
    pub fn has_dropout(self) -> bool {
        matches!(self, LvmKind::Transformer | LvmKind::Mlp)
    }

    pub const ALL: [LvmKind; 5] = [
        LvmKind::Lstm,
        LvmKind::Gru,
        LvmKind::Amn,
        LvmKind::Transformer,
        LvmKind::Mlp,
    ];

    /// The kind's name in configs, checkpoints and tensor names.
    pub fn name(self) -> &'static str {
        match self {
            LvmKind::Lstm => "lstm",
            LvmKind::Gru => "gru",
            LvmKind::Amn => "amn",
            LvmKind::Transformer => "transformer",
            LvmKind::Mlp => "mlp",
        }
    }
}

impl std::fmt::Display for LvmKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for LvmKind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<LvmKind, String> {
        LvmKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                format!(
                    "`{s}` is not an LVM recur trains; use `lstm`, `gru`, `amn`, `transformer` or `mlp`"
                )
            })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LvmModelConfig {
    /// `lstm`, `gru`, `amn` (the attention mixture network; its `d_model`
    /// is the attention width, 256 in the original), `transformer` or
    /// `mlp` (a residual MLP over the flattened context; `num_layers` is
    /// its number of residual blocks).
    #[serde(rename = "type")]
    pub kind: LvmKind,
    #[serde(alias = "hidden_dim")]
    pub d_model: usize,
    pub num_layers: usize,
    /// Attention heads (transformer).
    #[serde(alias = "nhead")]
    pub heads: usize,
    /// Feed-forward width (transformer).
    #[serde(alias = "dim_feedforward")]
    pub ff: usize,
    /// Training dropout; by default 0.1 for the transformer and 0 for the
    /// others, as the original.
    pub dropout: Option<f64>,
    /// Where training starts: `pytorch` (PyTorch's default initialisation)
    /// or `average` (the untrained model predicts a recency-weighted
    /// average of the context; needs d_model equal to the vector
    /// dimension except for amn and mlp). See recur-models' `start` module.
    pub init: String,
}

/// The transformer's attention heads and feed-forward width when a config
/// or a stored architecture does not say (PyTorch's defaults).
pub const DEFAULT_HEADS: usize = 8;
pub const DEFAULT_FF: usize = 2048;

impl Default for LvmModelConfig {
    fn default() -> Self {
        LvmModelConfig {
            kind: LvmKind::Lstm,
            d_model: 512,
            num_layers: 4,
            heads: DEFAULT_HEADS,
            ff: DEFAULT_FF,
            dropout: None,
            init: "pytorch".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LvmTrainingConfig {
    /// `mse` or `cosine` (1 - cosine similarity).
    pub loss: String,
    #[serde(alias = "lr")]
    pub learning_rate: f64,
    pub weight_decay: f64,
    pub batch_size: usize,
    pub epochs: usize,
    /// Global gradient-norm clipping; 0 turns it off.
    pub grad_clip: f64,
    /// `cosine` (annealing to 0 over the epochs), `plateau` or `none`.
    pub schedule: String,
    pub plateau_factor: f64,
    pub plateau_patience: usize,
    /// Weight of an extra InfoNCE term against in-batch negatives (each
    /// prediction scored against every target of its batch, its own the
    /// right answer), added to `loss`; 0 (the default) leaves it out.
    pub infonce_weight: f64,
    /// The InfoNCE term's temperature.
    pub infonce_temperature: f64,
    pub seed: u64,
    /// `f32` (the default) or `bf16`: the products of training (and of its
    /// validation passes) with bf16 operands and f32 sums, on the CPU's
    /// bf16 instructions where it has them. The weights stay f32.
    pub precision: String,
}

impl LvmTrainingConfig {
    /// A batch size and an epoch count of at least 1 (a batch of 0
    /// divided by zero): part of [`LvmConfig::validate`], and what a fit
    /// from windows in memory checks, whose config may name no file.
    pub fn check_counts(&self, origin: &str) -> Result<()> {
        for (key, v) in [("batch_size", self.batch_size), ("epochs", self.epochs)] {
            if v == 0 {
                return Err(Error::config(
                    format!("{origin}: training.{key}"),
                    "0: use 1 or more",
                ));
            }
        }
        Ok(())
    }
}

impl Default for LvmTrainingConfig {
    fn default() -> Self {
        LvmTrainingConfig {
            loss: "mse".into(),
            learning_rate: 5e-4,
            weight_decay: 0.01,
            batch_size: 32,
            epochs: 20,
            grad_clip: 1.0,
            schedule: "cosine".into(),
            plateau_factor: 0.5,
            plateau_patience: 3,
            infonce_weight: 0.0,
            infonce_temperature: 0.07,
            seed: 42,
            precision: "f32".into(),
        }
    }
}

impl crate::config_file::ConfigPaths for LvmConfig {
    fn paths_mut(&mut self) -> Vec<&mut PathBuf> {
        let d = &mut self.data;
        // A training file left out stays empty, for `validate` to name.
        std::iter::once(&mut d.train)
            .filter(|p| !p.as_os_str().is_empty())
            .chain(d.val.as_mut())
            .chain(d.ood.as_mut())
            .collect()
    }
}

impl LvmConfig {
    /// Reads a YAML file; relative data paths become relative to it.
    pub fn from_file(path: &Path) -> Result<LvmConfig> {
        let (cfg, _) = crate::config_file::read::<LvmConfig>(path)?;
        cfg.validate(&path.display().to_string())?;
        Ok(cfg)
    }

    /// Parses YAML text; `origin` names it in errors. Paths stay as written.
    pub fn from_yaml(text: &str, origin: &str) -> Result<LvmConfig> {
        let cfg: LvmConfig = crate::config_file::parse(text, origin)?;
        cfg.validate(origin)?;
        Ok(cfg)
    }

    /// The config as YAML, every key written out (what a model directory saves).
    pub fn to_yaml(&self) -> String {
        serde_yaml_ng::to_string(self).expect("config serialises")
    }

    /// Checks what serde cannot; names the key at fault.
    pub fn validate(&self, origin: &str) -> Result<()> {
        let bad = |key: &str, msg: String| Err(Error::config(format!("{origin}: {key}"), msg));
        let (m, t, d) = (&self.model, &self.training, &self.data);
        if d.train.as_os_str().is_empty() {
            return bad(
                "data.train",
                "is required: the training windows (.npz, ready windows or chunks)".into(),
            );
        }
        // Saved as YAML, which holds text only (a path of other bytes
        // panicked when the model directory was written).
        for (key, p) in [
            ("data.train", Some(&d.train)),
            ("data.val", d.val.as_ref()),
            ("data.ood", d.ood.as_ref()),
        ] {
            if let Some(p) = p.filter(|p| p.to_str().is_none()) {
                return bad(key, crate::fsx::not_utf8(p));
            }
        }
        if m.kind == LvmKind::Transformer && (m.heads == 0 || m.d_model % m.heads != 0) {
            return bad(
                "model.heads",
                format!(
                    "d_model {} must be a multiple of heads {}",
                    m.d_model, m.heads
                ),
            );
        }
        if m.kind == LvmKind::Transformer && m.ff == 0 {
            return bad(
                "model.ff",
                "the transformer's feed-forward width must be at least 1 (recipes use 4 x d_model)"
                    .into(),
            );
        }
        if !["pytorch", "average"].contains(&m.init.as_str()) {
            return bad(
                "model.init",
                format!("`{}`: use `pytorch` or `average`", m.init),
            );
        }
        if let Some(p) = m.dropout {
            if !(0.0..1.0).contains(&p) {
                return bad("model.dropout", format!("{p} must be in [0, 1)"));
            }
            if p != 0.0 && !m.kind.has_dropout() {
                return bad(
                    "model.dropout",
                    format!(
                        "{p}: the {} model has no dropout (only transformer and mlp read it); \
                         leave it out (a best.yaml written by an older `recur tune` for this \
                         kind has one)",
                        m.kind
                    ),
                );
            }
        }
        // The transformer's sizes on another kind were recorded and did
        // nothing.
        if m.kind != LvmKind::Transformer {
            for (key, v, default) in [
                ("model.heads", m.heads, DEFAULT_HEADS),
                ("model.ff", m.ff, DEFAULT_FF),
            ] {
                if v != default {
                    return bad(
                        key,
                        format!(
                            "{v}: only the transformer reads it, the {} model does not; \
                             leave it out",
                            m.kind
                        ),
                    );
                }
            }
        }
        if m.d_model == 0 || (m.kind != LvmKind::Amn && m.num_layers == 0) {
            return bad("model", "d_model and num_layers must be at least 1".into());
        }
        // Each layer costs time and memory beyond its weights (100,000
        // layers of 16 ran on past a minute); `tune` searches up to 64.
        if m.num_layers > MAX_LAYERS {
            return bad(
                "model.num_layers",
                format!(
                    "{} is more than the {MAX_LAYERS} recur builds; the recipes use 1 to 4",
                    m.num_layers
                ),
            );
        }
        if d.context == 0 {
            return bad("data.context", "must be at least 1".into());
        }
        // The model refuses a longer context when it is built, but the
        // windows are read first, each naming `context` vectors: a context
        // of 10^8 reserved terabytes before anything was said.
        if d.context > MAX_SIZE {
            return bad(
                "data.context",
                format!(
                    "{} is more than the {MAX_SIZE} vectors an LVM reads; the recipes use 5",
                    d.context
                ),
            );
        }
        // A model too large for memory is refused before it is allocated
        // (an allocation of 48 GB aborted the process): weights, gradients
        // and Adam's two moments in float32, with the vector dimension
        // taken as d_model (the two are equal in the recipes).
        // (The AMN has one block whatever num_layers says.)
        let w = m.d_model as f64;
        let (per_layer, layers) = match m.kind {
            LvmKind::Lstm => (8.0 * w * w, m.num_layers),
            LvmKind::Gru => (6.0 * w * w, m.num_layers),
            LvmKind::Transformer => (4.0 * w * w + 2.0 * w * m.ff as f64, m.num_layers),
            LvmKind::Amn => (4.0 * w * w, 1),
            LvmKind::Mlp => (2.0 * w * w, m.num_layers),
        };
        let layers = layers.max(1) as f64;
        let params = layers * per_layer + d.context as f64 * w * w;
        if let Some(size) = crate::config::too_large_to_train(params) {
            return bad(
                "model.d_model / num_layers / ff, data.context",
                format!(
                    "{} of {} x {} layers (ff {}, context {}) is {size}: too large; the recipes use d_model up to 1024 and a few layers",
                    m.kind, m.d_model, m.num_layers, m.ff, d.context,
                ),
            );
        }
        if let Some(k) = d.min_context {
            if k == 0 || k >= d.context {
                return bad(
                    "data.min_context",
                    format!(
                        "{k} must be at least 1 and below data.context ({}); leave it out for full windows only",
                        d.context
                    ),
                );
            }
        }
        if !(0.0..1.0).contains(&d.val_fraction) || (d.val.is_none() && d.val_fraction == 0.0) {
            return bad(
                "data.val_fraction",
                format!(
                    "{} must be in (0, 1) when no data.val file is given",
                    d.val_fraction
                ),
            );
        }
        if !["mse", "cosine"].contains(&t.loss.as_str()) {
            return bad(
                "training.loss",
                format!("`{}`: use `mse` or `cosine`", t.loss),
            );
        }
        if !["f32", "bf16"].contains(&t.precision.as_str()) {
            return bad(
                "training.precision",
                format!("`{}`: use `f32` or `bf16`", t.precision),
            );
        }
        if !["cosine", "plateau", "none"].contains(&t.schedule.as_str()) {
            return bad(
                "training.schedule",
                format!("`{}`: use `cosine`, `plateau` or `none`", t.schedule),
            );
        }
        if !t.learning_rate.is_finite() || t.learning_rate <= 0.0 {
            return bad(
                "training.learning_rate",
                format!("{}: use a finite number above 0", t.learning_rate),
            );
        }
        t.check_counts(origin)?;
        if t.infonce_weight > 0.0 && t.batch_size < 2 {
            return bad(
                "training.infonce_weight",
                format!(
                    "{} needs a batch_size of at least 2: its negatives are the other windows of a batch",
                    t.infonce_weight
                ),
            );
        }
        if !(t.weight_decay.is_finite() && t.weight_decay >= 0.0) {
            return bad(
                "training.weight_decay",
                format!("{} must be a finite number, 0 or above", t.weight_decay),
            );
        }
        if t.grad_clip.is_nan() || t.grad_clip < 0.0 {
            return bad(
                "training.grad_clip",
                format!("{} must be 0 (off) or above", t.grad_clip),
            );
        }
        if t.plateau_factor.is_nan() || t.plateau_factor <= 0.0 || t.plateau_factor >= 1.0 {
            return bad(
                "training.plateau_factor",
                format!("{} must be in (0, 1)", t.plateau_factor),
            );
        }
        if !(t.infonce_weight.is_finite() && t.infonce_weight >= 0.0) {
            return bad(
                "training.infonce_weight",
                format!("{} must be 0 (off) or above", t.infonce_weight),
            );
        }
        if !(0.01..=10.0).contains(&t.infonce_temperature) {
            return bad(
                "training.infonce_temperature",
                format!("{} must be in [0.01, 10]", t.infonce_temperature),
            );
        }
        if let Some(tune) = &self.tune {
            tune.validate(m, origin)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_states_only_what_it_changes_and_the_recipe_fills_the_rest() {
        let c =
            LvmConfig::from_yaml("data: {train: t.npz}\nmodel: {type: gru}\n", "t.yaml").unwrap();
        assert_eq!(c.data.train, PathBuf::from("t.npz"));
        assert_eq!(c.model.kind, LvmKind::Gru);
        assert_eq!(c.model.d_model, LvmModelConfig::default().d_model);
        assert_eq!(c.training, LvmTrainingConfig::default());
        assert_eq!((c.data.context, c.data.val_fraction), (5, 0.1));
        // What the file writes back reads as the same config.
        assert_eq!(LvmConfig::from_yaml(&c.to_yaml(), "again").unwrap(), c);
    }

    /// Settings a kind does not read are refused by name, not recorded
    /// in the checkpoint as if they had trained it: dropout on the kinds
    /// without any, the transformer's sizes on the others.
    #[test]
    fn settings_the_kind_does_not_read_are_refused() {
        let cfg = |m: &str| {
            LvmConfig::from_yaml(&format!("data: {{train: t.npz}}\nmodel: {m}\n"), "t.yaml")
        };
        for kind in ["lstm", "gru", "amn"] {
            let e = cfg(&format!("{{type: {kind}, dropout: 0.5}}"))
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("model.dropout")
                    && e.contains(&format!("the {kind} model has no dropout")),
                "{e}"
            );
            assert!(cfg(&format!("{{type: {kind}, dropout: 0.0}}")).is_ok());
            for key in ["heads: 2", "ff: 64"] {
                let e = cfg(&format!("{{type: {kind}, {key}}}"))
                    .unwrap_err()
                    .to_string();
                assert!(e.contains("only the transformer reads it"), "{key}: {e}");
            }
        }
        assert!(cfg("{type: mlp, dropout: 0.3}").is_ok());
        assert!(cfg("{type: transformer, d_model: 64, heads: 4, ff: 128, dropout: 0.2}").is_ok());
        let e = cfg("{type: mlp, heads: 4}").unwrap_err().to_string();
        assert!(e.contains("model.heads"), "{e}");
        // Nor is a dropout range searched for them.
        let tuned = |kind: &str| {
            LvmConfig::from_yaml(
                &format!("data: {{train: t.npz}}\nmodel: {{type: {kind}}}\ntune: {{dropout: [0.1, 0.4]}}\n"),
                "t.yaml",
            )
        };
        // recur tune refuses it; lvm train never reads the section (an
        // older tune's best.yaml for such a kind holds one).
        let gru = tuned("gru").unwrap();
        let e = gru
            .tune
            .as_ref()
            .unwrap()
            .check_searchable(&gru.model)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("tune.dropout") && e.contains("the gru model has no dropout"),
            "{e}"
        );
        let mlp = tuned("mlp").unwrap();
        let t = mlp.tune.as_ref().unwrap();
        assert!(t.check_searchable(&mlp.model).is_ok());
        assert_eq!(t.dropout_range(), [0.1, 0.4]);
    }

    #[test]
    fn a_missing_training_file_or_an_unknown_key_is_refused_by_name() {
        let e = LvmConfig::from_yaml("model: {type: gru}\n", "t.yaml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("t.yaml") && e.contains("data.train") && e.contains("required"),
            "{e}"
        );
        let e = LvmConfig::from_yaml("data: {train: t.npz}\ntraining: {epoch: 3}\n", "t.yaml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("t.yaml") && e.contains("`epoch`"), "{e}");
        let e = LvmConfig::from_yaml("data: {train: t.npz}\nmodel: {type: lstmx}\n", "t.yaml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("model.type") && e.contains("`lstmx`"), "{e}");
        let e = LvmConfig::from_yaml(
            "data: {train: t.npz}\ntraining: {precision: fp16}\n",
            "t.yaml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("training.precision") && e.contains("`fp16`"),
            "{e}"
        );
        let c = LvmConfig::from_yaml(
            "data: {train: t.npz}\ntraining: {precision: bf16}\n",
            "t.yaml",
        );
        assert_eq!(c.unwrap().training.precision, "bf16");
        let e = LvmConfig::from_yaml(
            "data: {train: t.npz}\nmodel: {type: transformer, ff: 0}\n",
            "t.yaml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("model.ff") && e.contains("at least 1"), "{e}");
        let e = LvmConfig::from_yaml(
            "data: {train: t.npz}\nmodel: {type: amn}\ntune: {num_layers: [1, 4]}\n",
            "t.yaml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("tune.num_layers") && e.contains("no layers"),
            "{e}"
        );
        for (training, key) in [
            ("{weight_decay: .nan}", "training.weight_decay"),
            ("{weight_decay: .inf}", "training.weight_decay"),
            ("{grad_clip: .nan}", "training.grad_clip"),
            (
                "{learning_rate: .inf}",
                "training.learning_rate: inf: use a finite",
            ),
            ("{epochs: 0}", "training.epochs: 0: use 1 or more"),
            ("{batch_size: 0}", "training.batch_size: 0: use 1 or more"),
            (
                "{infonce_weight: 0.5, batch_size: 1}",
                "needs a batch_size of at least 2",
            ),
        ] {
            let e = LvmConfig::from_yaml(
                &format!("data: {{train: t.npz}}\ntraining: {training}\n"),
                "t.yaml",
            )
            .unwrap_err()
            .to_string();
            assert!(e.contains(key), "{training}: {e}");
        }
        let e = LvmConfig::from_yaml(
            "data: {train: t.npz}\nmodel: {num_layers: 100000}\n",
            "t.yaml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("model.num_layers") && e.contains("more than the 64"),
            "{e}"
        );
        // A context the model would refuse is refused before its windows
        // are read (10^8 with d_model 1 passed the size estimate).
        let e = LvmConfig::from_yaml(
            "data: {train: t.npz, context: 100000000}\nmodel: {d_model: 1, num_layers: 1}\n",
            "t.yaml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("data.context") && e.contains("more than the 8192"),
            "{e}"
        );
        // Models too large to allocate are refused before training starts;
        // the recipes' sizes pass.
        for (model, ok) in [
            ("{type: lstm, d_model: 1000000000}", false),
            ("{type: lstm, d_model: 8192, num_layers: 64}", false),
            ("{type: gru, d_model: 16384, num_layers: 8}", false),
            ("{type: amn, d_model: 10000000}", false),
            ("{type: transformer, ff: 10000000000}", false),
            ("{type: mlp, d_model: 100000}", false),
            ("{type: lstm, d_model: 1024, num_layers: 4}", true),
            (
                "{type: transformer, d_model: 768, num_layers: 6, heads: 8, ff: 3072}",
                true,
            ),
        ] {
            let y = format!("data: {{train: t.npz}}\nmodel: {model}\n");
            match LvmConfig::from_yaml(&y, "t.yaml") {
                Ok(_) => assert!(ok, "{model} was taken"),
                Err(e) => {
                    let e = e.to_string();
                    assert!(
                        !ok && e.contains("too large") && e.contains("t.yaml"),
                        "{model}: {e}"
                    );
                }
            }
        }
        for (k, ok) in [(0, false), (1, true), (4, true), (5, false)] {
            let y = format!("data: {{train: t.npz, context: 5, min_context: {k}}}\n");
            let r = LvmConfig::from_yaml(&y, "t.yaml");
            assert_eq!(r.is_ok(), ok, "min_context {k}");
            if let Err(e) = r {
                assert!(e.to_string().contains("data.min_context"), "{e}");
            }
        }
    }

    #[test]
    fn every_shipped_lvm_recipe_parses_and_names_its_kind() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
        let mut kinds = std::collections::BTreeSet::new();
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            if name.starts_with("lvm") && name.ends_with(".yaml") {
                let text = std::fs::read_to_string(&p).unwrap();
                let c = LvmConfig::from_yaml(&text, &name).unwrap();
                if name.starts_with("lvm-text") {
                    kinds.insert(c.model.kind.name());
                }
            }
        }
        // One recipe for the bundled corpus per kind.
        let all: std::collections::BTreeSet<&str> = LvmKind::ALL.iter().map(|k| k.name()).collect();
        assert_eq!(kinds, all);
    }
}

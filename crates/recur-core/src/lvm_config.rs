//! The YAML config of Job B's latent vector models (`recur lvm train`):
//! data files, model kind and sizes, and the training recipe of SYSTEM.md
//! (MSE or cosine loss, AdamW 5e-4 with decay 0.01, batch 32, 20 epochs,
//! clipping 1.0, cosine annealing or reduce-on-plateau). Every field has
//! that default; unknown keys are refused with their name.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LvmConfig {
    pub data: LvmDataConfig,
    #[serde(default)]
    pub model: LvmModelConfig,
    #[serde(default)]
    pub training: LvmTrainingConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LvmDataConfig {
    /// Training windows (.npz, either layout).
    pub train: PathBuf,
    /// Validation windows; without it, `val_fraction` of the training
    /// file's articles are held out.
    #[serde(default)]
    pub val: Option<PathBuf>,
    /// Out-of-distribution windows, evaluated after training.
    #[serde(default)]
    pub ood: Option<PathBuf>,
    #[serde(default = "d_val_fraction")]
    pub val_fraction: f64,
    /// Context length C.
    #[serde(default = "d_context")]
    pub context: usize,
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
}

impl LvmKind {
    pub const ALL: [LvmKind; 4] = [
        LvmKind::Lstm,
        LvmKind::Gru,
        LvmKind::Amn,
        LvmKind::Transformer,
    ];

    /// The kind's name in configs, checkpoints and tensor names.
    pub fn name(self) -> &'static str {
        match self {
            LvmKind::Lstm => "lstm",
            LvmKind::Gru => "gru",
            LvmKind::Amn => "amn",
            LvmKind::Transformer => "transformer",
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
                    "`{s}` is not an LVM recur trains; use `lstm`, `gru`, `amn` or `transformer`"
                )
            })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LvmModelConfig {
    /// `lstm`, `gru`, `amn` (the attention mixture network; its `d_model`
    /// is the attention width, 256 in the original) or `transformer`.
    #[serde(rename = "type", default = "d_kind")]
    pub kind: LvmKind,
    #[serde(default = "d_d_model", alias = "hidden_dim")]
    pub d_model: usize,
    #[serde(default = "d_layers")]
    pub num_layers: usize,
    /// Attention heads (transformer).
    #[serde(default = "d_heads", alias = "nhead")]
    pub heads: usize,
    /// Feed-forward width (transformer).
    #[serde(default = "d_ff", alias = "dim_feedforward")]
    pub ff: usize,
    /// Training dropout; by default 0.1 for the transformer and 0 for the
    /// others, as the original.
    #[serde(default)]
    pub dropout: Option<f64>,
    /// Where training starts: `pytorch` (PyTorch's default initialisation)
    /// or `average` (the untrained model predicts a recency-weighted
    /// average of the context; needs d_model equal to the vector
    /// dimension except for amn). See recur-models' `start` module.
    #[serde(default = "d_init")]
    pub init: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LvmTrainingConfig {
    /// `mse` or `cosine` (1 - cosine similarity).
    #[serde(default = "d_loss")]
    pub loss: String,
    #[serde(default = "d_lr", alias = "lr")]
    pub learning_rate: f64,
    #[serde(default = "d_wd")]
    pub weight_decay: f64,
    #[serde(default = "d_batch")]
    pub batch_size: usize,
    #[serde(default = "d_epochs")]
    pub epochs: usize,
    /// Global gradient-norm clipping; 0 turns it off.
    #[serde(default = "d_clip")]
    pub grad_clip: f64,
    /// `cosine` (annealing to 0 over the epochs), `plateau` or `none`.
    #[serde(default = "d_schedule")]
    pub schedule: String,
    #[serde(default = "d_factor")]
    pub plateau_factor: f64,
    #[serde(default = "d_patience")]
    pub plateau_patience: usize,
    #[serde(default = "d_seed")]
    pub seed: u64,
}

fn d_val_fraction() -> f64 {
    0.1
}
fn d_context() -> usize {
    5
}
fn d_kind() -> LvmKind {
    LvmKind::Lstm
}
fn d_d_model() -> usize {
    512
}
fn d_init() -> String {
    "pytorch".into()
}
fn d_layers() -> usize {
    4
}
/// The transformer's attention heads and feed-forward width when a config
/// or a stored architecture does not say (PyTorch's defaults).
pub const DEFAULT_HEADS: usize = 8;
pub const DEFAULT_FF: usize = 2048;

fn d_heads() -> usize {
    DEFAULT_HEADS
}
fn d_ff() -> usize {
    DEFAULT_FF
}
fn d_loss() -> String {
    "mse".into()
}
fn d_lr() -> f64 {
    5e-4
}
fn d_wd() -> f64 {
    0.01
}
fn d_batch() -> usize {
    32
}
fn d_epochs() -> usize {
    20
}
fn d_clip() -> f64 {
    1.0
}
fn d_schedule() -> String {
    "cosine".into()
}
fn d_factor() -> f64 {
    0.5
}
fn d_patience() -> usize {
    3
}
fn d_seed() -> u64 {
    42
}

impl Default for LvmModelConfig {
    fn default() -> Self {
        LvmModelConfig {
            kind: d_kind(),
            d_model: d_d_model(),
            num_layers: d_layers(),
            heads: d_heads(),
            ff: d_ff(),
            dropout: None,
            init: d_init(),
        }
    }
}

impl Default for LvmTrainingConfig {
    fn default() -> Self {
        serde_yaml_ng::from_str("{}").expect("every training field has a default")
    }
}

impl LvmConfig {
    /// Reads a YAML file; relative data paths become relative to it.
    pub fn from_file(path: &Path) -> Result<LvmConfig> {
        let origin = path.display().to_string();
        let text = crate::fsx::read_text(path)?;
        let mut cfg: LvmConfig =
            serde_yaml_ng::from_str(&text).map_err(|e| Error::config(&origin, e.to_string()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let rebase = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        rebase(&mut cfg.data.train);
        cfg.data.val.as_mut().map(rebase);
        cfg.data.ood.as_mut().map(rebase);
        cfg.validate(&origin)?;
        Ok(cfg)
    }

    /// Parses YAML text; `origin` names it in errors. Paths stay as written.
    pub fn from_yaml(text: &str, origin: &str) -> Result<LvmConfig> {
        let cfg: LvmConfig =
            serde_yaml_ng::from_str(text).map_err(|e| Error::config(origin, e.to_string()))?;
        cfg.validate(origin)?;
        Ok(cfg)
    }

    pub fn to_yaml(&self) -> String {
        serde_yaml_ng::to_string(self).expect("config serialises")
    }

    /// Checks what serde cannot; names the key at fault.
    pub fn validate(&self, origin: &str) -> Result<()> {
        let bad = |key: &str, msg: String| Err(Error::config(format!("{origin}: {key}"), msg));
        let (m, t, d) = (&self.model, &self.training, &self.data);
        if m.kind == LvmKind::Transformer && (m.heads == 0 || m.d_model % m.heads != 0) {
            return bad(
                "model.heads",
                format!(
                    "d_model {} must be a multiple of heads {}",
                    m.d_model, m.heads
                ),
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
        }
        if m.d_model == 0 || (m.kind != LvmKind::Amn && m.num_layers == 0) {
            return bad("model", "d_model and num_layers must be at least 1".into());
        }
        if d.context == 0 {
            return bad("data.context", "must be at least 1".into());
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
        if !["cosine", "plateau", "none"].contains(&t.schedule.as_str()) {
            return bad(
                "training.schedule",
                format!("`{}`: use `cosine`, `plateau` or `none`", t.schedule),
            );
        }
        if t.learning_rate.is_nan() || t.learning_rate <= 0.0 || t.batch_size == 0 || t.epochs == 0
        {
            return bad(
                "training",
                "learning_rate must be above 0, batch_size and epochs at least 1".into(),
            );
        }
        if t.plateau_factor.is_nan() || t.plateau_factor <= 0.0 || t.plateau_factor >= 1.0 {
            return bad(
                "training.plateau_factor",
                format!("{} must be in (0, 1)", t.plateau_factor),
            );
        }
        Ok(())
    }
}

//! Model directories, of both jobs: the one module that writes, reads and
//! inspects them, so that what training writes is what every command and
//! the service read, checked the same way.
//!
//! A Job A (classifier) directory holds everything `recur eval`, `recur
//! predict` and `/v1/classify` need, and nothing that varies between two
//! runs with the same seed in `report.json` (timings live in
//! `history.json`):
//!
//! ```text
//! config.yaml        the resolved config (data spec, model, training)
//! model.safetensors  weights + architecture + format version + checksum
//! scaler.json        train mean and std per feature
//! features.json      the feature columns, in model input order
//! data.json          how the training data was split; the positive class
//! history.json       per epoch: losses, val AUC, gradient norm, seconds
//! report.json        val and test metrics, best epoch, pos_weight, counts;
//!                    with trees: LSTM, trees and ensemble raw and calibrated
//! selection.json     feature selection's per-feature table (when configured)
//! trees.json         the trained trees (forust's JSON; when configured)
//! ensemble.json      what is deployed: weights, calibrators, thresholds and
//!                    the trees' file with its SHA-256 (crate::predictor)
//! xgboost.json       the user's XGBoost model, copied in (when configured)
//! reference.json     the training rows' distributions, for drift
//! ```
//!
//! A Job B (LVM) directory holds `config.yaml`, `model.safetensors` (the
//! best weights), `final.safetensors`, `training_history.json`,
//! `report.json` and, when validation held out articles, `split.json`; an
//! imported PyTorch model holds `model.safetensors` and `import.json`. The
//! architecture is stored in each checkpoint and checked on load.
//!
//! Every directory is written as a unit with a `manifest.json` of its
//! files' SHA-256 ([`recur_core::dirwrite`]), checked before it loads.

use crate::lvm_eval::{LvmEpoch, LvmReport};
use crate::metrics::Metrics;
use crate::report::EpochRecord;
use candle_core::{Device, Tensor};
use recur_core::checkpoint::{load_checked, read_header, save, Header};
use recur_core::config::Config;
use recur_core::dirwrite::{check_manifest, DirWriter};
use recur_core::fsx::{read_json, write_atomic, write_json};
use recur_core::lvm_config::LvmConfig;
use recur_core::{Error, Result};
use recur_data::prepare::SplitInfo;
use recur_data::{prepare_inference, InferenceData, Scaler};
use recur_models::{Arch, Classifier, Lvm, LvmArch};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const WEIGHTS: &str = "model.safetensors";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub val: Metrics,
    /// `None` when the split has no test part.
    pub test: Option<Metrics>,
    pub best_epoch: usize,
    pub epochs_run: usize,
    pub pos_weight: f64,
    pub n_train: usize,
    pub n_val: usize,
    pub n_test: usize,
    pub features: Vec<String>,
    pub sequence_length: usize,
    pub params: usize,
    pub seed: u64,
    /// How the label was made, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_rule: Option<String>,
    /// Each part's rows, times and base rate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<recur_data::prepare::PartSpan>,
    /// Default features left out as constant on the training rows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub constant_columns: Vec<(String, f64)>,
    /// Feature selection's table, when configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selection: Option<Vec<recur_data::select::FeatureStats>>,
    /// LSTM, trees and ensemble, raw and calibrated, when trees are configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub models: Option<std::collections::BTreeMap<String, crate::report::ModelReport>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<crate::ensemble::Weights>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trees: Option<crate::report::TreesInfo>,
    /// Test AUC of the ensemble minus the best single model's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ensemble_auc_lift: Option<f64>,
    /// ROC curve points per model on test (validation without a test part).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub roc: std::collections::BTreeMap<String, Vec<[f64; 2]>>,
    /// The classes in output order (more than two classes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub classes: Vec<String>,
    /// Temperature scaling (more than two classes): `val` and `test` are
    /// of the calibrated probabilities; this holds the temperature and the
    /// raw figures beside them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<TemperatureFit>,
    /// What the user should know about this model, as training said it:
    /// the data's notes, a fit that learnt nothing, a threshold the cost
    /// matrix pushes off its grid. Kept here so that `--quiet`, Python and
    /// a later `inspect` see them too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// The softmax temperature fit on validation, with the metrics of the
/// uncalibrated probabilities (`temperature` 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemperatureFit {
    pub temperature: f64,
    pub val_raw: Metrics,
    pub test_raw: Option<Metrics>,
}

/// A loaded model directory.
pub struct ModelDir {
    pub config: Config,
    pub model: Classifier,
    pub scaler: Scaler,
    pub info: SplitInfo,
}

impl ModelDir {
    /// The windows of `input` as this model reads them (its features,
    /// scaler, window length and positive class); with `need_labels`, only
    /// labelled windows, and the target must be present.
    pub fn windows_of(&self, input: &Path, need_labels: bool) -> Result<InferenceData> {
        prepare_inference(
            input,
            &self.config,
            &self.scaler,
            self.model.sequence_length(),
            &self.info,
            need_labels,
        )
    }
}

/// What every command that writes a model directory does first:
/// [`check_out_dir`], then takes the directory's lock for the run
/// ([`recur_core::dirwrite::hold`], which puts back what a stopped write
/// left), so that a second run writing it is refused at its start, then
/// checks again and refuses a model directory of the other job (an LVM
/// trained over a classifier replaced it whole). Keep the `Hold` until
/// the model is written.
pub fn begin_out_dir(dir: &Path, kind: DirKind) -> Result<recur_core::dirwrite::Hold> {
    // Before the lock, which leaves its file beside the folder; again
    // after it, which puts back what a stopped write left aside (the old
    // directory itself, after a crash between two renames).
    check_out_dir(dir)?;
    let held = recur_core::dirwrite::hold(dir)?;
    check_out_dir(dir)?;
    if dir.join(recur_core::dirwrite::MANIFEST).is_file() && dir.join(WEIGHTS).is_file() {
        let found = kind_of(dir);
        if found != kind {
            let name = |k: DirKind| match k {
                DirKind::Classifier => "a Job A classifier",
                DirKind::Lvm => "a Job B model (an LVM)",
            };
            return Err(Error::Msg(format!(
                "{} holds {}; writing {} there would replace it: choose another folder (or delete that one first)",
                dir.display(),
                name(found),
                name(kind)
            )));
        }
    }
    Ok(held)
}

/// Refuses to write a model into `dir` when it holds files but is not a
/// recur model directory (no `model.safetensors`): training would replace
/// a stranger's `config.yaml` or `report.json`. Sub-folders that are
/// models themselves are fine (the demo keeps the LVM in `DIR/lvm`), and
/// so are the locks that writing them leaves beside them (`DIR/.lvm.lock`,
/// see [`recur_core::dirwrite`]): without that, `recur demo --part lvm`
/// then `--part classifier` refused the demo's own folder. So are empty
/// folders. Other folders are refused: a folder of folders (`/home`,
/// `/usr`) was taken for a model directory, and swapped aside while the
/// model moved in.
pub fn check_out_dir(dir: &Path) -> Result<()> {
    if dir.exists() && !dir.is_dir() {
        let what = if dir.is_file() {
            "a file"
        } else {
            "not a folder (a device or a pipe)"
        };
        return Err(Error::Msg(format!(
            "{} is {what}; --out names the model directory to write",
            dir.display()
        )));
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    let files: Vec<String> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| !t.is_dir()))
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| !recur_core::dirwrite::is_lock_name(n) && n != ".DS_Store")
        .collect();
    if !files.is_empty() && !dir.join(WEIGHTS).exists() {
        return Err(Error::Msg(format!(
            "{} holds files but is not a recur model directory (no {WEIGHTS}): choose a new or empty folder for --out",
            dir.display()
        )));
    }
    if !dir.join(WEIGHTS).exists() {
        let mut strangers: Vec<String> = std::fs::read_dir(dir)
            .map_err(|e| Error::io(dir, e))?
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| {
                let sub = dir.join(n);
                !n.starts_with('.')
                    && !sub.join(recur_core::dirwrite::MANIFEST).is_file()
                    && std::fs::read_dir(&sub).map_or(true, |mut e| e.next().is_some())
            })
            .collect();
        if !strangers.is_empty() {
            strangers.sort();
            return Err(Error::Msg(format!(
                "{} holds folders that are not recur model directories ({}) and no model of its \
                 own: --out names a model directory, which is replaced as a whole; choose a new \
                 or empty folder",
                dir.display(),
                recur_data::table::list_names(&strangers)
            )));
        }
    }
    // A model directory is replaced as a whole, so a file its manifest
    // does not list (a user's data or config put there) would go with the
    // old one. `report.html` is recur's own, written beside the model.
    // (Hidden files, a .DS_Store or an editor's swap file, are not asked
    // about.) Without a manifest to tell the model's files from others,
    // every other file is a stranger's.
    let manifest = dir.join(recur_core::dirwrite::MANIFEST);
    if files.is_empty() {
        return Ok(());
    }
    let listed = match read_json::<recur_core::dirwrite::Manifest>(&manifest) {
        Ok(m) => m.files,
        Err(e) => {
            return Err(Error::Msg(format!(
                "{} holds a model but no readable {} ({e}), so its files cannot be told from others that writing the model would delete: choose another folder for --out, or empty this one",
                dir.display(),
                recur_core::dirwrite::MANIFEST
            )))
        }
    };
    let foreign: Vec<&str> = files
        .iter()
        .map(String::as_str)
        .filter(|n| {
            *n != recur_core::dirwrite::MANIFEST
                && *n != "report.html"
                && !n.starts_with('.')
                && !listed.contains_key(*n)
        })
        .collect();
    if !foreign.is_empty() {
        return Err(Error::Msg(format!(
            "{} holds files that are not part of its model ({}; {} does not list them): writing the model replaces the directory and would delete them. Move them out, or choose another folder for --out",
            dir.display(),
            foreign.join(", "),
            recur_core::dirwrite::MANIFEST
        )));
    }
    Ok(())
}

/// Writes a classifier's model directory as a unit (see
/// [`recur_core::dirwrite`]): the weights, config, scaler, features, split,
/// history and report, and `extra` files (the trees, the deployment, the
/// selection, the drift reference) by name.
#[allow(clippy::too_many_arguments)]
pub fn save_model_dir(
    dir: &Path,
    cfg: &Config,
    model: &Classifier,
    history: &[EpochRecord],
    scaler: &Scaler,
    info: &SplitInfo,
    report: &Report,
    extra: &[(&str, String)],
) -> Result<()> {
    let w = DirWriter::begin(dir)?;
    let tmp = w.path();
    let mut cfg = cfg.clone();
    recur_core::config_file::absolute_paths(&mut cfg);
    cfg.model.sequence_length = model.sequence_length();
    cfg.data.features = Some(scaler.features.clone());
    // The user's XGBoost model is copied in; the saved config names the
    // copy (relative to the directory, as config paths are to their file).
    if let Some(p) = cfg.trees.as_mut().and_then(|t| t.xgboost_model.as_mut()) {
        *p = std::path::PathBuf::from(crate::predictor::XGBOOST_FILE);
    }
    write_atomic(&tmp.join("config.yaml"), cfg.to_yaml().as_bytes())?;
    save(
        &tmp.join(WEIGHTS),
        &model.snapshot()?,
        &model.arch().to_json(),
    )?;
    write_json(&tmp.join("scaler.json"), scaler)?;
    write_json(&tmp.join("features.json"), &scaler.features)?;
    write_json(&tmp.join("data.json"), info)?;
    write_json(&tmp.join("history.json"), &history)?;
    write_json(&tmp.join("report.json"), report)?;
    for (name, text) in extra {
        write_atomic(&tmp.join(name), text.as_bytes())?;
    }
    w.commit()
}

fn need(dir: &Path, name: &str) -> Result<std::path::PathBuf> {
    let p = dir.join(name);
    if p.exists() {
        return Ok(p);
    }
    // A folder this user may not search (mode 644, another owner) has its
    // files all the same: said as such, not as a file missing.
    let why = match recur_core::fsx::access_denied(dir) {
        Some(why) => why.to_string(),
        None => format!("not a recur model directory: `{name}` is missing (make one with `recur train --config FILE --out DIR`)"),
    };
    Err(Error::checkpoint(dir, why))
}

/// The config a model directory was trained with, checked for what
/// scoring reads ([`Config::from_saved_yaml`]).
pub fn read_config(dir: &Path) -> Result<Config> {
    let cfg_path = need(dir, "config.yaml")?;
    let text = recur_core::fsx::read_text(&cfg_path)?;
    Config::from_saved_yaml(&text, &cfg_path.display().to_string())
}

/// Loads a model directory, checking the weights against the architecture
/// that the saved config and features describe.
pub fn load_model_dir(dir: &Path, dev: &Device) -> Result<ModelDir> {
    recur_core::dirwrite::repair(dir);
    refuse_not_classifier_dir(dir)?;
    check_manifest(dir)?;
    let config = read_config(dir)?;
    let features: Vec<String> = read_json(&need(dir, "features.json")?)?;
    let scaler: Scaler = read_json(&need(dir, "scaler.json")?)?;
    let info: SplitInfo = read_json(&need(dir, "data.json")?)?;
    // The parts in order within the rows (edited with the manifest
    // rewritten, validation covered the training rows, or the test part
    // vanished without a word).
    if let Some(ts) = &info.time_split {
        let bounds = [
            ts.train.start,
            ts.train.end,
            ts.val.start,
            ts.val.end,
            ts.test.start,
            ts.test.end,
        ];
        if bounds.windows(2).any(|w| w[0] > w[1]) || ts.test.end > info.n_rows {
            return Err(Error::checkpoint(
                dir.join("data.json"),
                format!(
                    "time_split {bounds:?} is not train, validation and test in order within its {} rows: the directory was edited; retrain, or restore it",
                    info.n_rows
                ),
            ));
        }
    }
    if scaler.features != features
        || scaler.mean.len() != features.len()
        || scaler.std.len() != features.len()
    {
        return Err(Error::checkpoint(
            dir,
            "scaler.json does not match features.json: the directory was edited by hand",
        ));
    }
    // Training writes a positive std that float32 holds as a normal number
    // (a constant feature gets 1, a feature of tiny values its own, 1e-13);
    // zero, one below float32's normal range (1e-40) or a negative one
    // would scale inputs beyond float32 or flip them, and predict would
    // blame the input file.
    if let Some(j) = (0..scaler.std.len()).find(|&j| {
        !((scaler.std[j] as f32).is_normal() && scaler.std[j] > 0.0 && scaler.mean[j].is_finite())
    }) {
        return Err(Error::checkpoint(
            dir.join("scaler.json"),
            format!(
                "feature `{}` has mean {:e} and std {:e}; a scaler has a finite mean and a positive std within float32's normal range: the directory was edited by hand",
                scaler.features[j], scaler.mean[j], scaler.std[j]
            ),
        ));
    }
    let classes = &info.classes;
    if classes.len() == 1 || (1..classes.len()).any(|i| classes[..i].contains(&classes[i])) {
        return Err(Error::checkpoint(
            dir.join("data.json"),
            format!(
                "`classes` is {classes:?}; a multi-class model lists two or more distinct classes: the directory was edited by hand"
            ),
        ));
    }
    check_config_against_records(dir, &config, &info)?;
    let m = &config.model;
    let arch = Arch::of(m, features.len(), m.sequence_length, info.outputs());
    let weights = need(dir, WEIGHTS)?;
    let tensors = load_checked(&weights, &arch.to_json(), &arch.tensor_specs(), dev)?;
    let model = Classifier::from_tensors(arch, tensors)?;
    Ok(ModelDir {
        config,
        model,
        scaler,
        info,
    })
}

/// What `config.yaml` states that training also recorded elsewhere: the
/// label rule (`data.json`, from `data.target`: horizon, k, the price
/// rule) and the smoothing (`selection.json`'s `ewma_span`). Edited with
/// the manifest rewritten, `predict` and `eval` used the new rule and
/// smoothing on a model trained with the old (labels of 296 rows changed,
/// a test AUC of 0.6574 reported as 0.6165) and `inspect` said all was well.
fn check_config_against_records(dir: &Path, config: &Config, info: &SplitInfo) -> Result<()> {
    let mut differ = Vec::new();
    if let (Some(recorded), Some(stated)) = (
        &info.label_rule,
        recur_data::prepare::label_rule(&config.data),
    ) {
        if *recorded != stated {
            differ.push(format!(
                "data.target gives the label rule \"{stated}\", data.json records \"{recorded}\""
            ));
        }
    }
    let sel = dir.join("selection.json");
    if sel.is_file() {
        let recorded: recur_data::select::Selection = read_json(&sel)?;
        match &config.selection {
            Some(s) if s.ewma_span != recorded.ewma_span => differ.push(format!(
                "selection.ewma_span {}, selection.json records {}",
                s.ewma_span, recorded.ewma_span
            )),
            None => differ.push("no selection section, but selection.json is there".into()),
            _ => {}
        }
    }
    if differ.is_empty() {
        return Ok(());
    }
    Err(Error::checkpoint(
        dir.join("config.yaml"),
        format!(
            "states another model than training recorded ({}): the directory was edited; retrain, or restore it",
            differ.join("; ")
        ),
    ))
}

/// Refuses what is not a Job A model directory with what it is instead: a
/// file, nothing (a dangling link), or an LVM's directory.
pub fn refuse_not_classifier_dir(dir: &Path) -> Result<()> {
    if let Some(why) = recur_core::fsx::access_denied(dir) {
        return Err(Error::data(dir.display().to_string(), why));
    }
    if !dir.is_dir() {
        return Err(Error::data(
            dir.display().to_string(),
            if dir.exists() {
                "is a file, not a model directory: give the folder `recur train --out` wrote"
            } else {
                "no such model directory (or a link that leads nowhere): give the folder `recur train --out` wrote"
            },
        ));
    }
    if holds_lvm(dir) {
        return Err(Error::data(
            dir.display().to_string(),
            "holds a Job B model (an LVM), not a classifier: use `recur lvm predict` or \
             `recur lvm eval` (Python: `recur.load` gives an `Lvm`)",
        ));
    }
    Ok(())
}

/// Reads `history.json` (for `inspect`).
pub fn read_history(dir: &Path) -> Result<Vec<EpochRecord>> {
    read_json(&dir.join("history.json"))
}

// ---- Job B: latent vector models -------------------------------------

/// The best weights of an LVM (the same name as a classifier's weights).
pub const LVM_BEST: &str = WEIGHTS;
pub const LVM_FINAL: &str = "final.safetensors";
pub const LVM_HISTORY: &str = "training_history.json";
/// The articles a model held out for validation, when it split by article.
pub const SPLIT: &str = "split.json";

/// Which articles of the training file a model never trained on, so that
/// `eval` and `leaderboard` can score it on exactly those (`--heldout`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeldOut {
    pub data: PathBuf,
    /// SHA-256 of the training file: `--heldout` refuses another file,
    /// whose article indices would name other articles.
    pub data_sha256: String,
    pub val_fraction: f64,
    pub seed: u64,
    pub val_articles: Vec<i64>,
}

impl HeldOut {
    /// The held-out articles `val_articles` of `data`, with its SHA-256.
    pub fn of(
        data: &Path,
        val_fraction: f64,
        seed: u64,
        val_articles: Vec<i64>,
    ) -> Result<HeldOut> {
        Ok(HeldOut {
            data: data.to_path_buf(),
            data_sha256: recur_core::fsx::sha256_file(data)?,
            val_fraction,
            seed,
            val_articles,
        })
    }
}

/// The held-out articles of a model directory, if it split by article.
pub fn held_out(dir: &Path) -> Result<Option<HeldOut>> {
    let p = dir.join(SPLIT);
    if !p.exists() {
        return Ok(None);
    }
    read_json(&p).map(Some)
}

/// The windows of `data` from the articles `models` held out when they
/// trained (their `split.json`), and how many articles that is. Every
/// model must have held out the same articles, and `data` must be the very
/// file they trained on (by SHA-256), since article indices name other
/// articles in another file.
pub fn held_out_windows(
    w: &recur_data::npz::VectorWindows,
    data: &Path,
    models: &[&Path],
) -> Result<(recur_data::npz::VectorWindows, usize)> {
    let mut first: Option<(&Path, HeldOut)> = None;
    for &m in models {
        let h = held_out(m)?.ok_or_else(|| {
            Error::Msg(format!(
                "{}: no {SPLIT} here (the model was trained with a data.val file, on windows \
                 without article_indices, or imported); give its validation file as --data \
                 instead of --heldout",
                m.display()
            ))
        })?;
        match &first {
            None => first = Some((m, h)),
            Some((f, fh)) if fh.val_articles != h.val_articles => {
                // Trained on other files, the articles differ for that
                // (and were blamed on val_fraction or seed).
                let why = if fh.data_sha256 != h.data_sha256 {
                    format!(
                        "they trained on different files ({} and {})",
                        fh.data.display(),
                        h.data.display()
                    )
                } else {
                    "val_fraction or seed differ".to_string()
                };
                return Err(Error::Msg(format!(
                    "{} and {} held out different articles ({why}); compare them on a separate \
                     validation file",
                    f.display(),
                    m.display()
                )));
            }
            Some(_) => {}
        }
    }
    let (m0, h) = first.ok_or_else(|| Error::Msg("no model given".into()))?;
    let sha = recur_core::fsx::sha256_file(data)?;
    if sha != h.data_sha256 {
        return Err(Error::Msg(format!(
            "{} is not the file {} trained on ({}); --heldout needs that very file, since \
             article indices name different articles in another one",
            data.display(),
            m0.display(),
            h.data.display()
        )));
    }
    let keep: std::collections::HashSet<i64> = h.val_articles.iter().copied().collect();
    let v = w.of_articles(&keep).ok_or_else(|| {
        Error::Msg(format!(
            "{}: the file gives no article of each window, so --heldout cannot pick them",
            data.display()
        ))
    })?;
    if v.is_empty() {
        return Err(Error::Msg(format!(
            "{}: none of the {} held-out articles is in this file; --heldout takes the file the model trained on ({})",
            data.display(),
            keep.len(),
            h.data.display()
        )));
    }
    Ok((v, keep.len()))
}

/// Writes an LVM model directory (each file atomically): `best` and
/// `last` (the weights of the best and of the last epoch) of the model
/// `trained` describes; `held` is the
/// article split, when validation held articles out (a `split.json` left
/// by an earlier run into the folder is removed otherwise).
#[allow(clippy::too_many_arguments)]
pub fn save_lvm_dir(
    dir: &Path,
    cfg: &LvmConfig,
    trained: &Lvm,
    best: &[(String, Tensor)],
    last: &[(String, Tensor)],
    history: &[LvmEpoch],
    report: &LvmReport,
    held: Option<&HeldOut>,
) -> Result<()> {
    let w = DirWriter::begin(dir)?;
    let tmp = w.path();
    let arch = trained.arch.to_json();
    save(&tmp.join(LVM_BEST), best, &arch)?;
    save(&tmp.join(LVM_FINAL), last, &arch)?;
    let mut cfg = cfg.clone();
    recur_core::config_file::absolute_paths(&mut cfg);
    write_atomic(&tmp.join("config.yaml"), cfg.to_yaml().as_bytes())?;
    write_json(&tmp.join(LVM_HISTORY), &history)?;
    write_json(&tmp.join("report.json"), report)?;
    if let Some(h) = held {
        // By absolute path, as config.yaml names it.
        let mut h = h.clone();
        if h.data.is_relative() {
            if let Ok(a) = std::fs::canonicalize(&h.data) {
                h.data = a;
            }
        }
        write_json(&tmp.join(SPLIT), &h)?;
    }
    w.commit()
}

/// Refuses an LVM directory whose `config.yaml` states another model
/// than its weights' header (edited with the manifest rewritten, `type:
/// gru` over LSTM weights was ignored and `inspect` said OK).
fn check_lvm_config(dir: &Path, arch: &LvmArch) -> Result<()> {
    check_import_record(dir, arch)?;
    let p = dir.join("config.yaml");
    if !p.is_file() {
        return Ok(());
    }
    let text = recur_core::fsx::read_text_bounded(&p, recur_core::config_file::MAX_CONFIG_BYTES)?;
    let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text)
        .map_err(|e| Error::checkpoint(&p, format!("not YAML ({e})")))?;
    let stated = |a: &str, b: &str| v.get(a).and_then(|s| s.get(b)).cloned();
    let num = |a: &str, b: &str| stated(a, b).and_then(|x| x.as_u64());
    let mut differ = Vec::new();
    if let Some(t) = stated("model", "type").and_then(|t| t.as_str().map(str::to_string)) {
        if t != arch.kind.name() {
            differ.push(format!("model.type {t}, the weights {}", arch.kind.name()));
        }
    }
    let mut sizes = vec![
        ("model", "d_model", arch.d_model),
        ("data", "context", arch.context),
    ];
    if arch.kind != recur_models::lvm::LvmKind::Amn {
        sizes.push(("model", "num_layers", arch.num_layers));
    }
    // No tensor's shape shows a transformer's heads (nor, beside its
    // weights, anything but ff): the config states them.
    if arch.kind == recur_models::lvm::LvmKind::Transformer {
        sizes.push(("model", "heads", arch.heads));
        sizes.push(("model", "ff", arch.ff));
    }
    for (a, b, have) in sizes {
        if let Some(n) = num(a, b).filter(|&n| n != have as u64) {
            differ.push(format!("{a}.{b} {n}, the weights {have}"));
        }
    }
    if differ.is_empty() {
        return Ok(());
    }
    Err(Error::checkpoint(
        &p,
        format!(
            "states another model than model.safetensors ({}): the directory was edited; retrain, or restore it",
            differ.join("; ")
        ),
    ))
}

/// An imported directory's `import.json` records the architecture it was
/// written with; one that differs from the weights' header was edited.
fn check_import_record(dir: &Path, arch: &LvmArch) -> Result<()> {
    let p = dir.join("import.json");
    if !p.is_file() {
        return Ok(());
    }
    let text = recur_core::fsx::read_text_bounded(&p, recur_core::config_file::MAX_CONFIG_BYTES)?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::checkpoint(&p, format!("not JSON ({e})")))?;
    let Some(recorded) = v.get("architecture") else {
        return Ok(());
    };
    let recorded: LvmArch = serde_json::from_value(recorded.clone()).map_err(|e| {
        Error::checkpoint(
            &p,
            format!("`architecture` is not an LVM architecture ({e})"),
        )
    })?;
    if recorded.to_json() == arch.to_json() {
        return Ok(());
    }
    Err(Error::checkpoint(
        &p,
        format!(
            "records another architecture than model.safetensors ({} against {}): the directory was edited; import the checkpoint again",
            recorded.to_json(),
            arch.to_json()
        ),
    ))
}

/// Writes an imported checkpoint as an LVM model directory: the weights
/// and `import.json` (where they came from, as an absolute path and the
/// file's SHA-256: the path as typed was relative to the folder the import
/// ran in, and named nothing from anywhere else; the source's own config).
pub fn save_imported_lvm(
    dir: &Path,
    source: &Path,
    tensors: &[(String, Tensor)],
    arch: &LvmArch,
    source_config: &serde_json::Value,
) -> Result<()> {
    let absolute = recur_core::fsx::resolve(source).unwrap_or_else(|| source.to_path_buf());
    // Null where the source cannot be read again (a library caller's
    // tensors from elsewhere).
    let sha256 = recur_core::fsx::sha256_file(source).ok();
    let w = DirWriter::begin(dir)?;
    save(&w.path().join(LVM_BEST), tensors, &arch.to_json())?;
    write_json(
        &w.path().join("import.json"),
        &serde_json::json!({
            "source": absolute.display().to_string(),
            "source_sha256": sha256,
            "architecture": arch,
            "model_config": source_config,
        }),
    )?;
    w.commit()
}

/// Loads the best weights of an LVM directory (or a checkpoint file),
/// checking the stored architecture against the tensors the code expects,
/// as a model for inference ([`Lvm::for_inference`]: a `lstm` or `gru`
/// LVM also packs its weights once for forwards of a few contexts).
///
/// ```no_run
/// # fn main() -> recur_core::Result<()> {
/// use recur_deploy::{lvm_eval, model_dir};
/// let dev = candle_core::Device::Cpu;
/// let m = model_dir::load_lvm("runs/demo/lvm".as_ref(), &dev)?;
/// let silent = &recur_core::progress::SILENT;
/// let w = lvm_eval::read_windows_for("runs/corpus/ood.npz".as_ref(), &m, None, silent)?;
/// let next: Vec<f32> = lvm_eval::predict(&m, &w, &dev)?; // [windows, dim], row-major
/// print!("{}", lvm_eval::report(&m, &w, None, &dev)?); // against the baselines
/// # Ok(())
/// # }
/// ```
pub fn load_lvm(path: &Path, dev: &Device) -> Result<Lvm> {
    if let Some(why) = recur_core::fsx::access_denied(path) {
        return Err(Error::data(path.display().to_string(), why));
    }
    if path.is_dir() || !path.exists() {
        recur_core::dirwrite::repair(path);
    }
    let file = if path.is_dir() {
        check_manifest(path)?;
        path.join(LVM_BEST)
    } else {
        path.to_path_buf()
    };
    if !file.exists() {
        return Err(Error::data(
            path.display().to_string(),
            if path.exists() {
                format!("no {LVM_BEST} here: not a recur LVM model directory (train one with `recur lvm train`)")
            } else {
                "no such file or folder: give the folder `recur lvm train` or `recur import-torch` \
                 wrote, or a .safetensors file"
                    .to_string()
            },
        ));
    }
    let header = read_header(&file)?;
    if let Some(why) = header.architecture_damage {
        return Err(Error::data(file.display().to_string(), why));
    }
    let stated = header.architecture.clone();
    let arch: LvmArch = header
        .architecture
        .and_then(|a| serde_json::from_value(a).ok())
        .ok_or_else(|| {
            let kind = stated
                .as_ref()
                .and_then(|a| a.get("kind")?.as_str().map(str::to_string));
            Error::data(
                file.display().to_string(),
                match kind {
                    Some(k) if recur_models::classifiers::KINDS.contains(&k.as_str()) => format!(
                        "holds a Job A classifier ({k}), not an LVM: score it with `recur predict` (Python: `recur.load`), or serve it as a serve config's `classifier:`"
                    ),
                    _ => "the header holds no LVM architecture (kind lstm, gru, amn, transformer or mlp)"
                        .into(),
                },
            )
        })?;
    let specs = Lvm::tensor_specs(&arch)
        .map_err(|e| Error::data(file.display().to_string(), e.to_string()))?;
    if path.is_dir() {
        check_lvm_config(path, &arch)?;
    }
    let tensors = load_checked(&file, &arch.to_json(), &specs, dev)?;
    // A loaded model does not change: pack it once for serving.
    Ok(Lvm::from_tensors(arch, tensors)?.for_inference()?)
}

// ---- Both: what a directory is and whether it loads --------------------

/// Which job a model directory belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DirKind {
    Classifier,
    Lvm,
}

/// Whether `dir` holds a Job B model (its weights, and their architecture
/// or its files say an LVM): what commands of Job A refuse by name.
pub fn holds_lvm(dir: &Path) -> bool {
    dir.join(WEIGHTS).is_file() && kind_of(dir) == DirKind::Lvm
}

/// Which job wrote a directory, from its weights' stored architecture (a
/// classifier's kind is one of [`recur_models::classifiers::KINDS`]), else
/// from its files.
pub fn kind_of(dir: &Path) -> DirKind {
    // A damaged architecture names no kind: the files decide, and the
    // loader then reports the damage.
    let kind = read_header(&dir.join(WEIGHTS))
        .ok()
        .filter(|h| h.architecture_damage.is_none())
        .and_then(|h| {
            h.architecture
                .and_then(|a| a.get("kind").and_then(|k| k.as_str().map(str::to_string)))
        });
    match kind.as_deref() {
        Some(k) if recur_models::classifiers::KINDS.contains(&k) => DirKind::Classifier,
        Some(_) => DirKind::Lvm,
        None if dir.join("features.json").exists() => DirKind::Classifier,
        None => DirKind::Lvm,
    }
}

/// What `recur inspect` shows: the weights' header, and for a directory
/// its kind, whether it passes every load check, and its training summary.
pub struct Inspection {
    pub weights: PathBuf,
    pub header: Header,
    pub kind: Option<DirKind>,
    /// `Ok(what was checked)` or `Err(why it does not load)`.
    pub checks: Option<std::result::Result<String, String>>,
    /// Lines on training: epochs, time, best epoch and scores.
    pub summary: Vec<String>,
}

fn opt(v: Option<f64>) -> String {
    v.map_or("n/a".into(), |v| format!("{v:.4}"))
}

/// Inspects a model directory (of either job) or a weights file.
pub fn inspect(path: &Path, dev: &Device) -> Result<Inspection> {
    if !path.exists() {
        recur_core::dirwrite::repair(path);
    }
    if let Some(why) = recur_core::fsx::access_denied(path) {
        return Err(Error::data(path.display().to_string(), why));
    }
    let (dir, weights) = if path.is_dir() {
        (Some(path), path.join(WEIGHTS))
    } else {
        (None, path.to_path_buf())
    };
    if dir.is_some() && !weights.exists() {
        return Err(Error::data(
            path.display().to_string(),
            format!(
                "is not a model directory (no {WEIGHTS}): give the folder `recur train`, \
                 `recur lvm train` or `recur import-torch` wrote, or a .safetensors file"
            ),
        ));
    }
    let header = read_header(&weights).map_err(|e| {
        let ext = weights
            .extension()
            .map(|x| x.to_string_lossy().to_lowercase());
        // Said of a file whose bytes are no safetensors header at all (a
        // CSV "may be truncated or corrupted"); other messages, such as a
        // NumPy archive's, already say what it is.
        let named = ext.as_deref() == Some("safetensors");
        if dir.is_none()
            && !named
            && weights.is_file()
            && e.to_string().contains("not a readable safetensors file")
        {
            let what = ext.map_or("a file without an extension".into(), |x| {
                format!("a .{x} file")
            });
            Error::data(
                weights.display().to_string(),
                format!(
                    "is not a safetensors file ({what}): `recur inspect` takes a model \
                     directory or a .safetensors file"
                ),
            )
        } else {
            e
        }
    })?;
    let mut out = Inspection {
        weights,
        header,
        kind: None,
        checks: None,
        summary: Vec::new(),
    };
    let Some(dir) = dir else { return Ok(out) };
    if !dir.join(recur_core::dirwrite::MANIFEST).is_file() {
        out.summary.push(format!(
            "no {}: the files were not checked against the digests recur writes (a directory recur wrote has one)",
            recur_core::dirwrite::MANIFEST
        ));
    }
    let kind = kind_of(dir);
    out.kind = Some(kind);
    match kind {
        DirKind::Classifier => {
            let loaded = crate::predictor::Predictor::load(dir, dev);
            let deployed = loaded.as_ref().ok().map(|p| p.deployed().to_string());
            out.checks = Some(
                loaded
                    .map(|p| {
                        format!(
                            "every tensor name and shape matches {}; {} features; {}; deployed: {} at threshold {:.4}",
                            p.dir.model.arch().kind(),
                            p.features().len(),
                            p.deployment.trees.as_ref().map_or("no trees".to_string(), |t| format!(
                                "{} trees in {} (SHA-256 matches)",
                                t.source, t.file
                            )),
                            p.deployed(),
                            p.threshold()
                        )
                    })
                    .map_err(|e| e.to_string()),
            );
            if let Ok(hist) = read_history(dir) {
                let secs: f64 = hist.iter().map(|e| e.seconds).sum();
                out.summary
                    .push(format!("training: {} epochs in {secs:.1}s", hist.len()));
            }
            if let Ok(r) = read_json::<Report>(&dir.join("report.json")) {
                // The report's top figures are the LSTM's raw ones; the
                // deployed model (an ensemble, calibrated) has its own.
                // With more than two classes they are after the
                // temperature, and the raw ones sit beside it.
                out.summary.push(match &r.temperature {
                    None => format!(
                        "best epoch {}; the LSTM (raw): val AUC {}; test AUC {}",
                        r.best_epoch,
                        opt(r.val.auc),
                        opt(r.test.as_ref().and_then(|t| t.auc))
                    ),
                    Some(t) => format!(
                        "best epoch {}; the LSTM (raw): val AUC {}; test AUC {}; at temperature \
                         {:.4}: val AUC {}; test AUC {}",
                        r.best_epoch,
                        opt(t.val_raw.auc),
                        opt(t.test_raw.as_ref().and_then(|m| m.auc)),
                        t.temperature,
                        opt(r.val.auc),
                        opt(r.test.as_ref().and_then(|m| m.auc))
                    ),
                });
                if let Some((name, m)) = deployed.and_then(|d| {
                    let m = r.models.as_ref()?.get(&d)?.clone();
                    Some((d, m))
                }) {
                    out.summary.push(format!(
                        "deployed {name} (calibrated): val AUC {}; test AUC {}",
                        opt(m.calibrated.val.auc),
                        opt(m.calibrated.test.as_ref().and_then(|t| t.auc))
                    ));
                }
                out.summary
                    .extend(r.warnings.iter().map(|w| format!("note: {w}")));
            }
        }
        DirKind::Lvm => {
            out.checks = Some(
                load_lvm(dir, dev)
                    .map(|m| {
                        format!(
                            "every tensor name and shape matches the {} LVM; context {}, {}-D",
                            m.arch.kind, m.arch.context, m.arch.input_dim
                        )
                    })
                    .map_err(|e| e.to_string()),
            );
            if let Ok(r) = read_json::<LvmReport>(&dir.join("report.json")) {
                out.summary.push(format!(
                    "best epoch {}; validation cosine {:.4}; OOD cosine {}",
                    r.best_epoch.map_or("n/a".into(), |e| e.to_string()),
                    r.scores.val.cosine_mean,
                    opt(r.scores.ood.map(|o| o.cosine_mean))
                ));
            }
            if let Some(h) = held_out(dir).ok().flatten() {
                out.summary.push(format!(
                    "validation: {} articles of {} held out (split.json)",
                    h.val_articles.len(),
                    h.data.display()
                ));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inspect_names_a_folder_or_file_that_is_no_model() {
        let t = tempfile::tempdir().unwrap();
        let dev = Device::Cpu;
        let e = inspect(t.path(), &dev).err().unwrap().to_string();
        assert!(
            e.contains("is not a model directory (no model.safetensors)"),
            "{e}"
        );
        let csv = t.path().join("d.csv");
        std::fs::write(&csv, "a,b\n1,2\n").unwrap();
        let e = inspect(&csv, &dev).err().unwrap().to_string();
        assert!(
            e.contains("d.csv") && e.contains("is not a safetensors file (a .csv file)"),
            "{e}"
        );
        let bare = t.path().join("noext");
        std::fs::write(&bare, "a,b\n1,2\n").unwrap();
        let e = inspect(&bare, &dev).err().unwrap().to_string();
        assert!(e.contains("(a file without an extension)"), "{e}");
    }

    #[test]
    fn an_out_dir_with_a_sub_model_and_its_lock_is_accepted_and_a_strangers_file_is_not() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("demo");
        // What `recur demo --part lvm` leaves: DIR/lvm and its lock.
        std::fs::create_dir_all(dir.join("lvm")).unwrap();
        std::fs::write(dir.join(".lvm.lock"), b"").unwrap();
        check_out_dir(&dir).unwrap();
        std::fs::write(dir.join("config.yaml"), b"mine").unwrap();
        let e = check_out_dir(&dir).unwrap_err().to_string();
        assert!(
            e.contains("not a recur model directory") && e.contains("demo"),
            "{e}"
        );
        std::fs::remove_file(dir.join("config.yaml")).unwrap();
        // A bare ".lock" is a file like any other.
        std::fs::write(dir.join(".lock"), b"").unwrap();
        assert!(check_out_dir(&dir).is_err());
        std::fs::remove_file(dir.join(".lock")).unwrap();
        // A folder of folders that are not models (`/home`) is not taken
        // for a model directory; one whose folders are models is.
        std::fs::create_dir_all(dir.join("alice/docs")).unwrap();
        let e = check_out_dir(&dir).unwrap_err().to_string();
        assert!(
            e.contains("holds folders that are not recur model directories (alice)"),
            "{e}"
        );
        std::fs::write(
            dir.join("alice").join(recur_core::dirwrite::MANIFEST),
            b"{}",
        )
        .unwrap();
        check_out_dir(&dir).unwrap();
        std::fs::remove_dir_all(dir.join("alice")).unwrap();
        // A model directory: its own files, its manifest and report.html
        // are fine; a file the manifest does not list is named and kept.
        let w = recur_core::dirwrite::DirWriter::begin(&dir).unwrap();
        std::fs::write(w.path().join(WEIGHTS), b"w").unwrap();
        std::fs::write(w.path().join("config.yaml"), b"c").unwrap();
        std::fs::write(w.path().join("features.json"), b"[]").unwrap();
        w.commit().unwrap();
        std::fs::write(dir.join("report.html"), b"<html>").unwrap();
        check_out_dir(&dir).unwrap();
        std::fs::write(dir.join("train.csv"), b"a,b").unwrap();
        let e = check_out_dir(&dir).unwrap_err().to_string();
        assert!(
            e.contains("train.csv") && e.contains("not part of its model"),
            "{e}"
        );
        assert!(dir.join("train.csv").exists() && dir.join("lvm").is_dir());
        std::fs::remove_file(dir.join("train.csv")).unwrap();
        std::fs::write(dir.join(".DS_Store"), b"").unwrap();
        check_out_dir(&dir).unwrap();
        // A model of the other job is not written over (an LVM trained
        // into a classifier's folder replaced it whole).
        let e = begin_out_dir(&dir, DirKind::Lvm).err().unwrap().to_string();
        assert!(
            e.contains("holds a Job A classifier") && e.contains("writing a Job B model (an LVM)"),
            "{e}"
        );
        drop(begin_out_dir(&dir, DirKind::Classifier).unwrap());
        // No manifest: its files cannot be told from a user's.
        std::fs::remove_file(dir.join(recur_core::dirwrite::MANIFEST)).unwrap();
        let e = check_out_dir(&dir).unwrap_err().to_string();
        assert!(e.contains("no readable manifest.json"), "{e}");
    }
}

//! `recur drift`: a model directory's training reference against a new
//! file, feature by feature (PSI, KS, mean, autocorrelation and noise
//! ratio shifts, at the thresholds of the model's `drift:` config).

use recur_core::job_a::DriftThresholds;
use recur_core::{Error, Result};
use recur_data::drift::{compare, FeatureDrift, Reference, REFERENCE_FILE};
use std::path::{Path, PathBuf};

/// The drift of every feature of `input` against the model's reference.
#[derive(Debug, Clone)]
pub struct DriftCheck {
    /// The model directory and the file compared with it.
    pub model: PathBuf,
    pub input: PathBuf,
    pub table: Vec<FeatureDrift>,
    /// Rows of `input` compared, and of the training reference.
    pub rows: usize,
    pub reference_rows: usize,
    pub thresholds: DriftThresholds,
}

impl DriftCheck {
    /// How many features drifted.
    pub fn drifted(&self) -> usize {
        self.table.iter().filter(|d| d.drift).count()
    }
}

/// Compares `input` with the training reference of the model in `model`.
///
/// ```no_run
/// # fn main() -> recur_core::Result<()> {
/// let check = recur_deploy::drift::check("runs/demo".as_ref(), "new.csv".as_ref())?;
/// if check.drifted() > 0 {
///     print!("{check}"); // the table `recur drift` prints
/// }
/// # Ok(())
/// # }
/// ```
pub fn check(model: &Path, input: &Path) -> Result<DriftCheck> {
    check_with(model, input, &Overrides::default())
}

/// Thresholds given for one check (`recur drift --psi ...`), over the
/// model's `drift:` ones. The model's own are changed by training it with
/// another `drift:` section: an edited `config.yaml` no longer matches the
/// manifest, and every command refuses the directory.
#[derive(Debug, Clone, Copy, Default)]
pub struct Overrides {
    pub psi: Option<f64>,
    pub ks: Option<f64>,
    pub mean_shift: Option<f64>,
    pub autocorr_shift: Option<f64>,
    pub noise_ratio_shift: Option<f64>,
}

/// [`check`] at the thresholds `over` gives, the model's elsewhere.
pub fn check_with(model: &Path, input: &Path, over: &Overrides) -> Result<DriftCheck> {
    crate::model_dir::refuse_not_classifier_dir(model)?;
    // The model directory as training wrote it, as every command reads it
    // (the thresholds once read as editable in config.yaml made the
    // directory fail everywhere else: they are given with `over` now).
    recur_core::dirwrite::check_manifest(model)?;
    let mut cfg = crate::model_dir::read_config(model)?;
    for (name, v, slot) in [
        ("psi", over.psi, &mut cfg.drift.psi),
        ("ks", over.ks, &mut cfg.drift.ks),
        ("mean-shift", over.mean_shift, &mut cfg.drift.mean_shift),
        (
            "autocorr-shift",
            over.autocorr_shift,
            &mut cfg.drift.autocorr_shift,
        ),
        (
            "noise-ratio-shift",
            over.noise_ratio_shift,
            &mut cfg.drift.noise_ratio_shift,
        ),
    ] {
        if let Some(v) = v {
            if !(v.is_finite() && v > 0.0) {
                return Err(Error::Msg(format!(
                    "--{name} {v}: a threshold is a finite number above 0"
                )));
            }
            *slot = v;
        }
    }
    let Some(reference) = Reference::read(model)? else {
        return Err(Error::Msg(format!(
            "{} has no {REFERENCE_FILE}: it was trained before recur kept the training reference; train it again",
            model.display()
        )));
    };
    let features: Vec<String> = reference
        .features
        .iter()
        .map(|f| f.feature.clone())
        .collect();
    // The features the model reads, as every command reads them: a
    // reference edited to others (with the manifest rewritten) checked
    // 2 of 9, or blamed the input for a column named only there.
    let model_features: Vec<String> = recur_core::fsx::read_json(&model.join("features.json"))?;
    if features != model_features {
        return Err(Error::checkpoint(
            model.join(REFERENCE_FILE),
            format!(
                "lists the features {}, but the model reads {} (features.json): the directory was edited; retrain, or restore it",
                features.join(", "),
                model_features.join(", ")
            ),
        ));
    }
    let values = recur_data::prepare::feature_values(input, &cfg, &features)?;
    let table = compare(&reference, &values, &cfg.drift)
        .map_err(|e| Error::data(input.display().to_string(), e.to_string()))?;
    Ok(DriftCheck {
        model: model.to_path_buf(),
        input: input.to_path_buf(),
        table,
        rows: values.len() / features.len().max(1),
        reference_rows: reference.features.first().map_or(0, |f| f.rows),
        thresholds: cfg.drift.clone(),
    })
}

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
    // The reference as training wrote it (the thresholds in config.yaml
    // may be edited; the training rows' summary may not).
    crate::model_dir::refuse_not_classifier_dir(model)?;
    recur_core::dirwrite::check_listed(model, REFERENCE_FILE)?;
    let cfg = crate::model_dir::read_config(model)?;
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
    let values = recur_data::prepare::feature_values(input, &cfg, &features)?;
    let table = compare(&reference, &values, &cfg.drift)?;
    Ok(DriftCheck {
        model: model.to_path_buf(),
        input: input.to_path_buf(),
        table,
        rows: values.len() / features.len().max(1),
        reference_rows: reference.features.first().map_or(0, |f| f.rows),
        thresholds: cfg.drift.clone(),
    })
}

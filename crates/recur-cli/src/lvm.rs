//! `recur lvm train|eval|predict` and `recur tune` on an LVM config:
//! argument handling and tables for Job B; the work is in recur_train's
//! lvm and tune_lvm and recur_deploy::lvm_eval.

use crate::LvmCmd;
use anyhow::Result;
use candle_core::Device;
use recur_core::lvm_config::LvmConfig;
use recur_data::npz::VectorWindows;
use recur_deploy::lvm_eval::{self, LvmReport};
use recur_deploy::model_dir;
use recur_train::lvm;
use std::path::Path;

/// `recur tune --config LVM.yaml`: the search, a line per finished trial
/// on stderr, the table and the best config on stdout.
pub fn tune(
    config: &Path,
    trials: usize,
    jobs: usize,
    out: &Path,
    dev: &Device,
    progress: bool,
    precision: Option<String>,
) -> Result<()> {
    use recur_train::tune_lvm::{tune_lvm, LvmTrial, LVM_TRIAL_HEADER};
    let mut cfg = LvmConfig::from_file(config)?;
    if let Some(p) = precision {
        cfg.training.precision = p;
    }
    // The header above the first finished trial, after the data's notes.
    let header = std::sync::Once::new();
    let each = |t: &LvmTrial| {
        if progress {
            header.call_once(|| errln!("{LVM_TRIAL_HEADER}"));
            errln!("{t}");
        }
    };
    let notes = crate::bars::reporter(progress);
    let r = tune_lvm(&cfg, trials, jobs, out, dev, notes, &each)?;
    if r.resumed > 0 {
        let from = out.join("trials.json");
        outln!("resumed from {} trials in {}", r.resumed, from.display());
    }
    out!("{r}");
    Ok(())
}

pub fn run(cmd: LvmCmd, dev: &Device, progress: bool, precision: Option<String>) -> Result<()> {
    match cmd {
        LvmCmd::Train { config, out } => {
            let mut cfg = LvmConfig::from_file(&config)?;
            if let Some(p) = precision {
                cfg.training.precision = p;
            }
            let out = out.unwrap_or_else(|| recur_core::config::default_out_dir(&config));
            train(&cfg, &out, dev, progress)?;
            Ok(())
        }
        LvmCmd::Eval {
            model,
            data,
            ood,
            json,
            heldout,
        } => {
            let inputs = Vec::from_iter(std::iter::once(data.as_path()).chain(ood.as_deref()));
            recur_core::fsx::check_io(&inputs, &[&model], &Vec::from_iter(json.as_deref()))?;
            let m = model_dir::load_lvm(&model, dev)?;
            let mut val = load_for(&data, &m, None)?;
            if heldout {
                val = held_out_windows(&val, &data, &[&model])?;
            }
            let ood = ood.as_ref().map(|p| load_for(p, &m, None)).transpose()?;
            let report = lvm_eval::report(&m, &val, ood.as_ref(), dev)?;
            if let Some(j) = json {
                recur_core::fsx::write_json(&j, &report)?;
            }
            out!("{report}");
            Ok(())
        }
        LvmCmd::Leaderboard {
            models,
            data,
            ood,
            json,
            markdown,
            heldout,
        } => {
            use recur_deploy::leaderboard;
            let inputs = Vec::from_iter(std::iter::once(data.as_path()).chain(ood.as_deref()));
            let dirs = Vec::from_iter(models.iter().map(|m| m.as_path()));
            let outputs = Vec::from_iter(json.as_deref().into_iter().chain(markdown.as_deref()));
            recur_core::fsx::check_io(&inputs, &dirs, &outputs)?;
            let entries = leaderboard::run(
                &models,
                &data,
                ood.as_deref(),
                heldout,
                dev,
                crate::bars::reporter(progress),
            )?;
            let md = leaderboard::markdown(&entries);
            if let Some(p) = markdown {
                recur_core::fsx::write_atomic(&p, md.as_bytes())?;
            }
            if let Some(p) = json {
                recur_core::fsx::write_json(&p, &entries)?;
            }
            out!("{md}");
            Ok(())
        }
        LvmCmd::Predict {
            model,
            data,
            output,
            min_context,
        } => {
            recur_core::fsx::check_outputs(&data, &model, &[&output])?;
            crate::text::note_format(&output, &["npy"], "a NumPy .npy array");
            let m = model_dir::load_lvm(&model, dev)?;
            let w =
                lvm_eval::read_contexts_for(&data, &m, min_context, crate::bars::reporter(true))?;
            let pred = lvm_eval::predict(&m, &w, dev)?;
            recur_data::npz::write_npy(&output, &pred, &[w.len(), w.dim])?;
            outln!(
                "{} predicted vectors of dimension {} written to {}",
                w.len(),
                w.dim,
                crate::shown(&output)
            );
            Ok(())
        }
    }
}

/// Trains the LVM of `cfg` into `out`, prints the table against the
/// baselines, and returns the report.
pub fn train(cfg: &LvmConfig, out: &Path, dev: &Device, progress: bool) -> Result<LvmReport> {
    let t = lvm::train_to_dir(cfg, out, dev, crate::bars::reporter(progress))?;
    out!("{}", t.report);
    outln!(
        "\nbest epoch {} of {}; model written to {}",
        t.best_epoch,
        t.epochs,
        crate::shown(out)
    );
    Ok(t.report)
}

/// The windows of `path` for model `m`, with the short ones of
/// `min_context` (notes on stderr).
fn load_for(
    path: &Path,
    m: &recur_models::Lvm,
    min_context: Option<usize>,
) -> Result<VectorWindows> {
    Ok(lvm_eval::read_windows_for(
        path,
        m,
        min_context,
        crate::bars::reporter(true),
    )?)
}

/// The held-out windows of `data` for `models`, with a line saying so.
fn held_out_windows(w: &VectorWindows, data: &Path, models: &[&Path]) -> Result<VectorWindows> {
    let (v, articles) = model_dir::held_out_windows(w, data, models)?;
    outln!(
        "validation: {} windows of the {articles} articles the model{} held out",
        v.len(),
        if models.len() > 1 { "s" } else { "" }
    );
    Ok(v)
}

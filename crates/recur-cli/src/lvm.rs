//! `recur lvm train|eval|predict`: argument handling and tables for Job B;
//! the work is in recur_train::lvm and recur_deploy::lvm_eval.

use crate::LvmCmd;
use anyhow::{Context, Result};
use candle_core::Device;
use recur_core::lvm_config::LvmConfig;
use recur_data::npz::{read_windows, split_by_article, VectorWindows};
use recur_deploy::lvm_eval::{self, LvmReport, Stats};
use recur_deploy::model_dir;
use recur_train::lvm;
use std::path::{Path, PathBuf};

pub fn run(cmd: LvmCmd, dev: &Device, progress: bool) -> Result<()> {
    match cmd {
        LvmCmd::Train { config, out } => {
            let cfg = LvmConfig::from_file(&config)?;
            let out = out.unwrap_or_else(|| {
                let stem = config
                    .file_stem()
                    .map_or("lvm".into(), |s| s.to_string_lossy().to_string());
                Path::new("runs").join(stem)
            });
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
            let m = model_dir::load_lvm(&model, dev)?;
            let mut val = load_for(&data, &m)?;
            if heldout {
                val = held_out_windows(&val, &data, &[&model])?;
            }
            let ood = ood.as_ref().map(|p| load_for(p, &m)).transpose()?;
            let report = lvm_eval::report(&m, &val, ood.as_ref(), dev)?;
            table(&report);
            if let Some(j) = json {
                recur_core::fsx::write_json(&j, &report)?;
            }
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
            let mut entries = Vec::new();
            let mut loaded = Vec::new();
            for dir in &models {
                let m = model_dir::load_lvm(dir, dev)?;
                loaded.push((dir, m));
            }
            let first = &loaded[0].1;
            let c = first.arch.context;
            let mut val = load_for(&data, first)?;
            if heldout {
                let dirs: Vec<&Path> = models.iter().map(PathBuf::as_path).collect();
                val = held_out_windows(&val, &data, &dirs)?;
            }
            let ood_w = ood.as_ref().map(|p| load_for(p, first)).transpose()?;
            for (dir, m) in &loaded {
                anyhow::ensure!(
                    m.arch.context == c,
                    "{}: context {} differs from the first model's {c}; compare models of one context",
                    dir.display(),
                    m.arch.context
                );
                check_dim(&val, m.arch.input_dim, &data)?;
                if let (Some(o), Some(p)) = (&ood_w, &ood) {
                    check_dim(o, m.arch.input_dim, p)?;
                }
                let name = dir.file_name().map_or(dir.display().to_string(), |n| {
                    n.to_string_lossy().to_string()
                });
                entries.push(leaderboard::measure(
                    &name,
                    m,
                    &val,
                    ood_w.as_ref(),
                    dev,
                    crate::bars::reporter(progress),
                )?);
            }
            entries.extend(leaderboard::baselines(&val, ood_w.as_ref(), dev)?);
            let md = leaderboard::markdown(&entries);
            print!("{md}");
            if let Some(p) = markdown {
                recur_core::fsx::write_atomic(&p, md.as_bytes())?;
            }
            if let Some(p) = json {
                recur_core::fsx::write_json(&p, &entries)?;
            }
            Ok(())
        }
        LvmCmd::Predict {
            model,
            data,
            output,
        } => {
            let m = model_dir::load_lvm(&model, dev)?;
            let w = load_for(&data, &m)?;
            let pred = lvm_eval::predict(&m, &w, dev)?;
            recur_data::npz::write_npy(&output, &pred, &[w.len(), w.dim])?;
            println!(
                "{} predicted vectors of dimension {} written to {}",
                w.len(),
                w.dim,
                output.display()
            );
            Ok(())
        }
    }
}

/// Trains the LVM of `cfg` into `out`, prints the table against the
/// baselines, and returns the report.
pub fn train(cfg: &LvmConfig, out: &Path, dev: &Device, progress: bool) -> Result<LvmReport> {
    model_dir::check_out_dir(out)?;
    let c = cfg.data.context;
    let all = load(&cfg.data.train, c)?;
    let mut held = None;
    let (train, val) = match &cfg.data.val {
        Some(v) => (all, load(v, c)?),
        None => {
            let (tr, va) = split_by_article(&all, cfg.data.val_fraction, cfg.training.seed);
            if let Some(a) = &all.articles {
                let mut ids: Vec<i64> = va.iter().map(|&i| a[i]).collect();
                ids.sort_unstable();
                ids.dedup();
                held = Some(model_dir::HeldOut::of(
                    &cfg.data.train,
                    cfg.data.val_fraction,
                    cfg.training.seed,
                    ids,
                )?);
            }
            println!(
                "validation: {} of {} windows held out by article",
                va.len(),
                all.len()
            );
            (all.select(&tr), all.select(&va))
        }
    };
    let ood = cfg.data.ood.as_ref().map(|p| load(p, c)).transpose()?;
    if let Some(o) = &ood {
        anyhow::ensure!(
            o.dim == train.dim && val.dim == train.dim,
            "the data files have different vector dimensions (train {}, validation {}, OOD {})",
            train.dim,
            val.dim,
            o.dim
        );
    }
    println!(
        "training {} LVM: {} train / {} validation windows, dimension {}, context {c}",
        cfg.model.kind,
        train.len(),
        val.len(),
        train.dim
    );
    let fit = lvm::fit(cfg, &train, &val, dev, crate::bars::reporter(progress))?;
    fit.model.restore(&fit.best)?;
    let mut report = lvm_eval::report(&fit.model, &val, ood.as_ref(), dev)?;
    report.best_epoch = Some(fit.best_epoch);
    model_dir::save_lvm_dir(
        out,
        cfg,
        &fit.model,
        &fit.best,
        &fit.history,
        &report,
        held.as_ref(),
    )?;
    table(&report);
    println!(
        "\nbest epoch {} of {}; model written to {}",
        fit.best_epoch,
        fit.history.len(),
        out.display()
    );
    Ok(report)
}

fn load(path: &Path, context: usize) -> Result<VectorWindows> {
    let w = read_windows(path, context)?;
    for n in &w.notes {
        eprintln!("{}: {n}", path.display());
    }
    Ok(w)
}

/// Windows of `path` for model `m`: its context length, and vectors of
/// the dimension it takes (else an error naming the file).
fn load_for(path: &Path, m: &recur_models::Lvm) -> Result<VectorWindows> {
    let w = load(path, m.arch.context)?;
    check_dim(&w, m.arch.input_dim, path)?;
    Ok(w)
}

/// The windows of `data` from the articles the models held out when they
/// trained; every model must have held out the same ones.
fn held_out_windows(w: &VectorWindows, data: &Path, models: &[&Path]) -> Result<VectorWindows> {
    let mut first: Option<(&Path, model_dir::HeldOut)> = None;
    for &m in models {
        let h = model_dir::held_out(m)?.with_context(|| {
            format!(
                "{}: no {} here (the model was trained with a data.val file or imported); \
                 give its validation file as --data instead of --heldout",
                m.display(),
                model_dir::SPLIT
            )
        })?;
        match &first {
            None => first = Some((m, h)),
            Some((f, fh)) => anyhow::ensure!(
                fh.val_articles == h.val_articles,
                "{} and {} held out different articles (val_fraction or seed differ); \
                 compare them on a separate validation file",
                f.display(),
                m.display()
            ),
        }
    }
    let (m0, h) = first.expect("at least one model");
    let sha = sha256_file(data)?;
    anyhow::ensure!(
        sha == h.data_sha256,
        "{} is not the file {} trained on ({}); --heldout needs that very file, since \
         article indices name different articles in another one",
        data.display(),
        m0.display(),
        h.data.display()
    );
    let keep: std::collections::HashSet<i64> = h.val_articles.iter().copied().collect();
    let v = w.of_articles(&keep).with_context(|| {
        format!(
            "{}: the file gives no article of each window, so --heldout cannot pick them",
            data.display()
        )
    })?;
    anyhow::ensure!(
        !v.is_empty(),
        "{}: none of the {} held-out articles is in this file; --heldout takes the file the model trained on ({})",
        data.display(),
        keep.len(),
        h.data.display()
    );
    println!(
        "validation: {} windows of the {} articles the model{} held out",
        v.len(),
        keep.len(),
        if models.len() > 1 { "s" } else { "" }
    );
    Ok(v)
}

fn sha256_file(p: &Path) -> Result<String> {
    Ok(recur_core::fsx::sha256_file(p)?)
}

fn check_dim(w: &VectorWindows, dim: usize, path: &Path) -> Result<()> {
    anyhow::ensure!(
        w.dim == dim,
        "{}: vectors have dimension {}; the model takes {dim}",
        path.display(),
        w.dim
    );
    Ok(())
}

/// The eval table: the model and the baselines, validation and OOD.
fn table(r: &LvmReport) {
    let cell = |s: Option<&Stats>| {
        s.map_or("-".to_string(), |s| {
            format!("{:.4} +- {:.4}", s.cosine_mean, s.cosine_std)
        })
    };
    let mse = |s: Option<&Stats>| s.map_or("-".to_string(), |s| format!("{:.6}", s.mse_mean));
    println!(
        "\n{:<14} {:>18} {:>18} {:>12} {:>12}",
        "", "val cosine", "OOD cosine", "val MSE", "OOD MSE"
    );
    println!(
        "{:<14} {:>18} {:>18} {:>12} {:>12}",
        r.model,
        cell(Some(&r.scores.val)),
        cell(r.scores.ood.as_ref()),
        mse(Some(&r.scores.val)),
        mse(r.scores.ood.as_ref())
    );
    for (name, b) in &r.baselines {
        println!(
            "{:<14} {:>18} {:>18} {:>12} {:>12}",
            name,
            cell(Some(&b.val)),
            cell(b.ood.as_ref()),
            mse(Some(&b.val)),
            mse(b.ood.as_ref())
        );
    }
    if let Some(d) = r.scores.ood_minus_val_cosine {
        println!("OOD minus validation cosine: {d:+.4}");
    }
}

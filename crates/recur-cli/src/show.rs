//! Printing: metrics tables, training reports and `inspect` output. Plain
//! aligned text on stdout, so the output reads well and pipes well.

use anyhow::Result;
use candle_core::Device;
use recur_deploy::Metrics;
use recur_deploy::{Evaluation, FileScores, Predictor, Report};
use std::path::Path;

fn opt(v: Option<f64>) -> String {
    v.map_or("n/a".into(), |v| format!("{v:.4}"))
}

/// One column per named metrics set.
pub fn metrics_table(cols: &[(String, &Metrics)]) {
    let w = cols.iter().map(|(n, _)| n.len()).max().unwrap_or(0).max(8);
    print!("{:<10}", "");
    for (n, _) in cols {
        print!("  {n:>w$}");
    }
    println!();
    type Row = (&'static str, fn(&Metrics) -> String);
    let rows: [Row; 7] = [
        ("ROC AUC", |m| opt(m.auc)),
        ("PR AUC", |m| opt(m.pr_auc)),
        ("log loss", |m| format!("{:.4}", m.logloss)),
        ("Brier", |m| format!("{:.4}", m.brier)),
        ("accuracy", |m| format!("{:.4}", m.accuracy)),
        ("windows", |m| m.n.to_string()),
        ("positives", |m| m.positives.to_string()),
    ];
    for (name, f) in rows {
        print!("{name:<10}");
        for (_, m) in cols {
            print!("  {:>w$}", f(m));
        }
        println!();
    }
}

pub fn report(r: &Report) {
    println!();
    let mut cols = vec![("validation".to_string(), &r.val)];
    if let Some(t) = &r.test {
        cols.push(("test".to_string(), t));
    }
    metrics_table(&cols);
    println!(
        "\nbest epoch {} of {} run; pos_weight {:.4}; {} parameters; {} features x {} steps",
        r.best_epoch,
        r.epochs_run,
        r.pos_weight,
        r.params,
        r.features.len(),
        r.sequence_length
    );
    for (name, v) in &r.constant_columns {
        println!(
            "warning: `{name}` is {v} on every training row: left out of the features (list data.features to choose them yourself)"
        );
    }
    if let Some(rule) = &r.label_rule {
        println!("{rule}");
    }
    if !r.parts.is_empty() {
        println!(
            "\n{:<10} {:>13} {:>22} {:>22} {:>8} {:>9}",
            "part", "rows", "from", "to", "windows", "base rate"
        );
        for p in &r.parts {
            println!(
                "{:<10} {:>13} {:>22} {:>22} {:>8} {:>9.4}",
                p.part,
                format!("{}..={}", p.first_row, p.last_row),
                p.first_time.as_deref().unwrap_or("-"),
                p.last_time.as_deref().unwrap_or("-"),
                p.windows,
                p.base_rate
            );
        }
    }
    if let Some(sel) = &r.selection {
        selection(sel);
    }
    if let Some(models) = &r.models {
        comparison(r, models);
    }
}

/// The per-feature table of `recur select-features` and of training.
pub fn selection(table: &[recur_data::select::FeatureStats]) {
    let w = table
        .iter()
        .map(|t| t.feature.len())
        .max()
        .unwrap_or(7)
        .max(7);
    println!(
        "\nfeature selection (training rows only):\n{:<w$}  {:>9} {:>8} {:>7} {:>8} {:>6} {:>10}  verdict",
        "feature", "std", "autocorr", "noise", "outliers", "trend", "importance"
    );
    for t in table {
        let noise = if t.noise_ratio.is_finite() {
            format!("{:.3}", t.noise_ratio)
        } else {
            "inf".into()
        };
        println!(
            "{:<w$}  {:>9.4} {:>8.3} {:>7} {:>7.2}% {:>6.3} {:>10.4}  {}",
            t.feature,
            t.std,
            t.autocorr,
            noise,
            t.outlier_share * 100.0,
            t.trend,
            t.importance,
            if t.kept {
                "kept".to_string()
            } else {
                format!("dropped: {}", t.dropped_by.as_deref().unwrap_or(""))
            }
        );
    }
}

/// One line per model variant: the columns of `Scores::cells`.
fn score_table(rows: &[(String, &recur_deploy::report::Scores, f64)]) {
    println!(
        "{:<22} {:>7} {:>7} {:>8} {:>7} {:>7} {:>9} {:>10} {:>7}",
        "model", "ROC AUC", "PR AUC", "log loss", "Brier", "ECE", "threshold", "EV per row", "rows"
    );
    for (name, s, t) in rows {
        let c = s.cells(*t);
        println!(
            "{:<22} {:>7} {:>7} {:>8} {:>7} {:>7} {:>9} {:>10} {:>7}",
            name, c[0], c[1], c[2], c[3], c[4], c[5], c[6], s.n
        );
    }
}

/// `recur eval`: per part, every model raw and calibrated at the saved
/// thresholds, laid out as the training report.
pub fn evaluation(e: &Evaluation) {
    if e.training_file {
        println!(
            "{} is the training file: its validation and test parts, cut as in training",
            e.input
        );
    }
    let mut parts: Vec<&String> = e.rows.keys().collect();
    parts.sort_by_key(|p| match p.as_str() {
        "validation" => 0,
        "test" => 1,
        _ => 2,
    });
    for part in parts {
        println!(
            "\n{part}: {} rows every model scored (thresholds and calibration from training):",
            e.rows[part]
        );
        let rows: Vec<(String, &recur_deploy::report::Scores, f64)> = ["lstm", "trees", "ensemble"]
            .into_iter()
            .filter_map(|name| e.models.get(name).map(|m| (name, m)))
            .flat_map(|(name, m)| {
                [("raw", &m.raw), ("calibrated", &m.calibrated)]
                    .into_iter()
                    .filter_map(move |(label, v)| {
                        v.parts
                            .get(part)
                            .map(|s| (format!("{name} ({label})"), s, v.threshold))
                    })
            })
            .collect();
        score_table(&rows);
    }
    println!(
        "\ndeployed: {} (calibrated); `recur predict` writes its probability and decision",
        e.deployed
    );
    if e.partial_rows > 0 {
        println!(
            "{} labelled rows are left out: only some of the models score them",
            e.partial_rows
        );
    }
}

/// Tells which rows have no deployed probability, and why.
pub fn partial(p: &Predictor, s: &FileScores) {
    for n in &s.notes {
        eprintln!("note: {n}");
    }
    if let Some((first, last, why)) = s.partial_rows(p) {
        eprintln!("note: rows {first}..={last} have no probability or decision: {why}");
    }
}

fn comparison(
    r: &Report,
    models: &std::collections::BTreeMap<String, recur_deploy::report::ModelReport>,
) {
    let part = if r.test.is_some() {
        "test"
    } else {
        "validation"
    };
    if models.len() > 1 {
        println!(
            "\nLSTM, trees and ensemble on the {part} rows both scored (thresholds and calibration fit on validation):"
        );
    } else {
        println!("\nthe LSTM on the {part} rows (threshold and calibration fit on validation):");
    }
    let rows: Vec<(String, &recur_deploy::report::Scores, f64)> = ["lstm", "trees", "ensemble"]
        .into_iter()
        .filter_map(|name| models.get(name).map(|m| (name, m)))
        .flat_map(|(name, m)| {
            [("raw", &m.raw), ("calibrated", &m.calibrated)].map(|(label, v)| {
                (
                    format!("{name} ({label})"),
                    v.test.as_ref().unwrap_or(&v.val),
                    v.threshold,
                )
            })
        })
        .collect();
    score_table(&rows);
    let shown = if models.contains_key("ensemble") {
        "ensemble"
    } else {
        "lstm"
    };
    if let Some(m) = models.get(shown) {
        println!("\nreliability of the {shown} on the {part} rows (mean predicted -> fraction positive):");
        println!(
            "{:<9} {:>24} {:>24}",
            "bin", "raw (rows)", "calibrated (rows)"
        );
        let cell = |bins: &[recur_deploy::calibrate::Bin], lo: f64| {
            bins.iter()
                .find(|b| (b.lo - lo).abs() < 1e-9)
                .map_or("-".to_string(), |b| {
                    format!(
                        "{:.3} -> {:.3} ({})",
                        b.mean_predicted, b.fraction_positive, b.count
                    )
                })
        };
        for i in 0..10 {
            let lo = i as f64 / 10.0;
            let (a, b) = (
                cell(&m.reliability_raw, lo),
                cell(&m.reliability_calibrated, lo),
            );
            if a != "-" || b != "-" {
                println!(
                    "{:<9} {:>24} {:>24}",
                    format!("{:.1}-{:.1}", lo, lo + 0.1),
                    a,
                    b
                );
            }
        }
    }
    if let Some(w) = &r.weights {
        println!("ensemble weights: trees {:.3}, LSTM {:.3}", w.trees, w.lstm);
    }
    if let Some(l) = r.ensemble_auc_lift {
        println!("ensemble {part} AUC lift over the best single model: {l:+.4}");
    }
    if let Some(t) = &r.trees {
        let top: Vec<String> = t
            .importance
            .iter()
            .take(5)
            .map(|(n, v)| format!("{n} {v:.3}"))
            .collect();
        println!(
            "trees: {} ({} trees on {} inputs); most important: {}",
            t.source,
            t.trees,
            t.inputs.len(),
            top.join(", ")
        );
    }
}

pub fn inspect(path: &Path, dev: &Device) -> Result<()> {
    let i = recur_deploy::model_dir::inspect(path, dev)?;
    let h = &i.header;
    println!("file: {} ({} bytes)", i.weights.display(), h.file_bytes);
    println!(
        "format version: {}",
        h.format_version
            .map_or("none (not written by recur)".into(), |v| v.to_string())
    );
    match &h.architecture {
        Some(a) => println!("architecture: {}", serde_json::to_string_pretty(a)?),
        None => println!("architecture: none stored"),
    }
    let wn = h
        .tensors
        .iter()
        .map(|t| t.0.len())
        .max()
        .unwrap_or(4)
        .max(6);
    println!(
        "\n{:<wn$}  {:<5}  {:<12}  {:>9}  {:>10}",
        "tensor", "dtype", "shape", "params", "bytes"
    );
    let mut total = 0usize;
    for (name, dtype, shape) in &h.tensors {
        let n: usize = shape.iter().product();
        total += n;
        println!(
            "{name:<wn$}  {dtype:<5}  {:<12}  {n:>9}  {:>10}",
            format!("{shape:?}"),
            n * 4
        );
    }
    println!(
        "{:<wn$}  {:<5}  {:<12}  {total:>9}  {:>10}",
        "total",
        "",
        "",
        total * 4
    );
    if let Some(kind) = i.kind {
        let job = match kind {
            recur_deploy::model_dir::DirKind::Classifier => "a Job A classifier directory",
            recur_deploy::model_dir::DirKind::Lvm => "a Job B LVM directory",
        };
        match &i.checks {
            Some(Ok(what)) => println!("\nchecks: OK ({job}: {what})"),
            Some(Err(why)) => println!("\nchecks: FAILED ({job})\n{why}"),
            None => {}
        }
    }
    for line in &i.summary {
        println!("{line}");
    }
    if let Some(Err(_)) = &i.checks {
        anyhow::bail!(
            "{} does not pass the load checks (see above)",
            path.display()
        );
    }
    Ok(())
}

/// One `recur bench lstm` result, in the layout of the PyTorch script's.
pub fn bench(r: &recur_dev::lstm_bench::BenchResult) {
    println!(
        "recur {}  workload {}  threads {}  params {}  batch {}  seq_len {}",
        r.version, r.workload, r.threads, r.params, r.batch, r.seq_len
    );
    println!(
        "  train  {:10.1} seq/s  ({} steps)",
        r.train_seq_per_s, r.train_steps
    );
    println!("  infer  {:10.1} seq/s", r.infer_seq_per_s);
    println!(
        "  b1 latency  p50 {:.3} ms  p95 {:.3} ms  mean {:.3} ms",
        r.lat_b1_p50_ms, r.lat_b1_p95_ms, r.lat_b1_mean_ms
    );
    println!(
        "  RSS before training {:.1} MB  peak {:.1} MB",
        r.rss_before_train_mb, r.peak_rss_mb
    );
}

/// `recur drift`: prints the per-feature table; true when any feature drifted.
pub fn drift(model: &Path, input: &Path, json: Option<&Path>) -> Result<bool> {
    let check = recur_deploy::drift::check(model, input)?;
    let table = &check.table;
    let features: Vec<&str> = table.iter().map(|d| d.feature.as_str()).collect();
    let th = &check.thresholds;
    let w = features.iter().map(|f| f.len()).max().unwrap_or(7).max(7);
    println!(
        "{} rows of {} against {} training rows of {} (thresholds: PSI {}, KS {}, mean shift {}, autocorrelation {}, noise ratio {})",
        check.rows,
        input.display(),
        check.reference_rows,
        model.display(),
        th.psi,
        th.ks,
        th.mean_shift,
        th.autocorr_shift,
        th.noise_ratio_shift
    );
    println!(
        "{:<w$}  {:>7} {:>7} {:>10} {:>9} {:>11}  verdict",
        "feature", "PSI", "KS", "mean shift", "autocorr", "noise ratio"
    );
    for d in table {
        println!(
            "{:<w$}  {:>7.4} {:>7.4} {:>10.3} {:>9.3} {:>11}  {}",
            d.feature,
            d.psi,
            d.ks,
            d.mean_shift,
            d.autocorr_shift,
            d.noise_ratio_shift
                .map_or("-".into(), |v| format!("{v:.3}")),
            if d.drift {
                format!("DRIFT: {}", d.reasons.join(", "))
            } else {
                "ok".into()
            }
        );
    }
    let n = check.drifted();
    println!("{n} of {} features drifted", table.len());
    if let Some(j) = json {
        recur_core::fsx::write_json(j, table)?;
    }
    Ok(n > 0)
}

fn trial_line(t: &recur_train::tune::Trial) -> String {
    format!(
        "{:>5}  {:>7} {:>6} {:>9.2e} {:>7.3}  {:<8} {:>7.4} {:>6} {:>7.1}",
        t.number,
        t.params.sequence_length,
        t.params.hidden_size,
        t.params.learning_rate,
        t.params.dropout,
        match t.state {
            recur_train::tune::State::Complete => "complete",
            recur_train::tune::State::Pruned => "pruned",
        },
        t.value,
        t.curve.len(),
        t.seconds
    )
}

const TRIAL_HEADER: &str =
    "trial  seq_len hidden        lr dropout  state    val AUC epochs seconds";

/// `recur tune`: runs the search, prints the trials and writes best.yaml.
pub fn tune(
    config: &Path,
    trials: usize,
    out: &Path,
    jobs: usize,
    dev: &Device,
    progress: bool,
) -> Result<()> {
    let cfg = recur_core::config::Config::from_file(config)?;
    if progress {
        eprintln!("{TRIAL_HEADER}");
    }
    let report = |t: &recur_train::tune::Trial| {
        if progress {
            eprintln!("{}", trial_line(t));
        }
    };
    let r = recur_train::tune::tune(&cfg, trials, jobs, out, dev, &report)?;
    if r.resumed > 0 {
        println!(
            "resumed from {} trials in {}",
            r.resumed,
            out.join("trials.json").display()
        );
    }
    println!("{TRIAL_HEADER}");
    for t in &r.trials {
        println!("{}", trial_line(t));
    }
    let path = &r.best_path;
    println!("\nthe best config:\n{}", r.best_config.to_yaml());
    let start = r.trials.iter().find(|t| t.number == 0);
    println!(
        "best: trial {} with validation AUC {:.4}{}; its config is {} (recur train --config {})",
        r.best.number,
        r.best.value,
        start.map_or(String::new(), |s| format!(
            " (trial 0, the config as given: {:.4})",
            s.value
        )),
        path.display(),
        path.display()
    );
    Ok(())
}

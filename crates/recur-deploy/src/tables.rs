//! The plain-text layout of what training, evaluation, drift checks and
//! `inspect` report: `Display` for each report type, aligned columns that
//! read well in a terminal and pipe well. They live beside the types, not
//! in the binary, so that `recur` prints them and a program (or the Python
//! package's `repr`) shows the very same tables.

use crate::calibrate::Bin;
use crate::drift::DriftCheck;
use crate::lvm_eval::{LvmReport, Stats};
use crate::model_dir::{DirKind, Inspection, Report};
use crate::report::{ModelReport, Scores};
use crate::scoring::Evaluation;
use crate::Metrics;
use recur_data::drift::{figure, number};
use recur_data::select::FeatureStats;
use std::collections::BTreeMap;
use std::fmt::{self, Display, Formatter};

/// The model variants in the order the tables list them.
const MODELS: [&str; 3] = ["lstm", "trees", "ensemble"];

fn opt(v: Option<f64>) -> String {
    v.map_or("n/a".into(), |v| format!("{v:.4}"))
}

/// One column per named metrics set.
fn metrics_table(f: &mut Formatter, cols: &[(&str, &Metrics)]) -> fmt::Result {
    let w = cols.iter().map(|(n, _)| n.len()).max().unwrap_or(0).max(8);
    write!(f, "{:<10}", "")?;
    for (n, _) in cols {
        write!(f, "  {n:>w$}")?;
    }
    writeln!(f)?;
    type Row = (&'static str, fn(&Metrics) -> String);
    let binary: [Row; 7] = [
        ("ROC AUC", |m| opt(m.auc)),
        ("PR AUC", |m| opt(m.pr_auc)),
        ("log loss", |m| format!("{:.4}", m.logloss)),
        ("Brier", |m| format!("{:.4}", m.brier)),
        ("accuracy", |m| format!("{:.4}", m.accuracy)),
        ("windows", |m| m.n.to_string()),
        ("positives", |m| m.positives.to_string()),
    ];
    let multi: [Row; 6] = [
        ("accuracy", |m| format!("{:.4}", m.accuracy)),
        ("macro F1", |m| opt(m.macro_f1)),
        ("macro AUC", |m| opt(m.auc)),
        ("log loss", |m| format!("{:.4}", m.logloss)),
        ("Brier", |m| format!("{:.4}", m.brier)),
        ("series", |m| m.n.to_string()),
    ];
    let rows: &[Row] = if cols.iter().any(|(_, m)| m.macro_f1.is_some()) {
        &multi
    } else {
        &binary
    };
    for &(name, cell) in rows {
        write!(f, "{name:<10}")?;
        for (_, m) in cols {
            write!(f, "  {:>w$}", cell(m))?;
        }
        writeln!(f)?;
    }
    Ok(())
}

/// The most classes whose confusion matrix is printed whole.
const CONFUSION_SHOWN: usize = 20;

/// A confusion matrix: true class by row, predicted class by column.
pub fn confusion_table(
    f: &mut Formatter,
    part: &str,
    classes: &[String],
    c: &[Vec<usize>],
) -> fmt::Result {
    if classes.len() > CONFUSION_SHOWN {
        // A 1000-class matrix printed 6 MB to the terminal: the most
        // frequent confusions instead, the whole matrix in the JSON.
        let mut off: Vec<(usize, usize, usize)> = c
            .iter()
            .enumerate()
            .flat_map(|(t, row)| row.iter().enumerate().map(move |(p, &n)| (n, t, p)))
            .filter(|&(n, t, p)| n > 0 && t != p)
            .collect();
        off.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
        writeln!(
            f,
            "\nconfusion on {part}: {} classes, too many to print (the whole matrix is in \
             the JSON: report.json, or eval --json); the most frequent confusions:",
            classes.len()
        )?;
        for (n, t, p) in off.iter().take(CONFUSION_SHOWN) {
            writeln!(f, "  true {} predicted {}: {n}", classes[*t], classes[*p])?;
        }
        return Ok(());
    }
    writeln!(
        f,
        "\nconfusion on {part} (rows: true class, columns: predicted)"
    )?;
    let w = classes
        .iter()
        .map(|c| c.len())
        .chain(c.iter().flatten().map(|n| n.to_string().len()))
        .max()
        .unwrap_or(1)
        .max(4);
    write!(f, "{:>w$}", "")?;
    for name in classes {
        write!(f, "  {name:>w$}")?;
    }
    writeln!(f)?;
    for (name, row) in classes.iter().zip(c) {
        write!(f, "{name:>w$}")?;
        for n in row {
            write!(f, "  {n:>w$}")?;
        }
        writeln!(f)?;
    }
    Ok(())
}

/// One line per model variant: the columns of `Scores::cells`.
fn score_table(f: &mut Formatter, rows: &[(String, &Scores, f64)]) -> fmt::Result {
    writeln!(
        f,
        "{:<22} {:>7} {:>7} {:>8} {:>7} {:>7} {:>9} {:>10} {:>7}",
        "model", "ROC AUC", "PR AUC", "log loss", "Brier", "ECE", "threshold", "EV per row", "rows"
    )?;
    for (name, s, t) in rows {
        let c = s.cells(*t);
        writeln!(
            f,
            "{:<22} {:>7} {:>7} {:>8} {:>7} {:>7} {:>9} {:>10} {:>7}",
            name, c[0], c[1], c[2], c[3], c[4], c[5], c[6], s.n
        )?;
    }
    Ok(())
}

/// The training report: metrics, the parts, the feature selection and the
/// comparison of the LSTM, trees and ensemble.
impl Display for Report {
    fn fmt(&self, f: &mut Formatter) -> fmt::Result {
        let r = self;
        writeln!(f)?;
        let mut cols = vec![("validation", &r.val)];
        if let Some(t) = &r.test {
            cols.push(("test", t));
        }
        metrics_table(f, &cols)?;
        if let Some(tf) = &r.temperature {
            let shown = r.test.as_ref().unwrap_or(&r.val);
            if tf.temperature == 1.0 && tf.val_raw.logloss == r.val.logloss {
                writeln!(
                    f,
                    "\ntemperature 1: calibration none, every validation series right, or the \
                     best temperature on a bound of [0.05, 20] or no better than 1 on validation"
                )?;
            } else {
                writeln!(
                    f,
                    "\ntemperature {:.4} (fit on validation): validation log loss {:.4} -> {:.4}",
                    tf.temperature, tf.val_raw.logloss, r.val.logloss
                )?;
            }
            if let Some(c) = &shown.confusion {
                let part = if r.test.is_some() {
                    "test"
                } else {
                    "validation"
                };
                confusion_table(f, part, &r.classes, c)?;
            }
            writeln!(
                f,
                "\nbest epoch {} of {} run; {} classes; {} parameters; {} channels x {} steps",
                r.best_epoch,
                r.epochs_run,
                r.classes.len(),
                r.params,
                r.features.len(),
                r.sequence_length
            )?;
            for w in &r.warnings {
                writeln!(f, "note: {w}")?;
            }
            return Ok(());
        }
        writeln!(
            f,
            "\nbest epoch {} of {} run; pos_weight {}; {} parameters; {} features x {} steps",
            r.best_epoch,
            r.epochs_run,
            crate::report::readable(r.pos_weight, 4),
            r.params,
            r.features.len(),
            r.sequence_length
        )?;
        for (name, v) in &r.constant_columns {
            writeln!(
                f,
                "warning: `{name}` never changes on the training rows ({v}, to its sums' rounding): left out of the features (list data.features to choose them yourself)"
            )?;
        }
        for w in &r.warnings {
            writeln!(f, "note: {w}")?;
        }
        if let Some(rule) = &r.label_rule {
            writeln!(f, "{rule}")?;
        }
        if !r.parts.is_empty() {
            writeln!(
                f,
                "\n{:<10} {:>13} {:>22} {:>22} {:>8} {:>9}",
                "part", "rows", "from", "to", "windows", "base rate"
            )?;
            for p in &r.parts {
                writeln!(
                    f,
                    "{:<10} {:>13} {:>22} {:>22} {:>8} {:>9.4}",
                    p.part,
                    format!("{}..={}", p.first_row, p.last_row),
                    p.first_time.as_deref().unwrap_or("-"),
                    p.last_time.as_deref().unwrap_or("-"),
                    p.windows,
                    p.base_rate
                )?;
            }
        }
        if let Some(sel) = &r.selection {
            write!(f, "{}", Selection(sel))?;
        }
        if let Some(models) = &r.models {
            comparison(f, r, models)?;
        }
        Ok(())
    }
}

/// The per-feature table of feature selection, as `recur select-features`
/// and the training report show it.
pub struct Selection<'a>(pub &'a [FeatureStats]);

impl Display for Selection<'_> {
    fn fmt(&self, f: &mut Formatter) -> fmt::Result {
        let table = self.0;
        let w = table
            .iter()
            .map(|t| t.feature.len())
            .max()
            .unwrap_or(7)
            .max(7);
        writeln!(
            f,
            "\nfeature selection (training rows only):\n{:<w$}  {:>9} {:>8} {:>7} {:>8} {:>6} {:>10}  verdict",
            "feature", "std", "autocorr", "noise", "outliers", "trend", "importance"
        )?;
        for t in table {
            let noise = if t.noise_ratio.is_finite() {
                format!("{:.3}", t.noise_ratio)
            } else {
                "inf".into()
            };
            // A volume's std (5.5e7) in its column, not past it.
            let std = if t.std.abs() >= 1e5 {
                format!("{:.3e}", t.std)
            } else {
                format!("{:.4}", t.std)
            };
            writeln!(
                f,
                "{:<w$}  {:>9} {:>8.3} {:>7} {:>7.2}% {:>6.3} {:>10.4}  {}",
                t.feature,
                std,
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
            )?;
        }
        Ok(())
    }
}

fn comparison(
    f: &mut Formatter,
    r: &Report,
    models: &BTreeMap<String, ModelReport>,
) -> fmt::Result {
    let part = if r.test.is_some() {
        "test"
    } else {
        "validation"
    };
    if models.len() > 1 {
        let which = if models.contains_key("ensemble") {
            "LSTM, trees and ensemble"
        } else {
            "LSTM and trees"
        };
        writeln!(
            f,
            "\n{which} on the {part} rows both scored (thresholds and calibration fit on validation):"
        )?;
    } else {
        writeln!(
            f,
            "\nthe LSTM on the {part} rows (threshold and calibration fit on validation):"
        )?;
    }
    let rows: Vec<(String, &Scores, f64)> = MODELS
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
    score_table(f, &rows)?;
    let shown = if models.contains_key("ensemble") {
        "ensemble"
    } else {
        "lstm"
    };
    if let Some(m) = models.get(shown) {
        writeln!(
            f,
            "\nreliability of the {shown} on the {part} rows (mean predicted -> fraction positive):"
        )?;
        writeln!(
            f,
            "{:<9} {:>24} {:>24}",
            "bin", "raw (rows)", "calibrated (rows)"
        )?;
        let cell = |bins: &[Bin], lo: f64| {
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
                writeln!(
                    f,
                    "{:<9} {:>24} {:>24}",
                    format!("{:.1}-{:.1}", lo, lo + 0.1),
                    a,
                    b
                )?;
            }
        }
    }
    if let Some(w) = &r.weights {
        writeln!(
            f,
            "ensemble weights: trees {:.3}, LSTM {:.3}",
            w.trees, w.lstm
        )?;
    }
    if let Some(l) = r.ensemble_auc_lift {
        writeln!(
            f,
            "ensemble {part} AUC lift over the best single model: {l:+.4}"
        )?;
    }
    if let Some(t) = &r.trees {
        let top: Vec<String> = t
            .importance
            .iter()
            .take(5)
            .map(|(n, v)| format!("{n} {v:.3}"))
            .collect();
        writeln!(
            f,
            "trees: {} ({} trees on {} inputs); most important: {}",
            t.source,
            t.trees,
            t.inputs.len(),
            top.join(", ")
        )?;
    }
    Ok(())
}

/// `recur eval`: per part, every model raw and calibrated at the saved
/// thresholds, laid out as the training report.
impl Display for Evaluation {
    fn fmt(&self, f: &mut Formatter) -> fmt::Result {
        let e = self;
        if let Some(n) = &e.note {
            writeln!(f, "note: {n}")?;
        }
        if e.training_file {
            writeln!(
                f,
                "{} is the training file: its validation and test parts, cut as in training",
                e.input
            )?;
        }
        if let Some(m) = &e.multiclass {
            writeln!(
                f,
                "\n{}: {} series, {} classes (temperature {:.4} from training):",
                e.input,
                m.raw.n,
                m.classes.len(),
                m.temperature
            )?;
            metrics_table(f, &[("raw", &m.raw), ("calibrated", &m.calibrated)])?;
            if let Some(c) = &m.calibrated.confusion {
                confusion_table(f, "this file", &m.classes, c)?;
            }
            return writeln!(
                f,
                "\n`recur predict` writes each class's calibrated probability and the most probable class"
            );
        }
        let mut parts: Vec<&String> = e.rows.keys().collect();
        parts.sort_by_key(|p| match p.as_str() {
            "validation" => 0,
            "test" => 1,
            _ => 2,
        });
        for part in parts {
            writeln!(
                f,
                "\n{part}: {} rows every model scored (thresholds and calibration from training):",
                e.rows[part]
            )?;
            let rows: Vec<(String, &Scores, f64)> = MODELS
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
            score_table(f, &rows)?;
        }
        writeln!(
            f,
            "\ndeployed: {} (calibrated); `recur predict` writes its probability and decision",
            e.deployed
        )?;
        if e.partial_rows > 0 {
            writeln!(
                f,
                "{} labelled rows are left out: only some of the models score them",
                e.partial_rows
            )?;
        }
        Ok(())
    }
}

/// `recur inspect`: the weights' header, the tensors, the checks and the
/// training summary.
impl Display for Inspection {
    fn fmt(&self, f: &mut Formatter) -> fmt::Result {
        let h = &self.header;
        writeln!(
            f,
            "file: {} ({} bytes)",
            self.weights.display(),
            h.file_bytes
        )?;
        writeln!(
            f,
            "format version: {}",
            h.format_version
                .map_or("none (not written by recur)".into(), |v| v.to_string())
        )?;
        match &h.architecture {
            Some(a) => writeln!(
                f,
                "architecture: {}",
                serde_json::to_string_pretty(a).map_err(|_| fmt::Error)?
            )?,
            None => writeln!(f, "architecture: none stored")?,
        }
        if let Some(why) = &h.architecture_damage {
            writeln!(f, "warning: {why}: no loader takes this file")?;
        }
        let wn = h
            .tensors
            .iter()
            .map(|t| t.0.len())
            .max()
            .unwrap_or(4)
            .max(6);
        writeln!(
            f,
            "\n{:<wn$}  {:<5}  {:<12}  {:>9}  {:>10}",
            "tensor", "dtype", "shape", "params", "bytes"
        )?;
        let (mut total, mut total_bytes) = (0usize, 0usize);
        for (name, dtype, shape, bytes) in &h.tensors {
            let n: usize = shape.iter().product();
            total += n;
            total_bytes += bytes;
            writeln!(
                f,
                "{name:<wn$}  {dtype:<5}  {:<12}  {n:>9}  {bytes:>10}",
                format!("{shape:?}"),
            )?;
        }
        writeln!(
            f,
            "{:<wn$}  {:<5}  {:<12}  {total:>9}  {total_bytes:>10}",
            "total", "", "",
        )?;
        if let Some(kind) = self.kind {
            let job = match kind {
                DirKind::Classifier => "a Job A classifier directory",
                DirKind::Lvm => "a Job B LVM directory",
            };
            match &self.checks {
                Some(Ok(what)) => writeln!(f, "\nchecks: OK ({job}: {what})")?,
                Some(Err(why)) => writeln!(f, "\nchecks: FAILED ({job})\n{why}")?,
                None => {}
            }
        }
        for line in &self.summary {
            writeln!(f, "{line}")?;
        }
        Ok(())
    }
}

/// `recur drift`: the thresholds, one line per feature, and the count.
impl Display for DriftCheck {
    fn fmt(&self, f: &mut Formatter) -> fmt::Result {
        let th = &self.thresholds;
        let w = self
            .table
            .iter()
            .map(|d| d.feature.len())
            .max()
            .unwrap_or(7)
            .max(7);
        writeln!(
            f,
            "{} rows of {} against {} training rows of {} (thresholds: PSI {}, KS {}, mean shift {}, autocorrelation {}, noise ratio {})",
            self.rows,
            self.input.display(),
            self.reference_rows,
            self.model.display(),
            number(th.psi),
            number(th.ks),
            number(th.mean_shift),
            number(th.autocorr_shift),
            number(th.noise_ratio_shift)
        )?;
        writeln!(
            f,
            "{:<w$}  {:>7} {:>7} {:>10} {:>9} {:>11}  verdict",
            "feature", "PSI", "KS", "mean shift", "autocorr", "noise ratio"
        )?;
        for d in &self.table {
            writeln!(
                f,
                "{:<w$}  {:>7.4} {:>7.4} {:>10} {:>9.3} {:>11}  {}",
                d.feature,
                d.psi,
                d.ks,
                figure(d.mean_shift, 3),
                d.autocorr_shift,
                d.noise_ratio_shift.map_or("-".into(), |v| figure(v, 3)),
                if d.drift {
                    format!("DRIFT: {}", d.reasons.join(", "))
                } else {
                    "ok".into()
                }
            )?;
        }
        writeln!(
            f,
            "{} of {} features drifted",
            self.drifted(),
            self.table.len()
        )
    }
}

/// The LVM eval table: the model and the baselines, validation and OOD.
impl Display for LvmReport {
    fn fmt(&self, f: &mut Formatter) -> fmt::Result {
        let cell = |s: Option<&Stats>| {
            s.map_or("-".to_string(), |s| {
                format!("{:.4} +- {:.4}", s.cosine_mean, s.cosine_std)
            })
        };
        let mse = |s: Option<&Stats>| s.map_or("-".to_string(), |s| format!("{:.6}", s.mse_mean));
        writeln!(
            f,
            "\n{:<14} {:>18} {:>18} {:>12} {:>12}",
            "", "val cosine", "OOD cosine", "val MSE", "OOD MSE"
        )?;
        let rows = std::iter::once((&self.model, &self.scores))
            .chain(self.baselines.iter())
            .map(|(name, s)| (name, &s.val, s.ood.as_ref()));
        for (name, val, ood) in rows {
            writeln!(
                f,
                "{:<14} {:>18} {:>18} {:>12} {:>12}",
                name,
                cell(Some(val)),
                cell(ood),
                mse(Some(val)),
                mse(ood)
            )?;
        }
        if let Some(d) = self.scores.ood_minus_val_cosine {
            writeln!(f, "OOD minus validation cosine: {d:+.4}")?;
        }
        // A model a baseline beats predicts worse than a rule with no
        // weights: said, not left to a reading of the table.
        let beaten: Vec<&str> = self
            .baselines
            .iter()
            .filter(|(_, b)| b.val.cosine_mean >= self.scores.val.cosine_mean)
            .map(|(n, _)| n.as_str())
            .collect();
        for w in &self.warnings {
            writeln!(f, "note: {w}")?;
        }
        if !beaten.is_empty() {
            writeln!(
                f,
                "note: on validation the model does no better than {}: it has not learnt \
                 beyond a rule with no weights",
                beaten.join(" and ")
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Shown(Vec<String>, Vec<Vec<usize>>);

    impl Display for Shown {
        fn fmt(&self, f: &mut Formatter) -> fmt::Result {
            confusion_table(f, "test", &self.0, &self.1)
        }
    }

    fn matrix(k: usize) -> Shown {
        let classes = (0..k).map(|i| format!("c{i}")).collect();
        let mut c = vec![vec![0; k]; k];
        for (i, row) in c.iter_mut().enumerate() {
            row[i] = 5;
        }
        c[3][7] = 4;
        c[1][2] = 2;
        Shown(classes, c)
    }

    #[test]
    fn a_matrix_of_many_classes_is_summarised_by_its_largest_confusions() {
        let text = matrix(CONFUSION_SHOWN + 1).to_string();
        assert!(text.contains("21 classes, too many to print"), "{text}");
        let (a, b) = (
            text.find("true c3 predicted c7: 4").unwrap(),
            text.find("true c1 predicted c2: 2").unwrap(),
        );
        assert!(a < b && text.lines().count() == 4, "{text}");
        // Up to the limit, the whole matrix.
        let whole = matrix(CONFUSION_SHOWN).to_string();
        assert!(
            whole.contains("rows: true class") && whole.lines().count() == 23,
            "{whole}"
        );
    }
}

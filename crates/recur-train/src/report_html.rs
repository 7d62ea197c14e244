//! `report.html` (and `recur train --report-html FILE`): one self-contained HTML page for a trained Job A
//! model, because curves are read faster than tables: the ROC curves of
//! the LSTM (and the trees and ensemble), the reliability diagram raw and
//! calibrated, the training curves, and the tables of the terminal report.
//! Charts are inline SVG drawn with plotters; the page loads nothing.

use plotters::prelude::*;
use recur_core::{Error, Result};
use recur_deploy::report::EpochRecord;
use recur_deploy::Report;
use std::fmt::Write as _;
use std::path::Path;

const COLOURS: [RGBColor; 3] = [
    RGBColor(31, 119, 180),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A chart of named polylines over `x_range` x `y_range`, as SVG text.
fn chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    x_range: std::ops::Range<f64>,
    y_range: std::ops::Range<f64>,
    lines: &[(String, Vec<(f64, f64)>)],
    diagonal: bool,
) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (460, 360)).into_drawing_area();
        root.fill(&WHITE)
            .map_err(|e| Error::Msg(format!("drawing a chart: {e}")))?;
        let mut c = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(52)
            .build_cartesian_2d(x_range.clone(), y_range.clone())
            .map_err(|e| Error::Msg(format!("drawing a chart: {e}")))?;
        c.configure_mesh()
            .x_desc(x_label)
            .y_desc(y_label)
            .draw()
            .map_err(|e| Error::Msg(format!("drawing a chart: {e}")))?;
        if diagonal {
            let lo = x_range.start.max(y_range.start);
            let hi = x_range.end.min(y_range.end);
            c.draw_series(LineSeries::new([(lo, lo), (hi, hi)], BLACK.mix(0.3)))
                .map_err(|e| Error::Msg(format!("drawing a chart: {e}")))?;
        }
        for (k, (name, pts)) in lines.iter().enumerate() {
            let col = COLOURS[k % COLOURS.len()];
            c.draw_series(LineSeries::new(pts.iter().copied(), col.stroke_width(2)))
                .map_err(|e| Error::Msg(format!("drawing a chart: {e}")))?
                .label(name.clone())
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], col.stroke_width(2)));
        }
        if !lines.is_empty() {
            c.configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK.mix(0.3))
                .position(SeriesLabelPosition::LowerRight)
                .draw()
                .map_err(|e| Error::Msg(format!("drawing a chart: {e}")))?;
        }
        root.present()
            .map_err(|e| Error::Msg(format!("drawing a chart: {e}")))?;
    }
    Ok(svg)
}

fn fmt(v: Option<f64>) -> String {
    v.map_or("-".into(), |x| format!("{x:.4}"))
}

/// The classes of a model of more than two in output order, as the
/// report names them; their indices where it names another number.
fn class_names(classes: &[String], k: usize) -> Vec<String> {
    if classes.len() == k {
        classes.to_vec()
    } else {
        (0..k).map(|i| i.to_string()).collect()
    }
}

/// A multi-class model's figures per class on `part`: the confusion
/// matrix (true class by row, predicted by column), then each class's
/// precision, recall, F1 and count, whose mean F1 is the macro F1 above.
fn confusion_tables(h: &mut String, conf: &[Vec<usize>], names: &[String], part: &str) {
    let k = conf.len();
    let _ = write!(
        h,
        "<h2>Per class ({part})</h2><p>The most probable class against the true one: rows are \
         the true class, columns the predicted.</p><table><tr><th>true \\ predicted</th>"
    );
    for n in names {
        let _ = write!(h, "<th>{}</th>", esc(n));
    }
    h.push_str("</tr>");
    for (i, row) in conf.iter().enumerate() {
        let _ = write!(h, "<tr><td>{}</td>", esc(&names[i]));
        for c in row {
            let _ = write!(h, "<td>{c}</td>");
        }
        h.push_str("</tr>");
    }
    h.push_str("</table><table><tr><th>class</th><th>precision</th><th>recall</th><th>F1</th><th>series</th></tr>");
    let ratio = |a: usize, b: usize| (b > 0).then(|| a as f64 / b as f64);
    for i in 0..k {
        let tp = conf[i][i];
        let truth: usize = conf[i].iter().sum();
        let predicted: usize = conf.iter().map(|r| r[i]).sum();
        let (p, r) = (ratio(tp, predicted), ratio(tp, truth));
        // As the macro F1 counts it: 2 tp / (true + predicted), none for
        // a class neither present nor predicted.
        let f1 = ratio(2 * tp, truth + predicted);
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{truth}</td></tr>",
            esc(&names[i]),
            fmt(p),
            fmt(r),
            fmt(f1)
        );
    }
    h.push_str("</table>");
}

/// Writes the page for the model in `dir` to `out` (atomically).
pub fn write(dir: &Path, report: &Report, history: &[EpochRecord], out: &Path) -> Result<()> {
    let mut h = String::new();
    let part = if report.test.is_some() {
        "test"
    } else {
        "validation"
    };
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>recur report: {}</title>\
         <style>body{{font:14px/1.4 system-ui,sans-serif;max-width:1000px;margin:1.5rem auto;padding:0 1rem;color:#222}}\
         table{{border-collapse:collapse;margin:.6rem 0}}td,th{{padding:.2rem .6rem;border-bottom:1px solid #ddd;text-align:right}}\
         td:first-child,th:first-child{{text-align:left}}.charts{{display:flex;flex-wrap:wrap;gap:1rem}}\
         .note{{background:#fff6dd;padding:.3rem .6rem}}</style></head><body>\
         <h1>recur: {}</h1><p>{} features x {} steps; best epoch {} of {}; pos_weight {}; seed {}</p>",
        esc(&dir.display().to_string()),
        esc(&dir.display().to_string()),
        report.features.len(),
        report.sequence_length,
        report.best_epoch,
        report.epochs_run,
        recur_deploy::report::readable(report.pos_weight, 4),
        report.seed
    );
    // The data: the label rule and each part's dates and base rate.
    if let Some(rule) = &report.label_rule {
        let _ = write!(h, "<h2>Data</h2><p>{}</p>", esc(rule));
    }
    if !report.parts.is_empty() {
        h.push_str("<table><tr><th>part</th><th>rows</th><th>from</th><th>to</th><th>windows</th><th>base rate</th></tr>");
        for p in &report.parts {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}..={}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.4}</td></tr>",
                esc(&p.part),
                p.first_row,
                p.last_row,
                esc(p.first_time.as_deref().unwrap_or("-")),
                esc(p.last_time.as_deref().unwrap_or("-")),
                p.windows,
                p.base_rate
            );
        }
        h.push_str("</table>");
    }
    for (name, v) in &report.constant_columns {
        let _ = write!(
            h,
            "<p>Left out: <code>{}</code> never changes on the training rows ({v}).</p>",
            esc(name)
        );
    }
    for w in &report.warnings {
        let _ = write!(h, "<p class=\"note\">Note: {}</p>", esc(w));
    }
    // The LSTM's own metrics.
    h.push_str("<h2>LSTM</h2><table><tr><th></th><th>ROC AUC</th><th>PR AUC</th><th>log loss</th><th>Brier</th><th>accuracy</th><th>windows</th></tr>");
    let mut rows = vec![("validation", &report.val)];
    if let Some(t) = &report.test {
        rows.push(("test", t));
    }
    for (name, m) in rows {
        let _ = write!(
            h,
            "<tr><td>{name}</td><td>{}</td><td>{}</td><td>{:.4}</td><td>{:.4}</td><td>{:.4}</td><td>{}</td></tr>",
            fmt(m.auc),
            fmt(m.pr_auc),
            m.logloss,
            m.brier,
            m.accuracy,
            m.n
        );
    }
    h.push_str("</table>");
    let shown = report.test.as_ref().unwrap_or(&report.val);
    if let Some(conf) = &shown.confusion {
        confusion_tables(
            &mut h,
            conf,
            &class_names(&report.classes, conf.len()),
            part,
        );
    }
    if let Some(models) = &report.models {
        let title = if models.contains_key("ensemble") {
            "LSTM, trees and ensemble"
        } else if models.len() > 1 {
            "LSTM and trees"
        } else {
            "The LSTM, raw and calibrated"
        };
        let _ = write!(
            h,
            "<h2>{title} ({part})</h2><p>Thresholds (by expected value) and calibration are fit on validation.</p>\
             <table><tr><th>model</th><th>ROC AUC</th><th>PR AUC</th><th>log loss</th><th>Brier</th><th>ECE</th><th>threshold</th><th>EV per row</th></tr>"
        );
        for (name, m) in models {
            for (label, v) in [("raw", &m.raw), ("calibrated", &m.calibrated)] {
                let s = v.test.as_ref().unwrap_or(&v.val);
                let cells: String = s
                    .cells(v.threshold)
                    .iter()
                    .map(|c| format!("<td>{c}</td>"))
                    .collect();
                let _ = write!(h, "<tr><td>{name} ({label})</td>{cells}</tr>");
            }
        }
        h.push_str("</table>");
        if let Some(w) = &report.weights {
            let _ = write!(
                h,
                "<p>Ensemble weights: trees {:.3}, LSTM {:.3}.",
                w.trees, w.lstm
            );
            if let Some(l) = report.ensemble_auc_lift {
                let _ = write!(
                    h,
                    " Ensemble {part} AUC minus the best single model's: {l:+.4}."
                );
            }
            h.push_str("</p>");
        }
    }
    h.push_str("<div class=\"charts\">");
    let roc: Vec<(String, Vec<(f64, f64)>)> = report
        .roc
        .iter()
        .map(|(k, v)| (k.clone(), v.iter().map(|p| (p[0], p[1])).collect()))
        .collect();
    if !roc.is_empty() {
        h.push_str(&chart(
            &format!("ROC ({part})"),
            "false positive rate",
            "true positive rate",
            0.0..1.0,
            0.0..1.0,
            &roc,
            true,
        )?);
    }
    if let Some(models) = &report.models {
        for (name, m) in models {
            let line = |bins: &[recur_deploy::calibrate::Bin]| -> Vec<(f64, f64)> {
                bins.iter()
                    .map(|b| (b.mean_predicted, b.fraction_positive))
                    .collect()
            };
            let lines = vec![
                ("raw".to_string(), line(&m.reliability_raw)),
                ("calibrated".to_string(), line(&m.reliability_calibrated)),
            ];
            h.push_str(&chart(
                &format!("reliability: {name} ({part})"),
                "mean predicted probability",
                "fraction positive",
                0.0..1.0,
                0.0..1.0,
                &lines,
                true,
            )?);
        }
    }
    if !history.is_empty() {
        let e = history.len() as f64;
        let pts = |f: &dyn Fn(&EpochRecord) -> f64| -> Vec<(f64, f64)> {
            history.iter().map(|r| (r.epoch as f64, f(r))).collect()
        };
        let losses = vec![
            ("train loss".to_string(), pts(&|r| r.train_loss)),
            ("validation loss".to_string(), pts(&|r| r.val_loss)),
        ];
        let (lo, hi) = losses
            .iter()
            .flat_map(|(_, v)| v.iter().map(|p| p.1))
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
                (a.min(v), b.max(v))
            });
        let pad = ((hi - lo) * 0.1).max(1e-3);
        h.push_str(&chart(
            "training curves",
            "epoch",
            "loss",
            1.0..e.max(2.0),
            (lo - pad)..(hi + pad),
            &losses,
            false,
        )?);
        let auc: Vec<(f64, f64)> = history
            .iter()
            .filter_map(|r| r.val_auc.map(|a| (r.epoch as f64, a)))
            .collect();
        if !auc.is_empty() {
            let (lo, hi) = auc
                .iter()
                .fold((1.0f64, 0.0f64), |(a, b), p| (a.min(p.1), b.max(p.1)));
            h.push_str(&chart(
                "validation ROC AUC",
                "epoch",
                "ROC AUC",
                1.0..e.max(2.0),
                (lo - 0.01)..(hi + 0.01),
                &[("val AUC".into(), auc)],
                false,
            )?);
        }
    }
    h.push_str("</div>");
    if let Some(sel) = &report.selection {
        h.push_str("<h2>Feature selection (training rows only)</h2><table><tr><th>feature</th><th>std</th><th>autocorr</th><th>noise ratio</th><th>outliers</th><th>trend</th><th>importance</th><th>verdict</th></tr>");
        for t in sel {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{:.4}</td><td>{:.3}</td><td>{}</td><td>{:.2}%</td><td>{:.3}</td><td>{:.4}</td><td>{}</td></tr>",
                esc(&t.feature),
                t.std,
                t.autocorr,
                if t.noise_ratio.is_finite() { format!("{:.3}", t.noise_ratio) } else { "inf".into() },
                t.outlier_share * 100.0,
                t.trend,
                t.importance,
                esc(&if t.kept { "kept".to_string() } else { format!("dropped: {}", t.dropped_by.as_deref().unwrap_or("")) })
            );
        }
        h.push_str("</table>");
    }
    if let Some(t) = &report.trees {
        let _ = write!(h, "<h2>Trees</h2><p>{} ({} trees on {} inputs)</p><table><tr><th>input</th><th>importance (total gain)</th></tr>", esc(&t.source), t.trees, t.inputs.len());
        for (n, v) in &t.importance {
            let _ = write!(h, "<tr><td>{}</td><td>{v:.4}</td></tr>", esc(n));
        }
        h.push_str("</table>");
    }
    h.push_str("</body></html>\n");
    recur_core::fsx::write_atomic(out, h.as_bytes())
}

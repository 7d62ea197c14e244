//! `recur lvm leaderboard`: every listed model directory measured the same
//! way on the same data, so a choice between models rests on numbers taken
//! from the very checkpoints listed (bug 6 of the original timed another
//! model than the one it listed, on random inputs).
//!
//! Per model: parameters and their memory, validation and OOD cosine,
//! batch-1 latency (p50, p95, mean over 200 runs after 10 warm-ups, each
//! run on a different real window), throughput at batch 1, 8, 32 and 128,
//! efficiency `val_cosine / mean_ms * 1000`, and the training time the
//! directory's history records.

use crate::lvm_eval::{baseline_predict, predict, stats};
use candle_core::{Device, Result as CResult, Tensor};
use recur_core::progress::Progress;
use recur_core::stats::percentile;
use recur_data::npz::VectorWindows;
use recur_models::{Baseline, Lvm};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Instant;

pub const BATCHES: [usize; 4] = [1, 8, 32, 128];
const WARMUP: usize = 10;
const RUNS: usize = 200;

#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub name: String,
    pub kind: String,
    pub params: Option<usize>,
    pub param_mb: Option<f64>,
    pub val_cosine: f64,
    pub ood_cosine: Option<f64>,
    pub lat_b1_p50_ms: Option<f64>,
    pub lat_b1_p95_ms: Option<f64>,
    pub lat_b1_mean_ms: Option<f64>,
    /// Sequences per second at each batch size.
    pub throughput: BTreeMap<usize, f64>,
    pub efficiency: Option<f64>,
    /// Training time, the epochs' sum in the directory's
    /// `training_history.json` (absent for an imported model).
    pub train_seconds: Option<f64>,
    /// Epochs trained.
    pub epochs: Option<usize>,
}

/// `[n, C, D]` windows `start..start + n` (wrapping) of `w`.
fn windows(w: &VectorWindows, start: usize, n: usize, dev: &Device) -> CResult<Tensor> {
    let idx: Vec<usize> = (0..n).map(|i| (start + i) % w.len()).collect();
    Tensor::from_vec(w.gather_contexts(&idx), (n, w.context, w.dim), dev)
}

/// Measures one model.
pub fn measure(
    name: &str,
    model: &Lvm,
    val: &VectorWindows,
    ood: Option<&VectorWindows>,
    dev: &Device,
    progress: &dyn Progress,
) -> CResult<Entry> {
    let val_cosine = stats(&predict(model, val, dev)?, &val.targets(), val.dim).cosine_mean;
    let ood_cosine = match ood {
        Some(o) => Some(stats(&predict(model, o, dev)?, &o.targets(), o.dim).cosine_mean),
        None => None,
    };
    // Batch-1 latency, each run on the next real window.
    let inputs: Vec<Tensor> = (0..WARMUP + RUNS)
        .map(|i| windows(val, i, 1, dev))
        .collect::<CResult<_>>()?;
    for x in &inputs[..WARMUP] {
        model.predict(x)?;
    }
    let mut lat = Vec::with_capacity(RUNS);
    for x in &inputs[WARMUP..] {
        let t0 = Instant::now();
        model.predict(x)?;
        lat.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    lat.sort_by(f64::total_cmp);
    let mean = lat.iter().sum::<f64>() / lat.len() as f64;
    let mut throughput = BTreeMap::new();
    for b in BATCHES {
        let xs: Vec<Tensor> = (0..4)
            .map(|i| windows(val, i * b, b, dev))
            .collect::<CResult<_>>()?;
        model.predict(&xs[0])?;
        let (t0, mut n) = (Instant::now(), 0usize);
        while n < 3 || t0.elapsed().as_secs_f64() < 0.3 {
            model.predict(&xs[n % xs.len()])?;
            n += 1;
        }
        throughput.insert(b, (n * b) as f64 / t0.elapsed().as_secs_f64());
    }
    progress.note(&format!(
        "measured {name}: p50 {:.3} ms",
        percentile(&lat, 50.0)
    ));
    let params = model.n_params();
    Ok(Entry {
        name: name.to_string(),
        kind: model.arch.kind.to_string(),
        params: Some(params),
        param_mb: Some(params as f64 * 4.0 / 1e6),
        val_cosine,
        ood_cosine,
        lat_b1_p50_ms: Some(percentile(&lat, 50.0)),
        lat_b1_p95_ms: Some(percentile(&lat, 95.0)),
        lat_b1_mean_ms: Some(mean),
        throughput,
        efficiency: Some(val_cosine / mean * 1000.0),
        train_seconds: None,
        epochs: None,
    })
}

/// The baselines' rows: cosine only (they cost nothing to run).
pub fn baselines(
    val: &VectorWindows,
    ood: Option<&VectorWindows>,
    dev: &Device,
) -> CResult<Vec<Entry>> {
    Baseline::ALL
        .iter()
        .map(|&b| {
            let v = stats(&baseline_predict(b, val, dev)?, &val.targets(), val.dim).cosine_mean;
            let o = match ood {
                Some(o) => {
                    Some(stats(&baseline_predict(b, o, dev)?, &o.targets(), o.dim).cosine_mean)
                }
                None => None,
            };
            Ok(Entry {
                name: b.name().to_string(),
                kind: "baseline".into(),
                params: None,
                param_mb: None,
                val_cosine: v,
                ood_cosine: o,
                lat_b1_p50_ms: None,
                lat_b1_p95_ms: None,
                lat_b1_mean_ms: None,
                throughput: BTreeMap::new(),
                efficiency: None,
                train_seconds: None,
                epochs: None,
            })
        })
        .collect()
}

/// A model's name as one Markdown table cell: a `|` in a folder's name
/// added a column, and a newline split the row.
fn cell(name: &str) -> String {
    recur_core::terminal::inline(name).replace('|', "\\|")
}

/// The leaderboard as a Markdown table, best validation cosine first.
pub fn markdown(entries: &[Entry]) -> String {
    let mut rows: Vec<&Entry> = entries.iter().collect();
    rows.sort_by(|a, b| b.val_cosine.total_cmp(&a.val_cosine));
    let f = |v: Option<f64>, p: usize| v.map_or("-".to_string(), |v| format!("{v:.p$}"));
    let mut s = String::from(
        "| model | kind | params | MB | val cosine | OOD cosine | p50 ms | p95 ms | mean ms | b1 seq/s | b8 | b32 | b128 | efficiency | training |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for e in rows {
        let t = |b: usize| {
            e.throughput
                .get(&b)
                .map_or("-".to_string(), |v| format!("{v:.0}"))
        };
        s.push_str(&format!(
            "| {} | {} | {} | {} | {:.4} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            cell(&e.name),
            e.kind,
            e.params.map_or("-".to_string(), |p| p.to_string()),
            f(e.param_mb, 2),
            e.val_cosine,
            f(e.ood_cosine, 4),
            f(e.lat_b1_p50_ms, 3),
            f(e.lat_b1_p95_ms, 3),
            f(e.lat_b1_mean_ms, 3),
            t(1),
            t(8),
            t(32),
            t(128),
            f(e.efficiency, 1),
            match (e.epochs, e.train_seconds) {
                (Some(n), Some(s)) => format!("{n} epochs, {s:.1} s"),
                _ => "-".to_string(),
            },
        ));
    }
    s
}

/// The whole leaderboard: every model directory in `models` loaded and
/// measured on `data` (its held-out articles only, when `heldout`) and
/// `ood`, then both baselines. All models must share one context length
/// and take the data's vector dimension.
pub fn run(
    models: &[std::path::PathBuf],
    data: &std::path::Path,
    ood: Option<&std::path::Path>,
    heldout: bool,
    dev: &Device,
    progress: &dyn Progress,
) -> recur_core::Result<Vec<Entry>> {
    use recur_core::Error;
    let mut loaded = Vec::new();
    for dir in models {
        loaded.push((dir, crate::model_dir::load_lvm(dir, dev)?));
    }
    let first = &loaded
        .first()
        .ok_or_else(|| Error::Msg("no model to measure".into()))?
        .1;
    let c = first.arch.context;
    let read = |p: &std::path::Path| crate::lvm_eval::read_windows(p, c, progress);
    let mut val = read(data)?;
    if heldout {
        let dirs: Vec<&std::path::Path> = models.iter().map(|p| p.as_path()).collect();
        let (v, articles) = crate::model_dir::held_out_windows(&val, data, &dirs)?;
        progress.note(&format!(
            "validation: {} windows of the {articles} articles the models held out",
            v.len()
        ));
        val = v;
    }
    let ood_w = ood.map(read).transpose()?;
    let mut entries = Vec::new();
    // Each model by its folder's name, or by its path where two folders
    // share a name (runs/a/lvm and runs/b/lvm).
    let short = |d: &std::path::Path| d.file_name().map(|n| n.to_string_lossy().to_string());
    let shared =
        |d: &std::path::Path| loaded.iter().filter(|(o, _)| short(o) == short(d)).count() > 1;
    for (dir, m) in &loaded {
        if m.arch.context != c {
            return Err(Error::Msg(format!(
                "{}: context {} differs from the first model's {c}; compare models of one context",
                dir.display(),
                m.arch.context
            )));
        }
        for (w, p) in std::iter::once((&val, data)).chain(ood_w.as_ref().zip(ood)) {
            crate::lvm_eval::check_dim(w, m.arch.input_dim, p)
                .map_err(|e| Error::Msg(format!("{e} (the model in {})", dir.display())))?;
        }
        let name = match short(dir) {
            Some(n) if !shared(dir) => n,
            _ => dir.display().to_string(),
        };
        let mut e = measure(&name, m, &val, ood_w.as_ref(), dev, progress)?;
        if let Ok(h) = recur_core::fsx::read_json::<Vec<crate::lvm_eval::LvmEpoch>>(
            &dir.join(crate::model_dir::LVM_HISTORY),
        ) {
            e.epochs = Some(h.len());
            e.train_seconds = Some(h.iter().map(|r| r.seconds).sum());
        }
        entries.push(e);
    }
    entries.extend(baselines(&val, ood_w.as_ref(), dev)?);
    Ok(entries)
}

#[cfg(test)]
mod tests {
    /// A folder's name stays one cell of one row.
    #[test]
    fn a_name_with_a_bar_or_a_newline_is_one_cell() {
        assert_eq!(super::cell("lv|a\nb"), "lv\\|a\\u{a}b");
        assert_eq!(super::cell("lstm"), "lstm");
    }
}

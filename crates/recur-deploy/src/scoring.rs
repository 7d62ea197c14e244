//! A Job A model applied to files: score every row of a file a model
//! can score, evaluate a labelled file in the training report's layout
//! (the validation and test parts exactly as training cut them, when the
//! file is the training file), and write the per-row predictions.

use crate::multiclass::softmax;
use crate::predictor::{Prediction, Predictor, Series};
use crate::report::{scores, Scores};
use crate::Metrics;
use candle_core::Device;
use recur_core::config::Layout;
use recur_core::{Error, Result};
use recur_data::output::{write_table, OutColumn};
use recur_data::prepare::feature_rows;
use recur_data::target::{row_labels, target_column};
use recur_data::Table;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The predictions of every row of `input` that a model scores.
#[derive(Debug)]
pub struct FileScores {
    pub source: String,
    pub predictions: Vec<Prediction>,
    /// The time column's name and its value at each prediction's row.
    pub times: Option<(String, Vec<String>)>,
    /// Whether the file holds the target (so each row has its label).
    pub has_labels: bool,
    /// The file's row count.
    pub n_rows: usize,
    /// What the user should know about the file (a missing time column).
    pub notes: Vec<String>,
}

impl FileScores {
    /// Rows where some model scored but the deployed model could not, as
    /// `(first, last, why)` runs, for the user to be told.
    pub fn partial_rows(&self, p: &Predictor) -> Option<(usize, usize, String)> {
        let partial: Vec<usize> = self
            .predictions
            .iter()
            .filter(|x| x.probability.is_none())
            .map(|x| x.row)
            .collect();
        let (first, last) = (*partial.first()?, *partial.last()?);
        let why = if p.max_lag() + 1 > p.sequence_length() {
            format!(
                "the trees read {} lag rows, the LSTM {} rows: only the LSTM scores them",
                p.max_lag(),
                p.sequence_length()
            )
        } else {
            format!(
                "the LSTM needs {} rows: only the trees score them",
                p.sequence_length()
            )
        };
        Some((first, last, why))
    }
}

/// Scores the rows of `input` (rows layout: every row from the first any
/// model scores; sequences: every series); with `need_labels`, the target
/// must be in the file.
pub fn score_file(p: &Predictor, input: &Path, need_labels: bool) -> Result<FileScores> {
    if p.dir.config.data.layout == Layout::Sequences {
        let data = p.dir.windows_of(input, need_labels)?;
        return Ok(FileScores {
            source: input.display().to_string(),
            predictions: p.score_sequences(&data.windows)?,
            times: None,
            has_labels: true,
            n_rows: data.windows.len(),
            notes: data.notes,
        });
    }
    let f = RowsFile::read(p, input, need_labels)?;
    let rows = (p.first_row()..f.table.n_rows()).collect();
    f.score(p, rows)
}

/// The predictions of every row of a table in memory that the model
/// scores (rows layout); as [`score_file`] otherwise.
///
/// ```no_run
/// # fn main() -> recur_core::Result<()> {
/// # let table: recur_data::Table = unimplemented!();
/// let p = recur_deploy::Predictor::load("runs/demo".as_ref(), &candle_core::Device::Cpu)?;
/// let scores = recur_deploy::score_table(&p, table, false)?;
/// let probabilities: Vec<Option<f64>> = scores.predictions.iter().map(|s| s.probability).collect();
/// # Ok(())
/// # }
/// ```
pub fn score_table(p: &Predictor, table: Table, need_labels: bool) -> Result<FileScores> {
    let f = RowsFile::of(p, table, need_labels)?;
    let rows = (p.first_row()..f.table.n_rows()).collect();
    f.score(p, rows)
}

/// A rows-layout file read once: its table, the model's features and each
/// row's label (none when the file lacks the target).
struct RowsFile {
    table: Table,
    series: Series,
    has_labels: bool,
}

impl RowsFile {
    fn read(p: &Predictor, input: &Path, need_labels: bool) -> Result<RowsFile> {
        let d = &p.dir.config.data;
        RowsFile::of(p, recur_data::prepare::read_scored(input, d)?, need_labels)
    }

    fn of(p: &Predictor, t: Table, need_labels: bool) -> Result<RowsFile> {
        let d = &p.dir.config.data;
        // Windows run over rows in file order, as in training: a file out
        // of time order would give windows across unrelated days.
        recur_data::prepare::check_scored_time_order(&t, d)?;
        let n = t.n_rows();
        let values = feature_rows(&t, p.features())?;
        let has_labels = target_column(&d.target).is_some_and(|c| t.index_of(c).is_ok());
        if need_labels && !has_labels {
            // row_labels names the missing column.
            row_labels(&t, &d.target)?;
        }
        let labels = if has_labels {
            recur_data::target::scored_row_labels(&t, &d.target)?
        } else {
            vec![None; n]
        };
        let first = p.first_row();
        if n <= first {
            return Err(Error::data(
                &t.source,
                format!(
                    "{n} row{}, but the model's first prediction needs {} (model.sequence_length {}, tree lags up to {})",
                    if n == 1 { "" } else { "s" },
                    first + 1,
                    p.sequence_length(),
                    p.max_lag()
                ),
            ));
        }
        Ok(RowsFile {
            table: t,
            series: Series { values, labels },
            has_labels,
        })
    }

    /// The predictions of `rows` (increasing), with each row's time.
    fn score(&self, p: &Predictor, rows: Vec<usize>) -> Result<FileScores> {
        let t = &self.table;
        let preds = p
            .score(&[(self.series.clone(), rows)])
            .map_err(|e| Error::data(&t.source, e.to_string()))?
            .pop()
            .unwrap_or_default();
        let mut notes = Vec::new();
        let times = match &p.dir.config.data.time_column {
            Some(tc) if t.index_of(tc).is_ok() => {
                let col = t.column(tc)?;
                Some((
                    tc.clone(),
                    preds.iter().map(|x| col.written(x.row)).collect(),
                ))
            }
            Some(tc) => {
                notes.push(format!(
                    "{} has no time column `{tc}` (data.time_column): the output has rows only",
                    t.source
                ));
                None
            }
            None => None,
        };
        Ok(FileScores {
            source: t.source.clone(),
            predictions: preds,
            times,
            has_labels: self.has_labels,
            n_rows: t.n_rows(),
            notes,
        })
    }
}

/// One model's figures at its saved threshold, per part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalVariant {
    pub threshold: f64,
    /// `validation` and `test` (the training file, cut as in training) or `all`.
    pub parts: BTreeMap<String, Scores>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalModel {
    pub raw: EvalVariant,
    pub calibrated: EvalVariant,
}

/// What `recur eval` reports: every model, raw and calibrated, at the
/// thresholds saved at training, on the rows every model scored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub input: String,
    /// Whether `input` is the file the model was trained on (same SHA-256);
    /// then its validation and test parts are scored as training scored them.
    pub training_file: bool,
    pub deployed: String,
    pub models: BTreeMap<String, EvalModel>,
    /// Rows every model scored, per part.
    pub rows: BTreeMap<String, usize>,
    /// Labelled rows left out because only some models score them.
    pub partial_rows: usize,
    /// With more than two classes, the figures of the softmax (`models`
    /// is then empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multiclass: Option<MultiEval>,
    /// Said with the figures: a model fitted from data in memory (Python)
    /// has no training file to know, so its "all" includes the rows it
    /// trained on (given its training CSV, it was scored so in silence).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A model of more than two classes on a labelled file: its metrics
/// before and after the temperature fit at training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MultiEval {
    pub classes: Vec<String>,
    pub temperature: f64,
    pub raw: Metrics,
    pub calibrated: Metrics,
}

/// Evaluates a saved model on the labelled rows of `input`.
///
/// ```no_run
/// # fn main() -> recur_core::Result<()> {
/// let p = recur_deploy::Predictor::load("runs/demo".as_ref(), &candle_core::Device::Cpu)?;
/// let e = recur_deploy::evaluate(&p, "data/rainfall.csv".as_ref())?;
/// print!("{e}"); // the table `recur eval` prints
/// // The deployed model (`ensemble` with trees, `lstm` without), calibrated.
/// let deployed = &e.models[&e.deployed];
/// let test_auc = deployed.calibrated.parts.get("test").and_then(|s| s.auc);
/// # Ok(())
/// # }
/// ```
pub fn evaluate(p: &Predictor, input: &Path) -> Result<Evaluation> {
    let cfg = &p.dir.config;
    let source = input.display().to_string();
    let k = p.dir.model.outputs();
    let sha = recur_core::fsx::sha256_file(input)?;
    let own_series = sequences_training_note(p, &sha);
    if k > 1 {
        let data = p.dir.windows_of(input, true)?;
        let z = crate::predictor::predict_logits(&p.dir.model, &data.windows, &Device::Cpu)?;
        let y = data.windows.labels();
        let t = p.deployment.temperature.unwrap_or(1.0);
        let m = |t: f64| Metrics::compute_multi(&softmax(&z, k, t), &y, k);
        return Ok(Evaluation {
            input: source,
            training_file: false,
            deployed: p.deployment.deployed.clone(),
            models: BTreeMap::new(),
            rows: BTreeMap::from([("all".to_string(), y.len())]),
            partial_rows: 0,
            multiclass: Some(MultiEval {
                classes: p.classes().to_vec(),
                temperature: t,
                raw: m(1.0),
                calibrated: m(t),
            }),
            note: own_series,
        });
    }
    let training_file = cfg.data.layout == Layout::Rows
        && p.dir.info.data_sha256.as_deref() == Some(sha.as_str())
        && p.dir.info.time_split.is_some();
    let mut parts: Vec<(String, FileScores)> = Vec::new();
    if training_file {
        let split = p.dir.info.time_split.expect("checked above");
        let f = RowsFile::read(p, input, true)?;
        let (l, h) = (p.sequence_length(), cfg.data.target.horizon);
        let labels = &f.series.labels;
        for (name, r) in [("validation", split.val), ("test", split.test)] {
            // The windows training put in this part, in the same order, so
            // the LSTM runs them in the batches training did.
            let rows: Vec<usize> = (l - 1..labels.len())
                .filter(|&row| labels[row].is_some() && r.holds(row + 1 - l, row, row + h))
                .collect();
            if !rows.is_empty() {
                parts.push((name.into(), f.score(p, rows)?));
            }
        }
    } else {
        parts.push(("all".into(), score_file(p, input, true)?));
    }
    let d = &p.deployment;
    let mut models: BTreeMap<String, EvalModel> = BTreeMap::new();
    let mut rows = BTreeMap::new();
    let mut partial_rows = 0;
    for (part, fs) in &parts {
        let complete: Vec<&Prediction> = fs
            .predictions
            .iter()
            .filter(|x| x.label.is_some())
            .filter(|x| every_model_scored(p, x))
            .collect();
        partial_rows +=
            fs.predictions.iter().filter(|x| x.label.is_some()).count() - complete.len();
        if complete.is_empty() {
            continue;
        }
        rows.insert(part.clone(), complete.len());
        let y: Vec<f32> = complete.iter().map(|x| x.label.unwrap_or(0.0)).collect();
        for (name, dec) in &d.models {
            let raw: Vec<f64> = complete
                .iter()
                .map(|x| Predictor::raw_of(x, name).unwrap_or(f64::NAN))
                .collect();
            let cal = dec.calibrator.apply_all(&raw);
            let m = models.entry(name.clone()).or_insert_with(|| EvalModel {
                raw: EvalVariant {
                    threshold: dec.threshold_raw,
                    parts: BTreeMap::new(),
                },
                calibrated: EvalVariant {
                    threshold: dec.threshold_calibrated,
                    parts: BTreeMap::new(),
                },
            });
            m.raw
                .parts
                .insert(part.clone(), scores(&raw, &y, dec.threshold_raw, cfg));
            m.calibrated.parts.insert(
                part.clone(),
                scores(&cal, &y, dec.threshold_calibrated, cfg),
            );
        }
    }
    if rows.is_empty() {
        return Err(Error::data(
            source,
            "no labelled row that every model scores: nothing to evaluate",
        ));
    }
    Ok(Evaluation {
        input: source,
        training_file,
        deployed: d.deployed.clone(),
        models,
        rows,
        partial_rows,
        multiclass: None,
        note: {
            let unnamed = cfg.data.layout == Layout::Rows && p.dir.info.data_sha256.is_none();
            match (unnamed, in_sample_note(p, &parts)) {
                (true, overlap) => Some(format!(
                    "data.json names no training file (the model was fitted from data in \
                     memory, in Python, or by an older recur), so recur cannot tell whether \
                     this is it: every labelled row is scored, any the model trained on \
                     included (report.json holds its validation and test figures){}",
                    overlap.map(|o| format!("; {o}")).unwrap_or_default()
                )),
                (false, Some(o)) => Some(format!(
                    "this file is not the training file's bytes (that file is scored by \
                     part); {o}"
                )),
                (false, None) => own_series,
            }
        },
    })
}

/// A sequences-layout model given its own training file (by its bytes):
/// scored whole, as the README says, but the figures are of the series it
/// trained on too (it said nothing, and `training_file` was false).
fn sequences_training_note(p: &Predictor, sha: &str) -> Option<String> {
    let info = &p.dir.info;
    (p.dir.config.data.layout == Layout::Sequences && info.data_sha256.as_deref() == Some(sha))
        .then(|| {
            let s = &p.dir.config.data.split;
            format!(
                "this is the model's training file: its {} series were drawn at random into \
                 training ({:.0}%), validation ({:.0}%) and test parts, and all are scored here, \
                 so the figures are mostly in-sample (report.json holds the held-out parts')",
                info.n_rows,
                s.train * 100.0,
                s.val * 100.0
            )
        })
}

/// For a file scored whole ("all"), what its time column says of rows of
/// the model's training and validation periods (`data.json`'s last times
/// of each): the model trained on the first and fitted early stopping,
/// calibration and the threshold on the second, so figures over them are
/// in-sample. The training file is known by its bytes only, and the same
/// rows as Parquet, or with a day appended, were scored as "all" in
/// silence (85% of them rows the model had fitted). `None` where nothing
/// overlaps or the times cannot be compared (no time column, text that is
/// neither numbers nor ISO times).
fn in_sample_note(p: &Predictor, parts: &[(String, FileScores)]) -> Option<String> {
    let [(part, fs)] = parts else { return None };
    if part != "all" {
        return None;
    }
    let (tc, times) = fs.times.as_ref()?;
    let span = |name: &str| {
        let s = p.dir.info.parts.iter().find(|s| s.part == name)?;
        Some((s.first_time.clone()?, s.last_time.clone()?))
    };
    let ((train_start, train_end), (val_start, val_end)) = (span("train")?, span("validation")?);
    // The rows eval counts (labelled, and scored by every model), then
    // the four ends, typed together.
    let mut cells: Vec<String> = fs
        .predictions
        .iter()
        .zip(times)
        .filter(|(x, _)| x.label.is_some() && every_model_scored(p, x))
        .map(|(_, t)| t.clone())
        .collect();
    let n = cells.len();
    cells.extend([&train_start, &train_end, &val_start, &val_end].map(|t| t.to_string()));
    let place: Vec<Option<u8>> = match recur_data::table::column_of(&cells) {
        recur_data::table::Column::Numeric(v) => {
            let e = &v[n..];
            if e.iter().any(|x| x.is_nan()) {
                return None;
            }
            v[..n]
                .iter()
                .map(|&t| (!t.is_nan()).then(|| part_of(t, e)))
                .collect()
        }
        _ => {
            use recur_data::iso_time::{looks_iso, parse, IsoTime};
            let parsed: Vec<Option<IsoTime>> = cells
                .iter()
                .map(|c| looks_iso(c).then(|| parse(c).ok()).flatten())
                .collect();
            let e: Vec<IsoTime> = parsed[n..].iter().copied().collect::<Option<_>>()?;
            // Times with a UTC offset and times without cannot be placed
            // against each other (their order as values says nothing).
            let kind = |t: &IsoTime| matches!(t, IsoTime::Instant(_));
            let k = kind(&e[0]);
            if parsed.iter().flatten().any(|t| kind(t) != k) {
                return None;
            }
            parsed[..n]
                .iter()
                .map(|t| t.map(|t| part_of(t, &e)))
                .collect()
        }
    };
    let count = |k: u8| place.iter().filter(|&&x| x == Some(k)).count();
    let (in_train, in_val) = (count(0), count(1));
    if in_train + in_val == 0 {
        return None;
    }
    Some(format!(
        "by its time column `{tc}`, {in_train} of the {n} labelled rows scored are of the \
         model's training period ({train_start} to {train_end}) and {in_val} of its validation \
         period ({val_start} to {val_end}; each period from the first row its first window \
         reads): the model trained on the first and fitted early stopping, calibration and \
         the threshold on the second, so figures over them are in-sample; to score unseen rows only, give the rows after {val_end} (with the {} \
         before them that the first scored row reads)",
        p.min_rows().saturating_sub(1)
    ))
}

/// Whether every model of `p` scored the row `x` (the LSTM needs a full
/// window, the trees their lags): the rows eval counts.
fn every_model_scored(p: &Predictor, x: &Prediction) -> bool {
    x.p_lstm.is_some() && (p.trees.is_none() || x.p_trees.is_some())
}

/// A time's part against the ends `[train start, train end, validation
/// start, validation end]`: 0 training, 1 validation, 2 neither (before
/// training, in the gap between, after validation).
fn part_of<T: PartialOrd>(t: T, e: &[T]) -> u8 {
    if e[0] <= t && t <= e[1] {
        0
    } else if e[2] <= t && t <= e[3] {
        1
    } else {
        2
    }
}

/// Writes the per-row table of `scores` to `output`: `row`, the time
/// column, `label` (when the file has the target), `p_lstm`, `p_trees` and
/// `p_ensemble` (with trees), `probability` and `decision`; with more than
/// two classes, `row`, `label`, `p_<class>` for each class, `class` (the
/// most probable) and `probability` (its probability). CSV, or Parquet
/// when `output` ends in `.parquet`; atomically. An output may not be the
/// input.
pub fn write_predictions(
    p: &Predictor,
    scores: &FileScores,
    input: &Path,
    output: &Path,
) -> Result<()> {
    // Not the input, nor into this or any other model directory.
    recur_core::fsx::check_outputs(input, &p.path, &[output])?;
    let pr = &scores.predictions;
    let mut cols: Vec<OutColumn> =
        vec![OutColumn::int("row", pr.iter().map(|x| Some(x.row as i64)))];
    if let Some((name, t)) = &scores.times {
        cols.push(OutColumn::Text(
            name.clone(),
            t.iter().cloned().map(Some).collect(),
        ));
    }
    let classes = p.classes();
    if !classes.is_empty() {
        if scores.has_labels {
            cols.push(OutColumn::Text(
                "label".into(),
                pr.iter()
                    .map(|x| x.label.map(|c| classes[c as usize].clone()))
                    .collect(),
            ));
        }
        for (c, name) in classes.iter().enumerate() {
            cols.push(OutColumn::float(
                &format!("p_{name}"),
                pr.iter()
                    .map(|x| x.class_probabilities.as_ref().map(|q| q[c])),
            ));
        }
        cols.push(OutColumn::Text(
            "class".into(),
            pr.iter().map(|x| x.class.clone()).collect(),
        ));
        cols.push(OutColumn::float(
            "probability",
            pr.iter().map(|x| x.probability),
        ));
        return write_table(output, &cols);
    }
    if scores.has_labels {
        cols.push(OutColumn::float(
            "label",
            pr.iter().map(|x| x.label.map(f64::from)),
        ));
    }
    cols.push(OutColumn::float("p_lstm", pr.iter().map(|x| x.p_lstm)));
    if p.trees.is_some() {
        cols.push(OutColumn::float("p_trees", pr.iter().map(|x| x.p_trees)));
        cols.push(OutColumn::float(
            "p_ensemble",
            pr.iter().map(|x| x.p_ensemble),
        ));
    }
    cols.push(OutColumn::float(
        "probability",
        pr.iter().map(|x| x.probability),
    ));
    cols.push(OutColumn::int(
        "decision",
        pr.iter().map(|x| x.decision.map(i64::from)),
    ));
    write_table(output, &cols)
}

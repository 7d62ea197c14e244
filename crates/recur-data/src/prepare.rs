//! The data pipeline of Job A in one place: read the table, resolve the
//! features and the target, split in time, fit the scaler on train, and lay
//! the windows over one scaled float32 buffer. Training and inference share
//! the same steps, so a model sees at prediction time exactly the
//! transformation it was trained on.

use crate::iso_time;
use crate::scaler::Scaler;
use crate::select::{ewma, select, Selection};
use crate::split::{time_split, RowRange, TimeSplit};
use crate::table::{clip, Column, Table};
use crate::target::{class_labels, row_labels, target_column, ClassLabels};
use crate::ucr::Sequences;
use crate::windows::{sliding, Window, WindowSet};
use recur_core::config::{ClassifierKind, Config, DataConfig, Layout};
use recur_core::rng::Rng;
use recur_core::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where the training data came from and how it was cut; saved in the report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SplitInfo {
    pub layout: Layout,
    pub n_rows: usize,
    /// Row ranges and gap of the time split (rows layout).
    pub time_split: Option<TimeSplit>,
    /// The class taken as positive (sequences layout, two classes).
    pub positive_label: Option<String>,
    /// The other class (sequences layout, two classes; absent in models
    /// made before it was kept, which then take any other label as it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub negative_label: Option<String>,
    /// Every class in output order (sequences layout, more than two).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub classes: Vec<String>,
    /// Whether the training series differ in length (sequences layout):
    /// then any length scores; else only the training length.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub variable_length: bool,
    /// SHA-256 of the training data file, so `recur eval` knows it is
    /// given that file and can score its validation and test parts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_sha256: Option<String>,
    /// How the label was made, in words (e.g. the price rule).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_rule: Option<String>,
    /// Each part's rows, times and base rate (rows layout).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<PartSpan>,
}

impl SplitInfo {
    /// Logits the classifier puts out: 1 for two classes, else one a class.
    pub fn outputs(&self) -> usize {
        if self.classes.is_empty() {
            1
        } else {
            self.classes.len()
        }
    }
}

/// One part of the time split as a user reads it: rows, first and last
/// time, labelled windows and the share of positives among them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartSpan {
    pub part: String,
    pub first_row: usize,
    pub last_row: usize,
    pub first_time: Option<String>,
    pub last_time: Option<String>,
    pub windows: usize,
    pub base_rate: f64,
}

fn span(t: &Table, d: &DataConfig, part: &str, set: &WindowSet) -> Option<PartSpan> {
    let (first, last) = (set.windows.first()?, set.windows.last()?);
    let time = |r: usize| {
        d.time_column
            .as_deref()
            .and_then(|c| t.column(c).ok())
            .map(|c| c.written(r))
            .filter(|s| !s.is_empty())
    };
    let pos = set.windows.iter().filter(|w| w.label == Some(1.0)).count();
    Some(PartSpan {
        part: part.into(),
        first_row: first.start,
        last_row: last.row,
        first_time: time(first.start),
        last_time: time(last.row),
        windows: set.len(),
        base_rate: pos as f64 / set.len() as f64,
    })
}

/// The label rule in words, for the report.
pub fn label_rule(d: &DataConfig) -> Option<String> {
    let tc = &d.target;
    let h = tc.horizon;
    if let Some(c) = &tc.column {
        return Some(format!("label of row r = `{c}` at row r + {h}"));
    }
    tc.price_column.as_ref().map(|c| {
        format!(
            "label of row r = 1 when {c}[r+{h}] / {c}[r] - 1 > tau, tau = {k} * sigma * sqrt({h}) clipped to [{lo}, {hi}], sigma the std of log returns over the last {w} rows{neutral}",
            k = tc.k,
            lo = tc.tau_min,
            hi = tc.tau_max,
            w = tc.vol_window,
            neutral = if tc.drop_neutral {
                "; rows with |return| <= tau get no label"
            } else {
                ""
            }
        )
    })
}

/// Everything training needs.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub features: Vec<String>,
    pub sequence_length: usize,
    pub scaler: Scaler,
    pub train: WindowSet,
    pub val: WindowSet,
    pub test: WindowSet,
    pub info: SplitInfo,
    /// Text columns left out of the default features (empty when the
    /// config lists the features).
    pub ignored_columns: Vec<String>,
    /// The label of every row (rows layout; empty for sequences), for
    /// models that score rows rather than windows (the trees).
    pub row_labels: Vec<Option<f32>>,
    /// What feature selection kept and dropped, when configured.
    pub selection: Option<Selection>,
    /// The feature values before scaling, row-major `[rows, features]`
    /// (after selection and smoothing; rows layout, else empty): the
    /// trees read these, so a user's XGBoost model sees its own units.
    pub values: Vec<f64>,
    /// Default features left out because they never change on the
    /// training rows (each with its one value).
    pub constant_columns: Vec<(String, f64)>,
    /// What the user should be told about the data (times that could not
    /// be compared, rows without a time).
    pub notes: Vec<String>,
}

/// Windows over a file to evaluate or predict, with each window's time.
#[derive(Debug, Clone)]
pub struct InferenceData {
    pub windows: WindowSet,
    /// The time column's value at each window's row, if there is a time column.
    pub times: Option<Vec<String>>,
    /// What the user should know about the file (series whose class the
    /// model was not trained on, scored with their label left out).
    pub notes: Vec<String>,
}

/// The config's `data.path`, or an error saying to set it.
pub fn data_path(cfg: &DataConfig) -> Result<&PathBuf> {
    cfg.path.as_ref().ok_or_else(|| {
        Error::config(
            "data.path",
            "no data file given: set data.path to a CSV, Parquet or .ts file",
        )
    })
}

/// Columns that are never default features: the target and the time column.
fn not_features(d: &DataConfig) -> Vec<&str> {
    target_column(&d.target)
        .into_iter()
        .chain(d.time_column.as_deref())
        .collect()
}

/// Resolves the feature list: the config's, or every numeric column but the
/// target, the time column and unnamed index columns.
fn resolve_features(t: &Table, d: &DataConfig) -> Result<Vec<String>> {
    let target = target_column(&d.target);
    let features = match &d.features {
        Some(f) => f.clone(),
        None => t.default_features(&not_features(d)),
    };
    if features.is_empty() {
        return Err(Error::data(
            &t.source,
            "no numeric feature columns; list them in data.features",
        ));
    }
    if let Some(tc) = d.time_column.as_ref().filter(|tc| features.contains(tc)) {
        return Err(Error::config(
            "data.features",
            format!(
                "`{tc}` is data.time_column: a time only grows, so the model would learn the \
                 calendar of the training rows and meet values it never saw on later ones. Drop it \
                 from data.features, or derive a feature that repeats (day of year, weekday) into \
                 its own column"
            ),
        ));
    }
    if d.target.horizon == 0 {
        if let Some(tc) = target.filter(|tc| features.iter().any(|f| f == tc)) {
            return Err(Error::config(
                "data.features",
                format!("`{tc}` is the target at horizon 0: the model would read the answer. Drop it or set data.target.horizon"),
            ));
        }
    }
    Ok(features)
}

/// Reads the feature columns (all finite) into a row-major f64 buffer.
pub fn feature_rows(t: &Table, features: &[String]) -> Result<Vec<f64>> {
    let cols: Vec<&[f64]> = features
        .iter()
        .map(|f| t.finite(f))
        .collect::<Result<_>>()?;
    // Every feature read, kept or not: the selection's statistics of a
    // column beyond float32 were as meaningless as the model's would be.
    for (f, c) in features.iter().zip(&cols) {
        if let Some(r) = c.iter().position(|x| x.abs() > f32::MAX as f64) {
            return Err(Error::data(
                &t.source,
                format!(
                    "{} feature `{f}` is {:e}, beyond float32 (the models read float32)",
                    t.row_name(r),
                    c[r]
                ),
            ));
        }
    }
    let n = t.n_rows();
    let mut values = Vec::with_capacity(n * cols.len());
    for r in 0..n {
        values.extend(cols.iter().map(|c| c[r]));
    }
    Ok(values)
}

fn times_of(t: &Table, d: &DataConfig, windows: &[Window]) -> Result<Option<Vec<String>>> {
    match &d.time_column {
        None => Ok(None),
        Some(tc) => {
            let col = t.column(tc)?;
            Ok(Some(windows.iter().map(|w| col.written(w.row)).collect()))
        }
    }
}

/// A class index's label as the file writes it.
fn class_name(cl: &ClassLabels, y: f32) -> String {
    let named = match (&cl.positive, &cl.negative) {
        (Some(p), _) if y == 1.0 => Some(p),
        (_, Some(n)) if y == 0.0 => Some(n),
        _ => cl.classes.get(y as usize),
    };
    named.map_or_else(|| y.to_string(), |c| c.clone())
}

fn too_short(source: &str, n: usize, what: &str, l: usize) -> Error {
    Error::data(
        source,
        format!(
            "{n} {what}, but one window needs model.sequence_length = {l} rows; \
             use a longer file or a shorter sequence_length"
        ),
    )
}

/// `recur select-features`: the temporal feature selection of `cfg` (its
/// `selection:` section, or the defaults when it has none) on the
/// training rows only, without training anything.
pub fn select_features(cfg: &Config) -> Result<Selection> {
    if cfg.data.layout != Layout::Rows {
        return Err(Error::config(
            "data.layout",
            "the temporal feature selection reads one row per time step (the rows layout); a \
             sequences config has whole series, with no features to select",
        ));
    }
    let mut cfg = cfg.clone();
    if cfg.selection.is_none() {
        cfg.selection = Some(Default::default());
    }
    prepare_training(&cfg)?
        .selection
        .ok_or_else(|| Error::Msg("the feature selection did not run".into()))
}

/// [`prepare_training`] of a table already in memory (rows layout): the
/// same selection, scaling, split and windows as from `data.path`.
pub fn prepare_training_table(table: &Table, cfg: &Config) -> Result<Prepared> {
    // A config changed in code after it was read (or built from
    // `Config::default()`) meets the rules a file does: `hidden_size: 0`
    // panicked, `sequence_length: 0` wrapped a gap to 2^64 - 1.
    cfg.validate("the config")?;
    if cfg.data.layout != Layout::Rows {
        return Err(Error::data(
            &table.source,
            "an in-memory table is one row per time step (data.layout: rows)",
        ));
    }
    prepare_rows(table, cfg)
}

/// [`prepare_training`] of whole series already in memory (sequences
/// layout, `data.path` not read): the same classes, split, scaler and
/// windows as from a `.ts` file.
pub fn prepare_training_sequences(s: &Sequences, cfg: &Config) -> Result<Prepared> {
    cfg.validate("the config")?;
    if cfg.data.layout != Layout::Sequences {
        return Err(Error::config(
            "data.layout",
            "whole series in memory train a sequences-layout model: set data.layout: sequences",
        ));
    }
    prepare_sequences(s, cfg)
}

/// Reads `data.path` and prepares it for training: features, labels, split, scaler and windows.
pub fn prepare_training(cfg: &Config) -> Result<Prepared> {
    cfg.validate("the config")?;
    let d = &cfg.data;
    let path = data_path(d)?;
    match d.layout {
        Layout::Rows => prepare_rows(&Table::read(path, d.format.as_deref())?, cfg),
        Layout::Sequences => prepare_sequences(
            &Sequences::read(path, d.format.as_deref(), d.target.column.as_deref())?,
            cfg,
        ),
    }
}

/// Columns `keep` (in that order) of the row-major `[n, f]` buffer `values`.
fn keep_columns(values: &[f64], f: usize, keep: &[usize]) -> Vec<f64> {
    values
        .chunks(f)
        .flat_map(|row| keep.iter().map(move |&j| row[j]))
        .collect()
}

/// Refuses a time column whose values go backwards or repeat, where that
/// can be told: numbers, or ISO dates and timestamps (`2024-01-05...`),
/// which sort as text. Windows and the split in time assume rows in time
/// order; other formats are taken as they come.
/// `check_time_order` on a file to score (`predict`, `eval`, `drift`)
/// where it has the model's time column: its windows run over rows in
/// file order, as training's did. Without the column there is no order to
/// check.
pub fn check_scored_time_order(t: &Table, d: &DataConfig) -> Result<()> {
    match &d.time_column {
        Some(c) if t.index_of(c).is_ok() => check_time_order(t, d).map(|_| ()),
        _ => Ok(()),
    }
}

/// When whole times of 7 or 8 digits are not all dates written YYYYMMDD
/// but are all dates written DDMMYYYY or MMDDYYYY (a CSV cell `01041986`
/// reads as the number 1041986), what they likely are and what to do:
/// such a column does not sort as numbers.
fn day_first_hint(v: &[f64]) -> Option<String> {
    let whole: Vec<u64> = v
        .iter()
        .map(|&x| {
            (x.fract() == 0.0 && (1_000_000.0..100_000_000.0).contains(&x)).then_some(x as u64)
        })
        .collect::<Option<_>>()?;
    let date = |y: u64, m: u64, d: u64| {
        (1000..=9999).contains(&y) && (1..=12).contains(&m) && (1..=31).contains(&d)
    };
    if whole
        .iter()
        .all(|&n| date(n / 10_000, n / 100 % 100, n % 100))
    {
        return None;
    }
    let day_first = whole
        .iter()
        .all(|&n| date(n % 10_000, n / 10_000 % 100, n / 1_000_000));
    let month_first = whole
        .iter()
        .all(|&n| date(n % 10_000, n / 1_000_000, n / 10_000 % 100));
    (day_first || month_first).then(|| {
        "its times read as numbers but look like dates written day or month first without separators (DDMMYYYY or MMDDYYYY), which do not sort as numbers: write them as YYYY-MM-DD (or YYYYMMDD)".to_string()
    })
}

/// Refuses rows out of time order in `data.time_column` (numbers, or ISO
/// dates and times as text, compared as times: see [`iso_time`]), naming
/// the row; times in another text format are not compared. A file without
/// the column is refused.
///
/// Returns notes for the user: times that cannot be compared, and rows
/// without a time (kept, in file order, and skipped by the comparison).
fn check_time_order(t: &Table, d: &DataConfig) -> Result<Vec<String>> {
    let Some(tc) = &d.time_column else {
        return Ok(Vec::new());
    };
    // A time column the file lacks is refused, as a missing feature is:
    // the split's dates and the order check would silently go.
    let col = t.column(tc).map_err(|e| {
        Error::config(
            "data.time_column",
            format!("`{tc}`: {e}; name a column of the file or leave time_column out"),
        )
    })?;
    // Row `b`'s time against the row before it that has one, `a`.
    let out_of_order = |a: usize, b: usize, what: &str| {
        Error::data(
            &t.source,
            format!(
                "data.time_column `{tc}`: {} ({}) {what} {} ({}); sort the rows by time and drop repeats",
                t.row_name(b),
                clip(&col.cell(b)),
                t.row_name(a),
                clip(&col.cell(a))
            ),
        )
    };
    let mut notes = Vec::new();
    let missing = |n: usize, first: usize| {
        format!(
            "data.time_column `{tc}`: {n} row(s) have no time (the first: {}); they are kept, \
             in file order, and the order check skips them",
            t.row_name(first)
        )
    };
    match col {
        Column::Numeric(v) => {
            // An empty cell (NaN) is a missing time; the rows either side
            // of it are still compared (1, 2, -, 1 was let through).
            let given: Vec<usize> = (0..v.len()).filter(|&i| !v[i].is_nan()).collect();
            if given.len() < v.len() {
                let first = (0..v.len()).find(|&i| v[i].is_nan()).unwrap_or(0);
                notes.push(missing(v.len() - given.len(), first));
            }
            for w in given.windows(2) {
                let (a, b) = (w[0], w[1]);
                if v[b] <= v[a] {
                    let what = if v[b] == v[a] {
                        "repeats"
                    } else {
                        "comes before"
                    };
                    let times: Vec<f64> = given.iter().map(|&i| v[i]).collect();
                    return Err(match (out_of_order(a, b, what), day_first_hint(&times)) {
                        (Error::Data { file, msg }, Some(hint)) => Error::Data {
                            file,
                            msg: format!(
                                "{}; {hint}",
                                msg.trim_end_matches("; sort the rows by time and drop repeats")
                            ),
                        },
                        (e, _) => e,
                    });
                }
            }
        }
        Column::Text(v) => {
            // Times in another format are not compared (a day-first date
            // does not sort as text); one cell among ISO dates that is not
            // one is refused, where before it switched the check off.
            // Empty cells are missing times, left out of the comparison.
            let given: Vec<usize> = (0..v.len()).filter(|&i| !v[i].trim().is_empty()).collect();
            if given.len() < v.len() {
                let first = (0..v.len()).find(|&i| v[i].trim().is_empty()).unwrap_or(0);
                notes.push(missing(v.len() - given.len(), first));
            }
            match given.iter().copied().find(|&i| !iso_time::looks_iso(&v[i])) {
                None => {}
                Some(_) if !given.iter().any(|&i| iso_time::looks_iso(&v[i])) => {
                    notes.push(format!(
                        "data.time_column `{tc}`: its times are neither numbers nor ISO dates \
                         (YYYY-MM-DD...), so their order was not checked; the rows are taken in \
                         file order"
                    ));
                    return Ok(notes);
                }
                Some(i) => {
                    return Err(Error::data(
                        &t.source,
                        format!(
                            "data.time_column `{tc}`: {} holds `{}`, not a date as the other rows \
                             have (YYYY-MM-DD...); correct it or drop the row",
                            t.row_name(i),
                            clip(&col.cell(i))
                        ),
                    ))
                }
            }
            // ISO times compare as times (offsets and spellings resolved);
            // a column whose times are all in a form recur does not read
            // (`... CET`) is compared as text, as before. One such cell
            // among times recur reads is refused: compared as text, it
            // switched the comparison of instants off for every row.
            let mut times = Vec::with_capacity(given.len());
            let mut unknown = None;
            for &i in &given {
                match iso_time::parse(&v[i]) {
                    Ok(x) => times.push(x),
                    Err(iso_time::IsoError::Unknown) => {
                        unknown.get_or_insert(i);
                    }
                    Err(iso_time::IsoError::Invalid(why)) => {
                        return Err(Error::data(
                            &t.source,
                            format!(
                                "data.time_column `{tc}`: {} holds `{}`, {why}; correct it or drop the row",
                                t.row_name(i),
                                clip(&col.cell(i))
                            ),
                        ))
                    }
                }
            }
            let as_text = unknown.is_some();
            if let (Some(i), false) = (unknown, times.is_empty()) {
                return Err(Error::data(
                    &t.source,
                    format!(
                        "data.time_column `{tc}`: {} holds `{}`, a time recur cannot read \
                         (YYYY-MM-DD, then HH:MM[:SS[.f]] and an optional Z, UTC, GMT \
                         or +HH:MM), beside rows it reads; write every time one way",
                        t.row_name(i),
                        clip(&col.cell(i))
                    ),
                ));
            }
            if !as_text {
                let zoned = |x: &iso_time::IsoTime| matches!(x, iso_time::IsoTime::Instant(_));
                if let (Some(a), Some(b)) = (
                    times.iter().position(zoned),
                    times.iter().position(|x| !zoned(x)),
                ) {
                    return Err(Error::data(
                        &t.source,
                        format!(
                            "data.time_column `{tc}`: {} ({}) has a UTC offset and {} ({}) has none, \
                             so their order is not known; write every time with its offset, or none",
                            t.row_name(given[a]),
                            clip(&col.cell(given[a])),
                            t.row_name(given[b]),
                            clip(&col.cell(given[b]))
                        ),
                    ));
                }
            }
            for (k, w) in given.windows(2).enumerate() {
                let (a, b) = (w[0], w[1]);
                let order = if as_text {
                    v[b].cmp(&v[a])
                } else {
                    times[k + 1].cmp(&times[k])
                };
                match order {
                    std::cmp::Ordering::Equal => return Err(out_of_order(a, b, "repeats")),
                    std::cmp::Ordering::Less => return Err(out_of_order(a, b, "comes before")),
                    std::cmp::Ordering::Greater => {}
                }
            }
        }
    }
    Ok(notes)
}

fn prepare_rows(t: &Table, cfg: &Config) -> Result<Prepared> {
    let d = &cfg.data;
    let l = cfg.model.sequence_length;
    let n = t.n_rows();
    let mut notes = check_time_order(t, d)?;
    let mut features = resolve_features(t, d)?;
    let mut values = feature_rows(t, &features)?;
    let labels = row_labels(t, &d.target)?;
    let ignored_columns = match &d.features {
        Some(_) => Vec::new(),
        None => t.text_columns(&not_features(d)),
    };
    if d.features.is_none() {
        let unnamed = t.unnamed_data_columns(&not_features(d));
        if !unnamed.is_empty() {
            notes.push(format!(
                "{} left out of the features, taken for pandas' row index by its name (a \
                 column with no name in the header, or __index_level_N__), though it holds \
                 fractions, not row numbers; to use it, name it, or list data.features",
                unnamed.join(", ")
            ));
        }
    }
    if n < l {
        return Err(too_short(&t.source, n, "rows", l));
    }
    let gap = d.split.gap.unwrap_or(l - 1).max(d.target.horizon);
    if let Some(g) = d.split.gap.filter(|&g| g < gap) {
        // Fewer rows than the horizon between parts would let a part's
        // last labels be read from the next part's rows.
        notes.push(format!(
            "data.split.gap {g} is below the horizon {}: the parts are {gap} rows apart, so \
             that no label of a part is read from the next one",
            d.target.horizon
        ));
    }
    let split = time_split(&t.source, n, &d.split, gap)?;
    // A default feature that never changes on the training rows (an
    // always-zero `OpenInt`) carries nothing and scales to NaN-free zeros
    // only by accident: drop it, and say so.
    // A feature the user listed, or every feature, is kept and said: its
    // input weights never get a gradient, and whatever other value it
    // takes later passes through their random start.
    let mut constant_columns = Vec::new();
    if cfg.selection.is_none() {
        let f = features.len();
        let first = |j: usize| values[split.train.start * f + j];
        // Constant as the scaler and the selection's filter take it
        // (scikit-learn's rule: a variance within its sums' rounding), so
        // that a column the scaler would map to zeros is not kept.
        let rows = split.train.start..split.train.end;
        let (mean, var, n) = crate::scaler::moments(&values, f, rows.clone());
        let constant: Vec<usize> = (0..f)
            .filter(|&j| {
                rows.clone().all(|r| values[r * f + j] == first(j))
                    || crate::scaler::is_constant(var[j], mean[j], n)
            })
            .collect();
        if d.features.is_none() && !constant.is_empty() && constant.len() < f {
            for &j in &constant {
                constant_columns.push((features[j].clone(), first(j)));
            }
            let keep: Vec<usize> = (0..f).filter(|j| !constant.contains(j)).collect();
            values = keep_columns(&values, f, &keep);
            features = keep.iter().map(|&j| features[j].clone()).collect();
        } else if !constant.is_empty() {
            let named: Vec<String> = constant
                .iter()
                .take(10)
                .map(|&j| format!("`{}` ({})", clip(&features[j]), first(j)))
                .collect();
            let more = constant.len().saturating_sub(named.len());
            let one = constant.len() == 1;
            let cure = if d.features.is_some() {
                format!(
                    "leave {} out of data.features",
                    if one { "it" } else { "them" }
                )
            } else {
                "every feature is: check the data, or list the features in data.features".into()
            };
            notes.push(format!(
                "{}: {}{} never {} on the training rows (to {} sums' rounding): kept as \
                 given, {} nothing \
                 to learn from, and a different value later passes through untrained weights; \
                 {cure}",
                t.source,
                named.join(", "),
                if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                },
                if one { "changes" } else { "change" },
                if one { "its" } else { "their" },
                if one { "it gives" } else { "they give" },
            ));
        }
    }
    // Selection reads the training rows only; the EWMA is causal.
    let selection = match &cfg.selection {
        Some(sc) => {
            let train = split.train.start..split.train.end.saturating_sub(d.target.horizon);
            let sel = select(&features, &values, &labels, train, sc)
                .map_err(|e| Error::data(&t.source, e.to_string()))?;
            let keep: Vec<usize> = features
                .iter()
                .enumerate()
                .filter(|(_, f)| sel.kept.contains(f))
                .map(|(j, _)| j)
                .collect();
            values = keep_columns(&values, features.len(), &keep);
            features = sel.kept.clone();
            ewma(&mut values, features.len(), sc.ewma_span);
            Some(sel)
        }
        None => None,
    };
    let scaler = Scaler::fit(
        features.clone(),
        &values,
        split.train.start..split.train.end,
    );
    // As `eval` and `predict` refuse them: a value beyond float32 would
    // train a model that flattens its feature (or, past the square root
    // of f64's range, one whose scaler cannot be saved).
    let f = features.len().max(1);
    if let Some(j) = scaler.subnormal_std() {
        return Err(tiny_spread(&t.source, &features[j], scaler.std[j]));
    }
    if let Some(k) = scaler.beyond_f32(&values) {
        return Err(Error::data(
            &t.source,
            format!(
                "{} feature `{}` is {:e}, beyond float32 as given or once scaled (the models read float32)",
                t.row_name(k / f),
                features[k % f],
                values[k]
            ),
        ));
    }
    let buffer: Arc<[f32]> = scaler.transform(&values).into();
    let h = d.target.horizon;
    let all = WindowSet {
        buffer,
        n_features: features.len(),
        sequence_length: l,
        windows: sliding(n, l, &labels),
        lengths: None,
    };
    let part = |r: RowRange, name: &str| -> Result<WindowSet> {
        let set = all.filter(|w| w.label.is_some() && r.holds(w.start, w.row, w.row + h));
        if set.is_empty() && !(name == "test" && r.is_empty() && d.split.test == 0.0) {
            // Windows that fit but have no label: the label rule, not the
            // window, is the cause.
            let unlabelled = all.filter(|w| r.holds(w.start, w.row, w.row + h)).len();
            if unlabelled > 0 {
                let rule = if d.target.price_column.is_some() {
                    "with a price target, a row has a label once data.target.vol_window rows of \
                     returns lie before it and, with drop_neutral, when its return leaves the \
                     neutral zone (k, tau_min, tau_max)"
                } else {
                    "the target column is empty there"
                };
                return Err(Error::data(
                    &t.source,
                    format!(
                        "the {name} part (rows {}..{}) has {unlabelled} windows but none with a \
                         label: {rule}",
                        r.start, r.end
                    ),
                ));
            }
            // A window's label lies `h` rows after its end, inside the part:
            // a part no longer than the horizon holds none, whatever the
            // window's length or the gap.
            let cure = if h + 1 > r.end - r.start {
                format!(
                    "the part is {} rows and each label lies data.target.horizon ({h}) rows \
                     past its window; use more rows, larger parts (data.split) or a shorter horizon",
                    r.end - r.start
                )
            } else {
                "use more rows, a shorter model.sequence_length or a smaller data.split.gap".into()
            };
            return Err(Error::data(
                &t.source,
                format!(
                    "the {name} part (rows {}..{}) holds no labelled window of {l} rows; {cure}",
                    r.start, r.end
                ),
            ));
        }
        Ok(set)
    };
    let (train, val, test) = (
        part(split.train, "train")?,
        part(split.val, "validation")?,
        part(split.test, "test")?,
    );
    let first = train.windows[0].label;
    if train.windows.iter().all(|w| w.label == first) {
        return Err(Error::data(
            &t.source,
            format!(
                "every label of the train part (rows {}..{}, {} windows) is {}: a classifier \
                 needs both classes; check data.target{}",
                split.train.start,
                split.train.end,
                train.len(),
                first.unwrap_or(0.0),
                if d.target.price_column.is_some() {
                    " (the price rule's tau_min, tau_max and k)"
                } else {
                    ""
                }
            ),
        ));
    }
    // Early stopping, calibration and the threshold are fit on the
    // validation part: of one class, it calibrated every probability to
    // that class and deployed it without a word.
    let first = val.windows[0].label;
    if val.windows.iter().all(|w| w.label == first) {
        return Err(Error::data(
            &t.source,
            format!(
                "every label of the validation part (rows {}..{}, {} windows) is {}: early \
                 stopping, calibration and the threshold are fit on it, so it needs both classes; \
                 move data.split (a larger val share) or use more rows",
                split.val.start,
                split.val.end,
                val.len(),
                first.unwrap_or(0.0),
            ),
        ));
    }
    let parts = [("train", &train), ("validation", &val), ("test", &test)]
        .into_iter()
        .filter_map(|(name, set)| span(t, d, name, set))
        .collect();
    Ok(Prepared {
        train,
        val,
        test,
        features,
        sequence_length: l,
        scaler,
        info: SplitInfo {
            layout: Layout::Rows,
            n_rows: n,
            time_split: Some(split),
            positive_label: None,
            negative_label: None,
            classes: Vec::new(),
            variable_length: false,
            data_sha256: None,
            label_rule: label_rule(d),
            parts,
        },
        ignored_columns,
        row_labels: labels,
        selection,
        values,
        constant_columns,
        notes,
    })
}

/// The first buffer row of each series, and the end: `n + 1` offsets.
fn row_offsets(s: &Sequences) -> Vec<usize> {
    let mut o = vec![0];
    for l in s.lengths() {
        o.push(o.last().unwrap() + l);
    }
    o
}

fn prepare_sequences(s: &Sequences, cfg: &Config) -> Result<Prepared> {
    let d = &cfg.data;
    let n = s.values.len();
    // A header of column numbers (pandas' `to_csv(index=False)` of a
    // frame with numbered columns: `0,1,...,T`) cannot be told from a
    // series: it would read as a first series 1, 2, ..., T of class `0`.
    let numbering = n > 1
        && s.dims == 1
        && s.labels[0].trim().parse::<f64>() == Ok(0.0)
        && s.values[0]
            .iter()
            .enumerate()
            .all(|(t, &v)| v == (t + 1) as f64);
    if numbering {
        return Err(Error::data(
            &s.source,
            "the first line reads 0, 1, 2, ...: a header of column numbers cannot be told \
             from a series; name the columns (a header with a word in it) or drop the line",
        ));
    }
    let cl = class_labels(&s.source, &s.labels, &d.target)?;
    let labels = cl.y.clone();
    let features: Vec<String> = (0..s.dims).map(|i| format!("dim_{i}")).collect();
    let values: Vec<f64> = s.values.concat();
    let mut order: Vec<usize> = (0..n).collect();
    let shuffled = d.split.shuffles(d.layout);
    if shuffled {
        Rng::stream(cfg.training.seed, 7).shuffle(&mut order);
    }
    let n_train = (n as f64 * d.split.train).round() as usize;
    let n_val = (n as f64 * d.split.val).round() as usize;
    if n_train == 0 || n_val == 0 || n_train + n_val > n {
        return Err(Error::data(
            &s.source,
            format!("{n} sequences are too few to split into train/val/test"),
        ));
    }
    let variable = !s.equal_length();
    if variable && reads_fixed_length(cfg) {
        return Err(Error::config(
            "model.shuffle",
            format!(
                "{} holds series of different lengths ({}..={} steps); LSTM-FCN's dimension shuffle reads a fixed number of steps: set model.shuffle: false",
                s.source,
                s.lengths().iter().min().unwrap_or(&0),
                s.sequence_length
            ),
        ));
    }
    // As in the rows layout: a classifier needs two classes to learn
    // from, and early stopping, calibration and the threshold are fit on
    // validation (of one class, every probability was calibrated to it and
    // every series of a file sorted by class was called positive).
    let parts = [
        (
            "train",
            0..n_train,
            "training needs both to learn from",
            "data.split.train",
        ),
        (
            "validation",
            n_train..n_train + n_val,
            "early stopping, calibration and the threshold are fit on it",
            "data.split.val",
        ),
    ];
    for (name, range, why, share) in parts {
        let idx = &order[range];
        let first = labels[idx[0]];
        if idx.iter().all(|&i| labels[i] == first) {
            let how = if shuffled {
                format!("a larger {share}, more series, or another training.seed (the draw)")
            } else {
                "data.split.shuffle: true, or leave it out (the sequences layout shuffles \
                 by default; a file sorted by class splits into parts of one class)"
                    .to_string()
            };
            return Err(Error::data(
                &s.source,
                format!(
                    "every series of the {name} part ({} of {n}) is of class `{}`: {why}, so \
                     it needs both classes; use {how}",
                    idx.len(),
                    class_name(&cl, first),
                ),
            ));
        }
    }
    let train_idx = &order[..n_train];
    // A class with no training series is refused: the model could not
    // learn it, and its output would exist only because of labels in
    // validation or test (one mistyped test label had turned a two-class
    // model into a three-class one, with another loss and calibrator).
    let untrained: Vec<usize> = (0..cl.classes.len())
        .filter(|&c| !train_idx.iter().any(|&i| labels[i] == c as f32))
        .collect();
    if !untrained.is_empty() {
        let count = |c: usize| labels.iter().filter(|&&y| y == c as f32).count();
        let named: Vec<String> = untrained
            .iter()
            .map(|&c| format!("`{}` ({} series)", clip(&cl.classes[c]), count(c)))
            .collect();
        let how = if shuffled {
            "more series of it, another training.seed (the draw) or a larger data.split.train"
        } else {
            "more series of it, or data.split.shuffle: true"
        };
        return Err(Error::data(
            &s.source,
            format!(
                "no training series of class {}: all went to validation or test, so the model \
                 could not learn it and only their labels would make it an output; give {how}, \
                 or correct or remove those series",
                named.join(", ")
            ),
        ));
    }
    let notes = Vec::new();
    let offsets = row_offsets(s);
    let rows = train_idx.iter().flat_map(|&i| offsets[i]..offsets[i + 1]);
    let scaler = Scaler::fit(features.clone(), &values, rows);
    check_series_f32(s, &scaler, &values, &offsets)?;
    let buffer: Arc<[f32]> = scaler.transform(&values).into();
    let lengths: Option<Arc<[usize]>> = variable.then(|| s.lengths().into());
    let set = |idx: &[usize]| WindowSet {
        buffer: buffer.clone(),
        n_features: s.dims,
        sequence_length: s.sequence_length,
        windows: idx
            .iter()
            .map(|&i| Window {
                start: offsets[i],
                row: i,
                label: Some(labels[i]),
            })
            .collect(),
        lengths: lengths.clone(),
    };
    Ok(Prepared {
        train: set(train_idx),
        val: set(&order[n_train..n_train + n_val]),
        test: set(&order[n_train + n_val..]),
        features,
        sequence_length: s.sequence_length,
        scaler,
        info: SplitInfo {
            layout: Layout::Sequences,
            n_rows: n,
            time_split: None,
            positive_label: cl.positive,
            negative_label: cl.negative,
            classes: cl.classes,
            variable_length: variable,
            data_sha256: None,
            label_rule: None,
            parts: Vec::new(),
        },
        ignored_columns: Vec::new(),
        row_labels: Vec::new(),
        selection: None,
        values: Vec::new(),
        constant_columns: Vec::new(),
        notes,
    })
}

/// The values of `features` in a new table (rows layout), row-major,
/// smoothed as the config's selection smooths them: what the model would
/// read before scaling. For `recur drift`.
pub fn feature_values(path: &Path, cfg: &Config, features: &[String]) -> Result<Vec<f64>> {
    if cfg.data.layout != Layout::Rows {
        return Err(Error::data(
            path.display().to_string(),
            "drift is measured on the rows layout (one row per time step)",
        ));
    }
    let t = read_scored(path, &cfg.data)?;
    // Smoothing runs in row order, as in training.
    let d = &cfg.data;
    check_scored_time_order(&t, d)?;
    smoothed_rows(&t, cfg, features)
}

/// [`feature_rows`] of a new table, smoothed as training smoothed the kept
/// features (the config's `selection.ewma_span`).
fn smoothed_rows(t: &Table, cfg: &Config, features: &[String]) -> Result<Vec<f64>> {
    let mut values = feature_rows(t, features)?;
    // As training, `eval` and `predict` refuse it (drift printed 300-digit
    // mean shifts and a NaN autocorrelation shift for it).
    let f = features.len().max(1);
    if let Some(k) = values.iter().position(|v| v.abs() > f32::MAX as f64) {
        return Err(Error::data(
            &t.source,
            format!(
                "row {} feature `{}` is {:e}, beyond float32 (the models read float32)",
                k / f,
                features[k % f],
                values[k]
            ),
        ));
    }
    if let Some(sc) = &cfg.selection {
        ewma(&mut values, features.len(), sc.ewma_span);
    }
    Ok(values)
}

/// The format a file to score is read in: the training config's
/// `data.format`, unless the file's extension is one recur knows and
/// differs from the training file's (a model trained with `format: ts`
/// refused the same series as a `.tsv`; a `.ts`-format `train.txt` must
/// still read as the format says).
pub fn scored_format<'a>(path: &Path, d: &'a DataConfig) -> Option<&'a str> {
    let ext = |p: &Path| {
        p.extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
    };
    let known =
        ext(path).filter(|e| ["csv", "tsv", "txt", "parquet", "pq", "ts"].contains(&e.as_str()));
    match known {
        Some(e) if d.path.as_deref().and_then(ext).as_deref() != Some(e.as_str()) => None,
        _ => d.format.as_deref(),
    }
}

/// A rows-layout file to score, read in [`scored_format`]. A table of one
/// column whose name holds tabs was read by its extension in a format it
/// is not in (a tab-separated file named `.csv`, which a model trained
/// with `data.format: tsv` read by that format before the extension
/// counted): the error says so, not that a column is missing. (Only tabs:
/// a quoted CSV header may hold commas, and one column may be all a file
/// has.)
pub fn read_scored(path: &Path, d: &DataConfig) -> Result<Table> {
    let format = scored_format(path, d);
    let t = Table::read(path, format)?;
    if let [name] = &t.names[..] {
        if name.contains('\t') {
            return Err(Error::data(
                path.display().to_string(),
                format!(
                    "read {}, its header is one column holding tabs: give the file the \
                     extension of its delimiter (.tsv)",
                    match format {
                        Some(f) => format!("as {f} (the model's data.format)"),
                        None => "by its extension".to_string(),
                    }
                ),
            ));
        }
    }
    Ok(t)
}

/// Windows over a new file, scaled with the model's scaler. With
/// `need_labels`, the target must be present and only labelled windows are
/// kept (evaluation); without, every window is kept (prediction).
pub fn prepare_inference(
    path: &Path,
    cfg: &Config,
    scaler: &Scaler,
    sequence_length: usize,
    info: &SplitInfo,
    need_labels: bool,
) -> Result<InferenceData> {
    let d = &cfg.data;
    match d.layout {
        Layout::Rows => {
            let t = read_scored(path, d)?;
            // The windows run over rows in file order, as in training: a
            // file out of time order gives windows across unrelated days.
            check_scored_time_order(&t, d)?;
            let n = t.n_rows();
            let values = smoothed_rows(&t, cfg, &scaler.features)?;
            if n < sequence_length {
                return Err(too_short(&t.source, n, "rows", sequence_length));
            }
            let has_target = target_column(&d.target).is_some_and(|c| t.index_of(c).is_ok());
            let labels = if need_labels || has_target {
                row_labels(&t, &d.target)?
            } else {
                vec![None; n]
            };
            let mut windows = sliding(n, sequence_length, &labels);
            if need_labels {
                windows.retain(|w| w.label.is_some());
            }
            let times = times_of(&t, d, &windows)?;
            let set = WindowSet {
                buffer: scaler.transform(&values).into(),
                n_features: scaler.features.len(),
                sequence_length,
                windows,
                lengths: None,
            };
            Ok(InferenceData {
                windows: set,
                times,
                notes: Vec::new(),
            })
        }
        Layout::Sequences => {
            let s = Sequences::read(path, scored_format(path, d), d.target.column.as_deref())?;
            sequences_inference(&s, cfg, scaler, sequence_length, info, need_labels)
        }
    }
}

/// Whether the model reads a fixed number of steps whatever it was
/// trained on: LSTM-FCN with its dimension shuffle.
fn reads_fixed_length(cfg: &Config) -> bool {
    cfg.model.kind == ClassifierKind::LstmFcn && cfg.model.shuffle
}

/// The one length a whole-series model reads (`None`: any length): that
/// of its training series when they were all equally long, or when it
/// reads a fixed number of steps (LSTM-FCN's dimension shuffle).
/// `sequence_length` is the model's, the longest training series.
pub fn fixed_length(cfg: &Config, info: &SplitInfo, sequence_length: usize) -> Option<usize> {
    (!info.variable_length || reads_fixed_length(cfg)).then_some(sequence_length)
}

/// Refuses a value of the series `s` (`values` their steps end to end,
/// `offsets` each series' first row) beyond float32 as given or once
/// scaled, naming its series, step and dimension.
fn check_series_f32(
    s: &Sequences,
    scaler: &Scaler,
    values: &[f64],
    offsets: &[usize],
) -> Result<()> {
    if let Some(j) = scaler.subnormal_std() {
        return Err(tiny_spread(&s.source, &scaler.features[j], scaler.std[j]));
    }
    let Some(k) = scaler.beyond_f32(values) else {
        return Ok(());
    };
    let row = k / s.dims.max(1);
    let series = offsets.partition_point(|&o| o <= row) - 1;
    Err(Error::data(
        &s.source,
        format!(
            "series {series}, step {}, dimension {}: {:e} is beyond float32 as given or once scaled (the models read float32)",
            row - offsets[series],
            k % s.dims.max(1),
            values[k]
        ),
    ))
}

/// A feature whose values vary by less than float32's normal range.
fn tiny_spread(source: &str, feature: &str, std: f64) -> Error {
    Error::data(
        source,
        format!(
            "feature `{}` varies by {std:e} (its standard deviation on the training rows), below \
             float32's range (1.2e-38): multiply it by a power of ten",
            clip(feature)
        ),
    )
}

/// The windows of whole series (a file read, or series in memory) as a
/// model of the sequences layout reads them: its scaler, its channels,
/// the lengths it takes, and labels mapped to its classes (with
/// `need_labels`, a class it does not know is an error).
pub fn sequences_inference(
    s: &Sequences,
    cfg: &Config,
    scaler: &Scaler,
    sequence_length: usize,
    info: &SplitInfo,
    need_labels: bool,
) -> Result<InferenceData> {
    let classes = &info.classes;
    let positive_label = info.positive_label.as_deref();
    if s.dims != scaler.features.len() {
        return Err(Error::data(
            &s.source,
            format!(
                "series with {} dimension(s); the model was trained on {}",
                s.dims,
                scaler.features.len()
            ),
        ));
    }
    let fixed = reads_fixed_length(cfg);
    if fixed_length(cfg, info, sequence_length).is_some()
        && (!s.equal_length() || s.sequence_length != sequence_length)
    {
        return Err(Error::data(
            &s.source,
            format!(
                "series of {} steps; the model was trained on series of exactly {sequence_length}{}",
                if s.equal_length() {
                    s.sequence_length.to_string()
                } else {
                    format!("{} to {}", s.lengths().iter().min().unwrap_or(&0), s.sequence_length)
                },
                if fixed { " (LSTM-FCN's dimension shuffle reads a fixed number)" } else { "" }
            ),
        ));
    }
    let offsets = row_offsets(s);
    let pos = positive_label.unwrap_or("1");
    // A class is its text, or its number however written (`1` for a class
    // trained as `1.0`): training refuses one number written two ways, so
    // the number names one class.
    let same = |l: &str, c: &str| {
        l == c
            || matches!(
                (l.trim().parse::<f64>(), c.trim().parse::<f64>()),
                (Ok(a), Ok(b)) if a == b
            )
    };
    let windows = s
        .labels
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let label = if l.is_empty() && !need_labels {
                None
            } else if l.is_empty() {
                return Err(Error::data(
                    &s.source,
                    format!(
                        "series {i} (counted from 0) has no label; evaluating needs a class on \
                         every series (`recur predict` scores series without one)"
                    ),
                ));
            } else if classes.is_empty() {
                match &info.negative_label {
                    _ if l == pos => Some(1.0),
                    Some(neg) if l == neg => Some(0.0),
                    _ if same(l, pos) => Some(1.0),
                    Some(neg) if same(l, neg) => Some(0.0),
                    None => Some(0.0),
                    Some(neg) if need_labels => {
                        return Err(Error::data(
                            &s.source,
                            format!(
                                "series {i} (counted from 0) has class `{}`, which the model was not trained on (its classes: {}, {})",
                                clip(l),
                                clip(neg),
                                clip(pos)
                            ),
                        ))
                    }
                    Some(_) => None,
                }
            } else {
                // The exact text first: a model from before one number
                // written two ways was refused may hold `1` and `01`.
                let at = classes.iter().position(|c| c == l);
                match at.or_else(|| classes.iter().position(|c| same(l, c))) {
                    Some(k) => Some(k as f32),
                    None if need_labels => {
                        return Err(Error::data(
                            &s.source,
                            format!(
                                "series {i} (counted from 0) has class `{}`, which the model was not trained on (its classes: {})",
                                clip(l),
                                clip(&classes.join(", "))
                            ),
                        ))
                    }
                    None => None,
                }
            };
            Ok(Window {
                start: offsets[i],
                row: i,
                label,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    // A class the model never saw leaves the label cell empty in `predict`
    // (`eval` refuses it above): said, not done in silence.
    let unseen: Vec<usize> = windows
        .iter()
        .filter(|w| w.label.is_none() && !s.labels[w.row].is_empty())
        .map(|w| w.row)
        .collect();
    let notes = match unseen.first() {
        Some(&i) => vec![format!(
            "{}: {} series have a class the model was not trained on (the first: series {i}, \
             `{}`); they are scored, with their label left empty",
            s.source,
            unseen.len(),
            clip(&s.labels[i])
        )],
        None => Vec::new(),
    };
    let values = s.values.concat();
    // As training refuses them: the cast would make them infinite, and
    // the model's output NaN, which a decision reads as a class.
    check_series_f32(s, scaler, &values, &offsets)?;
    let set = WindowSet {
        buffer: scaler.transform(&values).into(),
        n_features: s.dims,
        sequence_length: s.sequence_length,
        windows,
        lengths: (!s.equal_length()).then(|| s.lengths().into()),
    };
    Ok(InferenceData {
        windows: set,
        times: None,
        notes,
    })
}

#[cfg(test)]
mod day_first_tests {
    use super::day_first_hint;

    #[test]
    fn dates_written_day_first_are_named_and_plain_numbers_are_not() {
        // 31031986, 01041986 (read as 1041986), 02041986.
        assert!(day_first_hint(&[31031986.0, 1041986.0, 2041986.0])
            .unwrap()
            .contains("DDMMYYYY"));
        // YYYYMMDD dates sort as numbers; counters and epochs are not dates.
        assert!(day_first_hint(&[19860331.0, 19860401.0, 19860301.0]).is_none());
        assert!(day_first_hint(&[5.0, 3.0]).is_none());
        assert!(day_first_hint(&[1_700_000_000.0, 1_600_000_000.0]).is_none());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A CSV of `n` rows: time, two features and a 0/1 label.
    fn series_csv(dir: &Path, n: usize) -> PathBuf {
        let mut s = String::from("day,a,b,y\n");
        for i in 0..n {
            s += &format!(
                "d{i},{},{},{}\n",
                (i as f64 * 0.3).sin(),
                i % 7,
                (i % 3 == 0) as u8
            );
        }
        let p = dir.join("s.csv");
        std::fs::write(&p, s).unwrap();
        p
    }

    fn cfg(path: PathBuf, l: usize, h: usize) -> Config {
        let mut c = Config::default();
        c.data.path = Some(path);
        c.data.time_column = Some("day".into());
        c.data.target.column = Some("y".into());
        c.data.target.horizon = h;
        c.model.sequence_length = l;
        c
    }

    #[test]
    fn no_window_crosses_the_split_gap_or_reads_a_label_across_it() {
        let d = tempfile::tempdir().unwrap();
        let c = cfg(series_csv(d.path(), 400), 16, 3);
        let p = prepare_training(&c).unwrap();
        let s = p.info.time_split.unwrap();
        assert_eq!(s.gap, 15);
        assert_eq!(p.features, vec!["a", "b"]);
        for (set, r) in [(&p.train, s.train), (&p.val, s.val), (&p.test, s.test)] {
            assert!(!set.is_empty());
            for w in &set.windows {
                assert!(
                    w.start >= r.start && w.row < r.end && w.row + 3 < r.end,
                    "{w:?} outside {r:?}"
                );
                assert_eq!(w.row, w.start + 15);
            }
        }
        // The parts are disjoint in rows, with the gap between them.
        let last_train = p.train.windows.iter().map(|w| w.row + 3).max().unwrap();
        let first_val = p.val.windows.iter().map(|w| w.start).min().unwrap();
        assert!(
            first_val > last_train + 15 - 3,
            "{first_val} vs {last_train}"
        );
    }

    #[test]
    fn predictions_are_tied_to_rows_and_times_and_labels_shift_by_the_horizon() {
        let d = tempfile::tempdir().unwrap();
        let path = series_csv(d.path(), 100);
        let c = cfg(path.clone(), 8, 1);
        let p = prepare_training(&c).unwrap();
        let inf = prepare_inference(&path, &c, &p.scaler, 8, &p.info, false).unwrap();
        assert_eq!(inf.windows.len(), 100 - 8 + 1);
        let times = inf.times.unwrap();
        for (k, w) in inf.windows.windows.iter().enumerate() {
            assert_eq!(w.row, k + 7);
            assert_eq!(times[k], format!("d{}", k + 7));
            // label of row r is y[r+1] = ((r+1) % 3 == 0)
            let want = (w.row + 1 < 100).then(|| ((w.row + 1) % 3 == 0) as u8 as f32);
            assert_eq!(w.label, want);
        }
        // The window's last feature row is the row it is tied to.
        let mut out = Vec::new();
        inf.windows.gather(&[5], &mut out);
        let a_at_row = ((12.0f64 * 0.3).sin() - p.scaler.mean[0]) / p.scaler.std[0];
        assert!((out[7 * 2] as f64 - a_at_row).abs() < 1e-6);
    }

    #[test]
    fn bad_input_is_a_clear_error() {
        let d = tempfile::tempdir().unwrap();
        let path = series_csv(d.path(), 40);
        let mut c = cfg(path.clone(), 64, 1);
        let e = prepare_training(&c).unwrap_err().to_string();
        assert!(
            e.contains("40 rows") && e.contains("sequence_length = 64"),
            "{e}"
        );
        c.model.sequence_length = 4;
        c.data.target.column = Some("rain".into());
        let e = prepare_training(&c).unwrap_err().to_string();
        assert!(e.contains("no column `rain`"), "{e}");
        c.data.target.column = Some("y".into());
        c.data.target.horizon = 0;
        c.data.features = Some(vec!["a".into(), "y".into()]);
        let e = prepare_training(&c).unwrap_err().to_string();
        assert!(e.contains("would read the answer"), "{e}");
        // Times that go backwards or repeat are refused, naming the row.
        c.data.features = None;
        c.data.target.horizon = 1;
        let text = "day,a,y\n2024-01-01,1,0\n2024-01-02,2,1\n2024-01-02,3,0\n2024-01-04,4,1\n";
        std::fs::write(&path, text).unwrap();
        let e = prepare_training(&c).unwrap_err().to_string();
        assert!(
            e.contains("`day`") && e.contains("row 2 (line 4)") && e.contains("repeats"),
            "{e}"
        );
        std::fs::write(&path, text.replace("2024-01-02,3", "2023-12-31,3")).unwrap();
        let e = prepare_training(&c).unwrap_err().to_string();
        assert!(e.contains("comes before"), "{e}");
        // One cell that is not a date among dates no longer turns the
        // check off.
        std::fs::write(&path, text.replace("2024-01-02,3", "soon,3")).unwrap();
        let e = prepare_training(&c).unwrap_err().to_string();
        assert!(e.contains("row 2 (line 4) holds `soon`, not a date"), "{e}");
        // A time column the file lacks.
        c.data.time_column = Some("date".into());
        let e = prepare_training(&c).unwrap_err().to_string();
        assert!(
            e.contains("data.time_column") && e.contains("`date`") && e.contains("day"),
            "{e}"
        );
    }

    #[test]
    fn a_horizon_longer_than_a_part_and_a_constant_listed_feature_are_said() {
        let d = tempfile::tempdir().unwrap();
        let path = series_csv(d.path(), 200);
        let e = prepare_training(&cfg(path.clone(), 4, 40))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("each label lies data.target.horizon (40) rows past its window"),
            "{e}"
        );
        // A listed feature constant on the training rows is kept, and said.
        let mut s = String::from("day,a,flat,y\n");
        for i in 0..200 {
            let flat = if i < 150 { 2.5 } else { i as f64 };
            s += &format!(
                "{i},{},{flat},{}\n",
                (i as f64 * 0.3).sin(),
                (i % 3 == 0) as u8
            );
        }
        std::fs::write(&path, s).unwrap();
        let mut c = cfg(path, 4, 1);
        c.data.features = Some(vec!["a".into(), "flat".into()]);
        let p = prepare_training(&c).unwrap();
        assert_eq!(p.features, vec!["a", "flat"]);
        assert!(
            p.notes
                .iter()
                .any(|n| n.contains("`flat` (2.5) never changes on the training rows")),
            "{:?}",
            p.notes
        );
        // Left to the defaults, it is left out (the report says so).
        c.data.features = None;
        let p = prepare_training(&c).unwrap();
        assert_eq!(p.features, vec!["a"]);
        assert_eq!(p.constant_columns, vec![("flat".to_string(), 2.5)]);
        // A feature varying by 1e-40, which no float32 std holds (the
        // model would train and then fail its own load check).
        let path = c.data.path.clone().unwrap();
        let mut s = String::from("day,a,faint,y\n");
        for i in 0..200 {
            let faint = (i as f64 * 0.7).sin() * 1e-40;
            s += &format!(
                "{i},{},{faint:e},{}\n",
                (i as f64 * 0.3).sin(),
                (i % 3 == 0) as u8
            );
        }
        std::fs::write(&path, s).unwrap();
        c.data.features = Some(vec!["a".into(), "faint".into()]);
        let e = prepare_training(&c).unwrap_err().to_string();
        assert!(
            e.contains("feature `faint` varies by") && e.contains("below float32's range"),
            "{e}"
        );
    }

    /// A class none of whose series lands in the training part is
    /// refused by name: it had trained in silence, and one test label
    /// outside the training classes made a two-class model three-class.
    #[test]
    fn a_class_without_training_series_is_refused_by_name() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s.ts");
        let mut text = String::from("@data\n");
        for i in 0..30 {
            text += &format!("{},{},{}:{}\n", i, i % 3, i % 5, ["a", "b", "c"][i % 3]);
        }
        text += "1,2,3:rare\n";
        std::fs::write(&p, text).unwrap();
        let mut c = Config::default();
        c.data.path = Some(p);
        c.data.layout = Layout::Sequences;
        c.data.split.shuffle = Some(false);
        let e = prepare_training(&c).unwrap_err().to_string();
        assert!(
            e.contains("no training series of class `rare` (1 series)")
                && e.contains("data.split.shuffle: true"),
            "{e}"
        );
        // Two classes in training and a third only in the test part (a
        // mistyped label): refused too, never a three-class model.
        let mut text = String::from("@data\n");
        for i in 0..30 {
            text += &format!("{},{},{}:{}\n", i, i % 3, i % 5, ["a", "b"][i % 2]);
        }
        text += "1,2,3:2\n";
        std::fs::write(c.data.path.as_ref().unwrap(), text).unwrap();
        let e = prepare_training(&c).unwrap_err().to_string();
        assert!(e.contains("no training series of class `2`"), "{e}");
        // The same file less the stray series trains as two classes.
        let text: String = std::fs::read_to_string(c.data.path.as_ref().unwrap())
            .unwrap()
            .replace("1,2,3:2\n", "");
        std::fs::write(c.data.path.as_ref().unwrap(), text).unwrap();
        assert_eq!(prepare_training(&c).unwrap().info.classes.len(), 0);
    }

    /// A scored file is read in the training config's format, unless its
    /// own extension is a known one other than the training file's.
    #[test]
    fn a_scored_file_takes_the_configs_format_unless_its_extension_says_otherwise() {
        let d = |path: &str, format: Option<&str>| DataConfig {
            path: Some(PathBuf::from(path)),
            format: format.map(str::to_string),
            ..Default::default()
        };
        let ts_txt = d("/x/train.txt", Some("ts"));
        assert_eq!(scored_format(Path::new("train.txt"), &ts_txt), Some("ts"));
        assert_eq!(scored_format(Path::new("new.TXT"), &ts_txt), Some("ts"));
        assert_eq!(scored_format(Path::new("new"), &ts_txt), Some("ts"));
        assert_eq!(scored_format(Path::new("new.tsv"), &ts_txt), None);
        let ts = d("/x/a.ts", Some("ts"));
        assert_eq!(scored_format(Path::new("b.tsv"), &ts), None);
        assert_eq!(scored_format(Path::new("b.ts"), &ts), Some("ts"));
        assert_eq!(
            scored_format(Path::new("b.tsv"), &d("/x/a.csv", None)),
            None
        );
    }

    /// ISO times compare as times: an offset that moves a row back is
    /// refused though its text sorts after, two spellings of one instant
    /// are a repeat, an hourly zoned series is in order across the autumn
    /// change, and a date not of the calendar or a time column listed as a
    /// feature is refused.
    #[test]
    fn iso_times_are_ordered_as_instants_not_as_text() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("t.csv");
        let write = |times: &[String]| {
            let body: String = times
                .iter()
                .enumerate()
                .map(|(i, t)| format!("{t},{},{}\n", (i as f64 * 0.7).sin(), i % 2))
                .collect();
            std::fs::write(&path, format!("day,a,y\n{body}")).unwrap();
        };
        let mut c = cfg(path.clone(), 3, 1);
        c.data.split.gap = Some(2);
        let hours: Vec<String> = (0..60)
            .map(|i| format!("2020-04-{:02}T{:02}:00:00+00:00", 1 + i / 24, i % 24))
            .collect();
        write(&hours);
        assert!(prepare_training(&c).is_ok());
        let mut t = hours.clone();
        t[31] = "2020-04-02T12:00:00+09:00".into(); // 03:00 UTC, after 06:00 UTC
        write(&t);
        let e = prepare_training(&c).unwrap_err().to_string();
        assert!(
            e.contains("row 31 (line 33) (2020-04-02T12:00:00+09:00) comes before row 30"),
            "{e}"
        );
        let mut t = hours.clone();
        t[31] = "2020-04-02T06:00:00Z".into(); // row 30's instant
        write(&t);
        let e = prepare_training(&c).unwrap_err().to_string();
        assert!(
            e.contains("row 31 (line 33) (2020-04-02T06:00:00Z) repeats row 30"),
            "{e}"
        );
        // One time recur cannot read among those it reads (it switched the
        // comparison of instants off for the whole column).
        let mut t = hours.clone();
        t[31] = "2020-04-02T07:00:00 CET".into();
        write(&t);
        let e = prepare_training(&c).unwrap_err().to_string();
        assert!(
            e.contains(
                "row 31 (line 33) holds `2020-04-02T07:00:00 CET`, a time recur cannot read"
            ),
            "{e}"
        );
        let mut t = hours.clone();
        t[31] = "2020-04-02 07:00:00".into();
        write(&t);
        let e = prepare_training(&c).unwrap_err().to_string();
        assert!(
            e.contains("has a UTC offset and row 31 (line 33) (2020-04-02 07:00:00) has none"),
            "{e}"
        );
        // Berlin's autumn change: 02:00+02:00, 02:00+01:00, 03:00+01:00.
        let berlin: Vec<String> = (0..60)
            .map(|i| {
                let (h, off) = match i {
                    0..=25 => (i, 2),
                    26 => (25, 1),
                    _ => (i - 1, 1),
                };
                format!("2020-10-{:02}T{:02}:00:00+0{off}:00", 24 + h / 24, h % 24)
            })
            .collect();
        write(&berlin);
        assert!(prepare_training(&c).is_ok(), "{berlin:?}");
        let mut t: Vec<String> = (0..60)
            .map(|i| format!("2020-02-{:02}", 1 + i % 28 + i / 28))
            .collect();
        t.sort();
        t.dedup();
        t.truncate(29);
        t.push("2020-02-30".into());
        t.extend((1..=30).map(|k| format!("2020-03-{k:02}")));
        write(&t);
        let e = prepare_training(&c).unwrap_err().to_string();
        assert!(
            e.contains("row 29 (line 31) holds `2020-02-30`, not a date of the calendar"),
            "{e}"
        );
        write(&hours);
        c.data.features = Some(vec!["a".into(), "day".into()]);
        let e = prepare_training(&c).unwrap_err().to_string();
        assert!(
            e.contains("data.features") && e.contains("`day` is data.time_column"),
            "{e}"
        );
    }

    /// What `predict`, `eval` and `drift` read is held to training's rules:
    /// rows in time order; values within float32 (training accepted 1e39,
    /// which `eval` then refused); and training needs both classes.
    #[test]
    fn scoring_keeps_time_order_and_training_refuses_what_scoring_would() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("t.csv");
        let row = |i: usize| {
            let (m, day) = (1 + i / 28, 1 + i % 28);
            format!(
                "2024-{m:02}-{day:02},{},{}\n",
                (i as f64 * 0.7).sin(),
                i % 2
            )
        };
        let good: String = (0..60).map(row).collect();
        std::fs::write(&path, format!("day,a,y\n{good}")).unwrap();
        let mut c = cfg(path.clone(), 3, 1);
        c.data.split.gap = Some(2);
        let p = prepare_training(&c).unwrap();
        assert!(p.notes.is_empty(), "{:?}", p.notes);
        // A missing time is named in a note, and the rows either side of
        // it are still compared (numbers 9, -, 5 went through).
        let lines: Vec<String> = good.lines().map(str::to_string).collect();
        let with_day = |f: &dyn Fn(usize, &str) -> String| -> String {
            let body: String = lines
                .iter()
                .enumerate()
                .map(|(i, l)| format!("{}{}\n", f(i, l), &l[l.find(',').unwrap()..]))
                .collect();
            format!("day,a,y\n{body}")
        };
        let gaps = d.path().join("gaps.csv");
        let mut cg = c.clone();
        cg.data.path = Some(gaps.clone());
        std::fs::write(
            &gaps,
            with_day(&|i, l| {
                if i == 10 {
                    String::new()
                } else {
                    l[..10].to_string()
                }
            }),
        )
        .unwrap();
        let p = prepare_training(&cg).unwrap();
        assert_eq!(p.notes.len(), 1, "{:?}", p.notes);
        assert!(
            p.notes[0].contains("1 row(s) have no time (the first: row 10 (line 12))"),
            "{:?}",
            p.notes
        );
        std::fs::write(
            &gaps,
            with_day(&|i, _| match i {
                10 => String::new(),
                11 => "5".into(),
                _ => i.to_string(),
            }),
        )
        .unwrap();
        let e = prepare_training(&cg).unwrap_err().to_string();
        assert!(
            e.contains("row 11 (line 13) (5) comes before row 9 (line 11) (9)"),
            "{e}"
        );
        // Times recur cannot compare are taken as they come, and said so.
        std::fs::write(&gaps, with_day(&|i, _| format!("{:02}/01/2024", 60 - i))).unwrap();
        let p = prepare_training(&cg).unwrap();
        assert!(
            p.notes[0].contains("neither numbers nor ISO dates"),
            "{:?}",
            p.notes
        );
        let shuffled = d.path().join("late.csv");
        let rows: Vec<String> = (0..60).map(|i| row((i * 7) % 60)).collect();
        std::fs::write(&shuffled, format!("day,a,y\n{}", rows.concat())).unwrap();
        for need_labels in [true, false] {
            let e = match prepare_inference(&shuffled, &c, &p.scaler, 3, &p.info, need_labels) {
                Ok(_) => panic!("a file out of time order was scored"),
                Err(e) => e.to_string(),
            };
            assert!(e.contains("late.csv") && e.contains("comes before"), "{e}");
        }
        let e = feature_values(&shuffled, &c, &p.features)
            .unwrap_err()
            .to_string();
        assert!(e.contains("comes before"), "{e}");
        std::fs::write(
            &path,
            format!("day,a,y\n{}", good.replacen(",0,", ",1e39,", 1)),
        )
        .unwrap();
        let e = prepare_training(&c).unwrap_err().to_string();
        assert!(e.contains("`a` is 1e39, beyond float32"), "{e}");
        // So does the feature selection, whose statistics it would be.
        let e = select_features(&c).unwrap_err().to_string();
        assert!(e.contains("`a` is 1e39, beyond float32"), "{e}");
        let one_class: String = (0..60).map(|i| row(i).replace(",1\n", ",0\n")).collect();
        std::fs::write(&path, format!("day,a,y\n{one_class}")).unwrap();
        let e = prepare_training(&c).unwrap_err().to_string();
        assert!(e.contains("is 0: a classifier needs both classes"), "{e}");
        // The validation part alone of one class (rows 42..51 of 60 at the
        // default 70/15/15 split, less the window's warm-up).
        let val_one: String = (0..60)
            .map(|i| {
                if (38..52).contains(&i) {
                    row(i).replace(",1\n", ",0\n")
                } else {
                    row(i)
                }
            })
            .collect();
        std::fs::write(&path, format!("day,a,y\n{val_one}")).unwrap();
        let e = prepare_training(&c).unwrap_err().to_string();
        assert!(e.contains("every label of the validation part"), "{e}");
    }
}

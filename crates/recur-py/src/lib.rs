//! `recur._recur`, the extension module under the Python package in
//! `python/recur`. It only converts (numpy arrays and Python values in,
//! numpy arrays and JSON out) and calls the library crates' public API:
//! `recur_train::{train_table_to_dir, train_sequences_to_dir}`, `recur_deploy::{Predictor,
//! score_table}`, `recur_deploy::model_dir::load_lvm`,
//! `recur_train::lvm::train_to_dir`, `recur_text::SentenceEncoder`. The
//! estimator conventions (scikit-learn's `fit` / `predict_proba`, pickling,
//! NaN alignment) live in the Python layer; no model logic lives here.
//!
//! The GIL is released while Rust works (`Python::detach`, on a worker of
//! recur's thread pool: `compute`), so other
//! Python threads run, and progress reaches Python through a callback that
//! takes the GIL only for the call. Errors keep the CLI's messages: a file
//! that cannot be read or written is an `OSError`, everything else the
//! user can fix a `ValueError`.

use candle_core::{Device, Tensor};
use numpy::{
    PyArray1, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2, PyReadonlyArray3,
    PyUntypedArrayMethods,
};
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use recur_core::progress::{Progress, Units};
use recur_core::Error;
use recur_data::{Column, Table};
use std::path::PathBuf;

/// Runs `f` with the GIL released, on a worker of recur's own thread
/// pool: a parallel product then starts on that thread and wakes one
/// other, where from a Python thread it would hand every part to the pool
/// and sleep until they finish (the CLI does the same, recur-cli's `run`).
fn compute<T: Send>(py: Python<'_>, f: impl FnOnce() -> T + Send) -> T {
    py.detach(|| on_pool(f))
}

/// Runs `f` on a worker of recur's pool (see [`compute`]), from a thread
/// that holds no interpreter lock; on the worker it is already on, when
/// called from one (a fit started in a progress callback queued its work
/// behind the workers that waited for it, and hung).
fn on_pool<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    // The caller's precision goes with the job: a worker may be inside
    // another thread's `scoped` call (a bf16 training) when it picks it up.
    let prec = recur_kernels::precision::current();
    match pool() {
        Some(p) if p.current_thread_index().is_some() => f(),
        Some(p) => p.install(move || recur_kernels::precision::scoped(prec, f)),
        None => f(),
    }
}

/// recur's thread pool in this process. A child made by `fork` (Python's
/// default `multiprocessing` start method on Linux, gunicorn's preload)
/// has none of its parent's threads, so the parent's pool would take the
/// child's work and never run it: every call hung. The child builds a
/// pool of its own; the parent's is leaked there, since dropping it would
/// signal threads that do not exist.
fn pool() -> Option<std::sync::Arc<rayon::ThreadPool>> {
    type Owned = Option<(u32, Option<std::sync::Arc<rayon::ThreadPool>>)>;
    static POOL: std::sync::Mutex<Owned> = std::sync::Mutex::new(None);
    let pid = std::process::id();
    let mut held = POOL.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((owner, p)) = held.as_ref() {
        if *owner == pid {
            return p.clone();
        }
    }
    if let Some(parents) = held.take() {
        std::mem::forget(parents);
    }
    let p = rayon::ThreadPoolBuilder::new()
        .num_threads(candle_core::utils::get_num_threads())
        .thread_name(|i| format!("recur-{i}"))
        .stack_size(16 << 20)
        .build()
        .ok()
        .map(std::sync::Arc::new);
    *held = Some((pid, p.clone()));
    p
}

/// [`compute`] for training, which Ctrl-C can stop: the work runs on
/// another thread while this (the caller's) thread looks for a pending
/// signal every 50 ms. Python runs signal handlers on its main thread
/// only, and only between bytecodes, so a run that held no interpreter
/// lock could not be interrupted until it ended. A signal's exception is
/// kept in `progress`, which then asks the training to stop between
/// batches; [`PyProgress::result`] raises it.
fn compute_interruptible<T: Send>(
    py: Python<'_>,
    progress: &PyProgress,
    f: impl FnOnce() -> T + Send,
) -> T {
    // On a pool worker already (a fit started from a progress callback),
    // the work runs there: a new thread would queue it behind the workers
    // that wait for it. Only Python's main thread takes signals anyway.
    if pool().is_some_and(|p| p.current_thread_index().is_some()) {
        return py.detach(f);
    }
    py.detach(|| {
        std::thread::scope(|s| {
            let prec = recur_kernels::precision::current();
            let work = s.spawn(move || recur_kernels::precision::scoped(prec, || on_pool(f)));
            while !work.is_finished() {
                std::thread::sleep(std::time::Duration::from_millis(50));
                if progress.1.stop.load(std::sync::atomic::Ordering::Relaxed) {
                    continue;
                }
                if let Err(e) = Python::attach(|py| py.check_signals()) {
                    progress.1.stop_with(e);
                }
            }
            match work.join() {
                Ok(v) => v,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    })
}

/// recur's error as Python's: a file that is not there is a
/// `FileNotFoundError` and one that may not be read a `PermissionError`
/// (as Python's own `open` raises them, so `except FileNotFoundError`
/// catches a missing config or data file), other file errors `OSError`,
/// the rest (bad values) `ValueError`.
fn err(e: Error) -> PyErr {
    use std::io::ErrorKind;
    match &e {
        Error::Io { io, .. } if io.kind() == ErrorKind::NotFound => {
            pyo3::exceptions::PyFileNotFoundError::new_err(e.to_string())
        }
        Error::Io { io, .. } if io.kind() == ErrorKind::PermissionDenied => {
            pyo3::exceptions::PyPermissionError::new_err(e.to_string())
        }
        Error::Io { io, .. } if io.kind() == ErrorKind::WouldBlock => {
            pyo3::exceptions::PyBlockingIOError::new_err(e.to_string())
        }
        Error::Io { .. } => PyOSError::new_err(e.to_string()),
        _ => PyValueError::new_err(e.to_string()),
    }
}

/// Progress as calls of a Python callable `callback(event, text, n)`:
/// `("start", stage, total)`, `("advance", status, n)`, `("finish", "", 0)`
/// and `("note", line, 0)`. An exception in the callback, like a signal's
/// exception caught by [`compute_interruptible`] (Ctrl-C's
/// KeyboardInterrupt), asks the work to stop, and [`PyProgress::result`]
/// raises it: an error in the caller's code is not passed over in silence.
/// The callback is not called again after it raised.
struct PyProgress(Option<Py<PyAny>>, SignalCheck);

/// The exception Python raised while the work ran (a signal's, or the
/// progress callback's), and whether it did.
#[derive(Default)]
struct SignalCheck {
    raised: std::sync::Mutex<Option<PyErr>>,
    stop: std::sync::atomic::AtomicBool,
}

impl SignalCheck {
    /// Keeps the first exception and asks the work to stop.
    fn stop_with(&self, e: PyErr) {
        if let Ok(mut r) = self.raised.lock() {
            r.get_or_insert(e);
        }
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

impl PyProgress {
    fn new(callback: Option<Py<PyAny>>) -> PyProgress {
        PyProgress(callback, SignalCheck::default())
    }

    /// The work's result, or the signal's exception where one stopped it
    /// (or it failed meanwhile). A signal that came after the last batch
    /// stopped nothing: the work's result stands, and the signal is raised
    /// again for Python to handle once the call returns, as it would have
    /// been without the work.
    fn result<T>(&self, r: recur_core::Result<T>) -> PyResult<T> {
        let raised = self.1.raised.lock().ok().and_then(|mut g| g.take());
        match (raised, r) {
            (Some(e), Ok(v)) => {
                // A KeyboardInterrupt raised on a thread other than the
                // main one (a callback's own, where the call ran on a
                // worker thread) is that thread's: Python's interrupt flag
                // would raise it again in the main thread instead.
                let ctrl_c_on_main = Python::attach(|py| {
                    e.is_instance_of::<pyo3::exceptions::PyKeyboardInterrupt>(py)
                        && py
                            .import("threading")
                            .and_then(|t| {
                                let now = t.call_method0("current_thread")?;
                                let main = t.call_method0("main_thread")?;
                                Ok(now.is(&main))
                            })
                            .unwrap_or(true)
                });
                if !ctrl_c_on_main {
                    // Another handler's exception: raised as it was.
                    return Err(e);
                }
                // SAFETY: it only sets Python's flag of a pending SIGINT.
                unsafe { pyo3::ffi::PyErr_SetInterrupt() };
                Ok(v)
            }
            (Some(e), Err(_)) => Err(e),
            (None, r) => r.map_err(err),
        }
    }

    fn call(&self, event: &str, text: &str, n: u64) {
        let Some(cb) = &self.0 else { return };
        if self.1.stop.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        Python::attach(|py| {
            if let Err(e) = cb.call1(py, (event, text, n)) {
                self.1.stop_with(e);
            }
        });
    }
}

impl Progress for PyProgress {
    fn start(&self, stage: &str, total: u64, _units: Units) {
        self.call("start", stage, total);
    }
    fn advance(&self, n: u64, status: &str) {
        self.call("advance", status, n);
    }
    fn finish(&self) {
        self.call("finish", "", 0);
    }
    fn note(&self, line: &str) {
        self.call("note", line, 0);
    }
    fn stop_requested(&self) -> bool {
        self.1.stop.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// A table from named columns: float64 arrays (numbers) or lists of str
/// (a time column, labels).
fn table(names: Vec<String>, columns: Vec<Bound<'_, PyAny>>) -> PyResult<Table> {
    let mut cols = Vec::with_capacity(columns.len());
    for (name, c) in names.iter().zip(&columns) {
        if let Ok(a) = c.extract::<PyReadonlyArray1<f64>>() {
            cols.push(Column::Numeric(a.as_slice()?.to_vec()));
        } else if let Ok(s) = c.extract::<Vec<String>>() {
            cols.push(Column::Text(s));
        } else {
            return Err(PyValueError::new_err(format!(
                "column `{name}`: give a float64 array or a list of str"
            )));
        }
    }
    Table::from_columns("X", names, cols).map_err(err)
}

/// Job A: trains the config `config` (YAML or JSON text) on the columns
/// given and writes the model directory `out`. Returns the report as JSON
/// and as the text `recur train` prints.
#[pyfunction]
#[pyo3(signature = (config, names, columns, out, progress=None))]
fn train_classifier(
    py: Python<'_>,
    config: &str,
    names: Vec<String>,
    columns: Vec<Bound<'_, PyAny>>,
    out: PathBuf,
    progress: Option<Py<PyAny>>,
) -> PyResult<(String, String)> {
    let cfg =
        recur_core::config::Config::from_yaml(config, "the estimator's parameters").map_err(err)?;
    let t = table(names, columns)?;
    let progress = PyProgress::new(progress);
    let r = compute_interruptible(py, &progress, || {
        let opts = recur_train::FitOptions {
            progress: &progress,
        };
        let r = recur_train::train_table_to_dir(&cfg, &t, &out, &Device::Cpu, &opts)?;
        let json = serde_json::to_string(&r).map_err(|e| Error::Msg(e.to_string()))?;
        Ok((json, r.to_string()))
    });
    progress.result(r)
}

/// Whole series as the library holds them: each `[T_i, F]` float64 array
/// copied once, time-major, with its label ("" where unknown).
fn sequences(
    series: Vec<PyReadonlyArray2<'_, f64>>,
    labels: Vec<String>,
) -> PyResult<recur_data::ucr::Sequences> {
    let dims = series.first().map_or(0, |a| a.shape()[1]);
    let mut values = Vec::with_capacity(series.len());
    for (i, a) in series.iter().enumerate() {
        if a.shape()[1] != dims {
            return Err(PyValueError::new_err(format!(
                "series {i} has {} channels; series 0 has {dims}: every series needs the same channels",
                a.shape()[1]
            )));
        }
        let mut v: Vec<f64> = a.as_array().iter().copied().collect();
        // NaN marks a missing value, filled as the `?` of a `.ts` file is.
        recur_data::ucr::fill_missing(&mut v, dims).map_err(|j| {
            PyValueError::new_err(format!(
                "series {i}: every value of channel {j} is NaN (missing); a channel needs at least one known value"
            ))
        })?;
        values.push(v);
    }
    recur_data::ucr::Sequences::from_arrays("the series given", values, dims, labels).map_err(err)
}

/// Job A on whole series: trains the config `config` (sequences layout)
/// on `series` (each `[T_i, F]`) with their `labels` and writes the model
/// directory `out`. Returns the report as JSON and as text.
#[pyfunction]
#[pyo3(signature = (config, series, labels, out, progress=None))]
fn train_sequences(
    py: Python<'_>,
    config: &str,
    series: Vec<PyReadonlyArray2<'_, f64>>,
    labels: Vec<String>,
    out: PathBuf,
    progress: Option<Py<PyAny>>,
) -> PyResult<(String, String)> {
    let cfg =
        recur_core::config::Config::from_yaml(config, "the estimator's parameters").map_err(err)?;
    let s = sequences(series, labels)?;
    let progress = PyProgress::new(progress);
    let r = compute_interruptible(py, &progress, || {
        let opts = recur_train::FitOptions {
            progress: &progress,
        };
        let r = recur_train::train_sequences_to_dir(&cfg, &s, &out, &Device::Cpu, &opts)?;
        let json = serde_json::to_string(&r).map_err(|e| Error::Msg(e.to_string()))?;
        Ok((json, r.to_string()))
    });
    progress.result(r)
}

/// A loaded Job A model directory (`recur_deploy::Predictor`).
#[pyclass(name = "Classifier", module = "recur._recur")]
struct Classifier {
    p: recur_deploy::Predictor,
}

fn nan(v: Option<f64>) -> f64 {
    v.unwrap_or(f64::NAN)
}

/// The columns of `recur predict` as numpy arrays (NaN where missing).
fn scores_dict<'py>(
    py: Python<'py>,
    preds: &[recur_deploy::Prediction],
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    let col = |f: &dyn Fn(&recur_deploy::Prediction) -> f64| -> Vec<f64> {
        preds.iter().map(f).collect()
    };
    let rows: Vec<i64> = preds.iter().map(|p| p.row as i64).collect();
    d.set_item("row", PyArray1::from_vec(py, rows))?;
    d.set_item(
        "label",
        PyArray1::from_vec(py, col(&|p| nan(p.label.map(f64::from)))),
    )?;
    d.set_item("p_lstm", PyArray1::from_vec(py, col(&|p| nan(p.p_lstm))))?;
    d.set_item("p_trees", PyArray1::from_vec(py, col(&|p| nan(p.p_trees))))?;
    d.set_item(
        "p_ensemble",
        PyArray1::from_vec(py, col(&|p| nan(p.p_ensemble))),
    )?;
    d.set_item(
        "probability",
        PyArray1::from_vec(py, col(&|p| nan(p.probability))),
    )?;
    d.set_item(
        "decision",
        PyArray1::from_vec(py, col(&|p| nan(p.decision.map(f64::from)))),
    )?;
    Ok(d)
}

#[pymethods]
impl Classifier {
    /// Opens a Job A model directory as `recur predict --model` does: the
    /// manifest, every tensor's name and shape, the scaler, the trees and
    /// the calibrators checked.
    #[staticmethod]
    fn load(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let p = compute(py, || recur_deploy::Predictor::load(&path, &Device::Cpu)).map_err(err)?;
        Ok(Classifier { p })
    }

    /// Scores every row of the columns given that the model scores, as
    /// `recur predict` does: a dict of arrays `row`, `label`, `p_lstm`,
    /// `p_trees`, `p_ensemble`, `probability`, `decision` (NaN where a
    /// value is missing).
    fn score<'py>(
        &self,
        py: Python<'py>,
        names: Vec<String>,
        columns: Vec<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let t = table(names, columns)?;
        let s = compute(py, || recur_deploy::score_table(&self.p, t, false)).map_err(err)?;
        scores_dict(py, &s.predictions)
    }

    /// As `score`, on a float32 C-contiguous array `[n, F]` whose columns
    /// are the model's features in its order: every row from `first_row`
    /// on. The array is copied as it is (a memcpy, no conversion) before
    /// the GIL is released: read in place, another Python thread writing
    /// to it during the call gave some rows old values and some new (and
    /// a `resize(refcheck=False)` a read of freed memory).
    fn score_array<'py>(
        &self,
        py: Python<'py>,
        x: PyReadonlyArray2<'py, f32>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let (n, f) = (x.shape()[0], x.shape()[1]);
        let want = self.p.features().len();
        if f != want {
            return Err(PyValueError::new_err(format!(
                "the array has {f} columns; the model reads {want} features ({})",
                self.p.features().join(", ")
            )));
        }
        let values = x.as_slice()?.to_vec();
        let rows: Vec<usize> = (self.p.first_row()..n).collect();
        let preds = compute(py, || {
            let series = [(recur_deploy::Values::F32(&values), &[][..], rows.as_slice())];
            self.p.score_values(&series)
        })
        .map_err(err)?;
        scores_dict(py, &preds.concat())
    }

    /// Scores whole series (each `[T_i, F]`, the sequences layout): a dict
    /// of `probability` (two classes: the calibrated probability of the
    /// positive class; more: that of the most probable class), `decision`
    /// (two classes), `class_probabilities` (`[n, K]`, more than two
    /// classes) and `class` (the most probable class's name, more than
    /// two).
    fn score_series<'py>(
        &self,
        py: Python<'py>,
        series: Vec<PyReadonlyArray2<'py, f64>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let n = series.len();
        let s = sequences(series, vec![String::new(); n])?;
        let preds = compute(py, || self.p.score_series(&s)).map_err(err)?;
        let d = PyDict::new(py);
        let probability: Vec<f64> = preds.iter().map(|p| nan(p.probability)).collect();
        d.set_item("probability", PyArray1::from_vec(py, probability))?;
        let decision: Vec<f64> = preds
            .iter()
            .map(|p| nan(p.decision.map(f64::from)))
            .collect();
        d.set_item("decision", PyArray1::from_vec(py, decision))?;
        let k = self.p.classes().len();
        if k > 0 {
            let flat: Vec<f64> = preds
                .iter()
                .flat_map(|p| {
                    p.class_probabilities
                        .clone()
                        .unwrap_or_else(|| vec![f64::NAN; k])
                })
                .collect();
            let arr = PyArray1::from_vec(py, flat).reshape([n, k])?;
            d.set_item("class_probabilities", arr)?;
            let class: Vec<String> = preds
                .iter()
                .map(|p| p.class.clone().unwrap_or_default())
                .collect();
            d.set_item("class", class)?;
        }
        Ok(d)
    }

    /// The classes in the order of `class_probabilities` (more than two
    /// classes; empty with two).
    #[getter]
    fn classes(&self) -> Vec<String> {
        self.p.classes().to_vec()
    }
    /// The class taken as positive (two classes, sequences layout).
    #[getter]
    fn positive_label(&self) -> Option<String> {
        self.p.dir.info.positive_label.clone()
    }
    /// `rows` (windows of a time series) or `sequences` (whole series).
    #[getter]
    fn layout(&self) -> &'static str {
        match self.p.dir.config.data.layout {
            recur_core::config::Layout::Rows => "rows",
            recur_core::config::Layout::Sequences => "sequences",
        }
    }

    /// The feature columns the model reads, in its order.
    #[getter]
    fn features(&self) -> Vec<String> {
        self.p.features().to_vec()
    }
    /// The LSTM's window length L.
    #[getter]
    fn sequence_length(&self) -> usize {
        self.p.sequence_length()
    }
    /// The first row any model scores (the rows before it are warm-up).
    #[getter]
    fn first_row(&self) -> usize {
        self.p.first_row()
    }
    /// The rows a series needs before its first deployed probability.
    #[getter]
    fn min_rows(&self) -> usize {
        self.p.min_rows()
    }
    /// The deployed model's saved decision threshold.
    #[getter]
    fn threshold(&self) -> f64 {
        self.p.threshold()
    }
    /// `lstm`, `trees` or `ensemble`.
    #[getter]
    fn deployed(&self) -> String {
        self.p.deployed().to_string()
    }
    /// The model directory it was loaded from.
    #[getter]
    fn path(&self) -> PathBuf {
        self.p.path.clone()
    }
    /// The model's config as JSON (infinities as `inf`).
    #[getter]
    fn config_json(&self) -> PyResult<String> {
        config_json(&self.p.dir.config)
    }
}

/// A loaded Job B model directory (an LVM).
#[pyclass(name = "Lvm", module = "recur._recur")]
struct Lvm {
    m: recur_models::Lvm,
    path: PathBuf,
}

#[pymethods]
impl Lvm {
    /// Opens an LVM directory (or its weights file alone), checking every
    /// tensor's name and shape against the architecture it records.
    #[staticmethod]
    fn load(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        // A weights file alone loads too, as `recur lvm predict --model
        // FILE` takes it (then nothing checks it against a manifest).
        if !path.is_file() {
            model_dir_at(&path)?;
        }
        let m = compute(py, || {
            recur_deploy::model_dir::load_lvm(&path, &Device::Cpu)
        })
        .map_err(err)?;
        Ok(Lvm { m, path })
    }

    /// The next vector of each window: float32 `[N, C, D]` in, `[N, D]` out.
    fn predict<'py>(
        &self,
        py: Python<'py>,
        windows: PyReadonlyArray3<'py, f32>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (n, c, d) = {
            let s = windows.shape();
            (s[0], s[1], s[2])
        };
        let a = &self.m.arch;
        if c != a.context || d != a.input_dim {
            return Err(PyValueError::new_err(format!(
                "windows have shape [{n}, {c}, {d}]; the model takes [N, {}, {}] (context {}, vectors of dimension {})",
                a.context, a.input_dim, a.context, a.input_dim
            )));
        }
        if let Some(k) = windows.as_slice()?.iter().position(|x| !x.is_finite()) {
            return Err(PyValueError::new_err(format!(
                "window {} holds NaN or infinity",
                k / (c * d).max(1)
            )));
        }
        let x = windows.as_slice()?.to_vec();
        let out: Vec<f32> = compute(py, || -> candle_core::Result<Vec<f32>> {
            let largest = recur_deploy::lvm_eval::largest(&x);
            let t = Tensor::from_vec(x, (n, c, d), &Device::Cpu)?;
            let p = self.m.predict(&t)?.flatten_all()?.to_vec1()?;
            recur_deploy::lvm_eval::finite_predictions(p, d, largest)
        })
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
        Ok(PyArray1::from_vec(py, out).reshape([n, d])?.into_any())
    }

    /// `lstm`, `gru`, `amn`, `transformer` or `mlp`.
    #[getter]
    fn kind(&self) -> String {
        self.m.arch.kind.to_string()
    }
    /// The context length C.
    #[getter]
    fn context(&self) -> usize {
        self.m.arch.context
    }
    /// The vector dimension D.
    #[getter]
    fn dim(&self) -> usize {
        self.m.arch.input_dim
    }
    /// The model directory (or weights file) it was loaded from.
    #[getter]
    fn path(&self) -> PathBuf {
        self.path.clone()
    }
}

/// Job B: trains the LVM config `config` (YAML text; paths as written, or
/// a config file's path when `is_file`) and writes the model directory
/// `out`. Returns the report as JSON and as the table `recur lvm train`
/// prints.
#[pyfunction]
#[pyo3(signature = (config, out, is_file=false, progress=None, recorded=None))]
fn train_lvm(
    py: Python<'_>,
    config: &str,
    out: PathBuf,
    is_file: bool,
    progress: Option<Py<PyAny>>,
    recorded: Option<PathBuf>,
) -> PyResult<(String, String)> {
    use recur_core::lvm_config::LvmConfig;
    let cfg = if is_file {
        LvmConfig::from_file(config.as_ref())
    } else {
        LvmConfig::from_yaml(config, "the LVM's parameters")
    }
    .map_err(err)?;
    let progress = PyProgress::new(progress);
    let r = compute_interruptible(py, &progress, || {
        let t = recur_train::lvm::train_to_dir_recording(
            &cfg,
            &out,
            &Device::Cpu,
            &progress,
            recorded.as_deref(),
        )?;
        let json = serde_json::to_string(&t.report).map_err(|e| Error::Msg(e.to_string()))?;
        Ok((json, t.report.to_string()))
    });
    progress.result(r)
}

/// A sentence encoder (BERT or T5 from a sentence-transformers folder).
#[pyclass(name = "SentenceEncoder", module = "recur._recur")]
struct SentenceEncoder {
    e: recur_text::SentenceEncoder,
}

#[pymethods]
impl SentenceEncoder {
    /// A known model name (fetched into recur's cache on first use) or a
    /// sentence-transformers folder.
    #[new]
    #[pyo3(signature = (name_or_dir, progress=None))]
    fn new(py: Python<'_>, name_or_dir: &str, progress: Option<Py<PyAny>>) -> PyResult<Self> {
        let progress = PyProgress::new(progress);
        let e = compute(py, || {
            let dir = recur_text::fetch::resolve_encoder(name_or_dir, true, &progress)?;
            recur_text::SentenceEncoder::load(&dir, &Device::Cpu)
        });
        let e = progress.result(e)?;
        Ok(SentenceEncoder { e })
    }

    /// Normalised float32 embeddings `[N, D]` of `texts`.
    #[pyo3(signature = (texts, batch_size=32))]
    fn encode<'py>(
        &self,
        py: Python<'py>,
        texts: Vec<String>,
        batch_size: usize,
    ) -> PyResult<Bound<'py, PyAny>> {
        if batch_size == 0 {
            return Err(PyValueError::new_err("batch_size must be at least 1"));
        }
        // Named as Python indexes them (`check_texts` counts from 1, as
        // the lines of `recur embed`'s input).
        if let Some(i) = texts.iter().position(|t| !recur_text::encoder::visible(t)) {
            return Err(PyValueError::new_err(format!(
                "texts[{i}] holds only characters the encoder drops (controls, zero-width or \
                 format characters, combining marks); there is nothing to embed"
            )));
        }
        recur_text::encoder::check_texts(&texts).map_err(err)?;
        let n = texts.len();
        let v = compute(py, || {
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            self.e.encode(&refs, batch_size)
        })
        .map_err(err)?;
        Ok(PyArray1::from_vec(py, v)
            .reshape([n, self.e.dim])?
            .into_any())
    }

    /// The embedding dimension D.
    #[getter]
    fn dim(&self) -> usize {
        self.e.dim
    }
}

/// `classifier` or `lvm`: which job wrote the model directory `path`.
#[pyfunction]
fn kind_of(path: PathBuf) -> PyResult<&'static str> {
    model_dir_at(&path)?;
    Ok(match recur_deploy::model_dir::kind_of(&path) {
        recur_deploy::model_dir::DirKind::Classifier => "classifier",
        recur_deploy::model_dir::DirKind::Lvm => "lvm",
    })
}

/// `path` as a folder that holds a model, or an `OSError` that says what
/// it is instead (`FileNotFoundError` where nothing is there).
fn model_dir_at(path: &std::path::Path) -> PyResult<()> {
    let shown = path.display();
    if let Some(why) = recur_core::fsx::access_denied(path) {
        return Err(pyo3::exceptions::PyPermissionError::new_err(format!(
            "{shown} {why}"
        )));
    }
    if !path.exists() {
        return Err(pyo3::exceptions::PyFileNotFoundError::new_err(format!(
            "{shown} does not exist: give a model directory (`recur train`, `recur lvm train` or the package wrote it)"
        )));
    }
    if !path.is_dir() {
        return Err(PyOSError::new_err(format!(
            "{shown} is a file, not a model directory: give the folder that holds model.safetensors"
        )));
    }
    if !path.join(recur_deploy::model_dir::WEIGHTS).exists() && !path.join("manifest.json").exists()
    {
        return Err(PyOSError::new_err(format!(
            "{shown} holds no model.safetensors or manifest.json: not a recur model directory \
             (`recur train`, `recur lvm train` or the package writes one)"
        )));
    }
    Ok(())
}

/// A config as JSON, with the infinities JSON cannot hold as the strings
/// `inf` and `-inf` (serde_json would write them as null).
fn config_json(cfg: &recur_core::config::Config) -> PyResult<String> {
    fn conv(v: serde_yaml_ng::Value) -> serde_json::Value {
        use serde_yaml_ng::Value as Y;
        match v {
            Y::Null => serde_json::Value::Null,
            Y::Bool(b) => b.into(),
            Y::Number(n) => match n.as_f64() {
                Some(f) if n.is_f64() && f.is_infinite() => {
                    (if f > 0.0 { "inf" } else { "-inf" }).into()
                }
                _ => serde_json::to_value(&n).unwrap_or(serde_json::Value::Null),
            },
            Y::String(s) => s.into(),
            Y::Sequence(s) => s.into_iter().map(conv).collect(),
            Y::Mapping(m) => m
                .into_iter()
                .filter_map(|(k, v)| k.as_str().map(|k| (k.to_string(), conv(v))))
                .collect::<serde_json::Map<_, _>>()
                .into(),
            Y::Tagged(t) => conv(t.value),
        }
    }
    let v = serde_yaml_ng::to_value(cfg).map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok(conv(v).to_string())
}

/// `recur import-torch`: a PyTorch checkpoint (`.pt` or `.safetensors`)
/// into the LVM directory `out`, every tensor name and shape checked; the
/// warnings the CLI prints, as lines. `context` and `heads` where the file
/// does not state them (as `--context` and `--heads`).
#[pyfunction]
#[pyo3(signature = (checkpoint, out, context=None, heads=None))]
fn import_torch(
    py: Python<'_>,
    checkpoint: PathBuf,
    out: PathBuf,
    context: Option<usize>,
    heads: Option<usize>,
) -> PyResult<Vec<String>> {
    let given = recur_deploy::import::Given { context, heads };
    compute(py, || {
        let imp = recur_deploy::import::import_with(&checkpoint, &Device::Cpu, &given)?;
        recur_deploy::import::write_dir(&out, &checkpoint, &imp)?;
        Ok(imp.warnings)
    })
    .map_err(err)
}

/// Job A's config defaults as JSON, the optional sections (selection,
/// trees, ensemble) filled with theirs, so the Python estimator can check
/// its keyword defaults against the library's.
#[pyfunction]
fn default_config() -> PyResult<String> {
    config_json(&recur_core::config::Config {
        selection: Some(Default::default()),
        trees: Some(Default::default()),
        ensemble: Some(Default::default()),
        ..Default::default()
    })
}

/// The Job A config file `path` as JSON (relative paths joined to its
/// folder, checked as a saved model's config is: a model directory's
/// config.yaml from before settings of another kind were refused still
/// reads).
#[pyfunction]
fn read_config(path: PathBuf) -> PyResult<String> {
    config_json(&recur_core::config::Config::read_saved(&path).map_err(err)?)
}

/// The text `recur train` (`job` "classifier") or `recur lvm train` (`job`
/// "lvm") prints for a training report, from its `report.json` text: what
/// a loaded model gives as `report_text_`. Empty where the text is not
/// such a report (a directory `recur import-torch` wrote has none).
#[pyfunction]
fn report_text(report_json: &str, job: &str) -> PyResult<String> {
    Ok(match job {
        "classifier" => serde_json::from_str::<recur_deploy::model_dir::Report>(report_json)
            .map(|r| r.to_string())
            .unwrap_or_default(),
        "lvm" => serde_json::from_str::<recur_deploy::lvm_eval::LvmReport>(report_json)
            .map(|r| r.to_string())
            .unwrap_or_default(),
        _ => {
            return Err(PyValueError::new_err(format!(
                "job is {job:?}: give \"classifier\" or \"lvm\""
            )))
        }
    })
}

#[pymodule]
fn _recur(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // As the `recur` binary does for its non-encoding commands: candle's
    // elementwise pool spins beside the rayon threads of the fused kernels
    // and GEMMs (see crates/recur-cli/src/main.rs); run those small ops on
    // the calling thread unless the user chose otherwise. The numbers do
    // not depend on it.
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
    m.add_function(wrap_pyfunction!(train_classifier, m)?)?;
    m.add_function(wrap_pyfunction!(train_sequences, m)?)?;
    m.add_function(wrap_pyfunction!(train_lvm, m)?)?;
    m.add_function(wrap_pyfunction!(kind_of, m)?)?;
    m.add_function(wrap_pyfunction!(import_torch, m)?)?;
    m.add_function(wrap_pyfunction!(default_config, m)?)?;
    m.add_function(wrap_pyfunction!(read_config, m)?)?;
    m.add_function(wrap_pyfunction!(report_text, m)?)?;
    m.add_class::<Classifier>()?;
    m.add_class::<Lvm>()?;
    m.add_class::<SentenceEncoder>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}

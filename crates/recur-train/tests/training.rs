//! Training behaviour on small synthetic series: early stopping restores the
//! best weights (a real copy), the same seed gives the same numbers, the
//! model learns a signal that needs memory, and a saved model with a renamed
//! or reshaped tensor is refused.

use candle_core::{Device, Tensor};
use recur_core::checkpoint::save;
use recur_core::config::Config;
use recur_data::prepare_training;
use recur_deploy::load_model_dir;
use recur_deploy::predictor::predict_logits;
use recur_train::loss::{auto_pos_weight, bce_with_logits_f64};
use recur_train::{fit, train_to_dir, FitOptions};
use std::path::{Path, PathBuf};

mod common;

use common::Lcg;

/// `n` rows of two noise features; `y[r] = 1` when `a[r-3] > 0.5` if
/// `signal`, else a coin flip. The label needs memory of 3 steps back.
fn write_series(dir: &Path, n: usize, signal: bool, seed: u64) -> PathBuf {
    let mut g = Lcg(seed);
    let a: Vec<f64> = (0..n).map(|_| g.next()).collect();
    let mut s = String::from("t,a,b,y\n");
    for r in 0..n {
        let y = if signal {
            (r >= 3 && a[r - 3] > 0.5) as u8
        } else {
            (g.next() < 0.4) as u8
        };
        s += &format!("{r},{:.6},{:.6},{y}\n", a[r], g.next());
    }
    let p = dir.join("series.csv");
    std::fs::write(&p, s).unwrap();
    p
}

fn config(path: PathBuf, epochs: usize, patience: usize, lr: f64) -> Config {
    let mut c = Config::default();
    c.data.path = Some(path);
    c.data.time_column = Some("t".into());
    c.data.features = Some(vec!["a".into(), "b".into()]);
    c.data.target.column = Some("y".into());
    c.model.sequence_length = 8;
    c.model.hidden_size = 16;
    c.training.batch_size = 64;
    c.training.epochs = epochs;
    c.training.early_stopping_patience = patience;
    c.training.learning_rate = lr;
    c
}

#[test]
fn early_stopping_restores_a_copy_of_the_best_weights() {
    let d = tempfile::tempdir().unwrap();
    // Noise labels and a high learning rate: the model overfits, so the
    // validation loss gets worse after some early epoch.
    let cfg = config(write_series(d.path(), 800, false, 3), 40, 3, 0.02);
    let prep = prepare_training(&cfg).unwrap();
    let r = fit(&prep, &cfg, &Device::Cpu, &FitOptions::default()).unwrap();
    assert!(
        r.best_epoch < r.epochs_run,
        "the scenario must stop after the best epoch: {}",
        r.best_epoch
    );
    let last = r.history.last().unwrap().val_loss;
    let best = r.history[r.best_epoch - 1].val_loss;
    assert!(best < last);
    // The returned model computes exactly the best epoch's validation loss.
    let logits = predict_logits(&r.model, &prep.val, &Device::Cpu).unwrap();
    let now = bce_with_logits_f64(&logits, &prep.val.labels(), r.pos_weight);
    assert_eq!(
        now, best,
        "restored weights give {now}, best epoch had {best}, last had {last}"
    );
    assert_eq!(r.best_val_loss, best);
    // pos_weight is neg/pos over the training windows.
    assert_eq!(r.pos_weight, auto_pos_weight(&prep.train.labels()));
    let pos = prep.train.labels().iter().filter(|v| **v == 1.0).count() as f64;
    assert_eq!(r.pos_weight, (prep.train.len() as f64 - pos) / pos);
}

#[test]
fn same_seed_same_numbers_and_the_lstm_learns_through_time() {
    let d = tempfile::tempdir().unwrap();
    let cfg = config(write_series(d.path(), 1200, true, 5), 40, 8, 0.02);
    let prep = prepare_training(&cfg).unwrap();
    let a = fit(&prep, &cfg, &Device::Cpu, &FitOptions::default()).unwrap();
    let b = fit(&prep, &cfg, &Device::Cpu, &FitOptions::default()).unwrap();
    let strip = |h: &[recur_deploy::report::EpochRecord]| -> Vec<(f64, f64, Option<f64>)> {
        h.iter()
            .map(|e| (e.train_loss, e.val_loss, e.val_auc))
            .collect()
    };
    assert_eq!(strip(&a.history), strip(&b.history));
    let auc = a.history[a.best_epoch - 1].val_auc.unwrap();
    assert!(
        auc > 0.9,
        "the label is a[r-3] > 0.5: an LSTM should find it, got val AUC {auc}"
    );
    let mut other = cfg.clone();
    other.training.seed = 7;
    let c = fit(&prep, &other, &Device::Cpu, &FitOptions::default()).unwrap();
    assert_ne!(strip(&a.history), strip(&c.history));
}

/// `training.precision: bf16` trains through bf16 products: the same
/// numbers twice, numbers of its own (not f32's), the same signal found,
/// and the thread back in f32 afterwards.
#[test]
fn bf16_training_repeats_itself_differs_from_f32_and_still_learns() {
    use recur_kernels::precision::{current, Precision};
    let d = tempfile::tempdir().unwrap();
    let cfg = config(write_series(d.path(), 1200, true, 5), 12, 12, 0.02);
    let prep = prepare_training(&cfg).unwrap();
    let mut half = cfg.clone();
    half.training.precision = "bf16".into();
    let strip = |h: &[recur_deploy::report::EpochRecord]| -> Vec<(f64, f64)> {
        h.iter().map(|e| (e.train_loss, e.val_loss)).collect()
    };
    let a = fit(&prep, &half, &Device::Cpu, &FitOptions::default()).unwrap();
    assert_eq!(current(), Precision::F32);
    let b = fit(&prep, &half, &Device::Cpu, &FitOptions::default()).unwrap();
    let f = fit(&prep, &cfg, &Device::Cpu, &FitOptions::default()).unwrap();
    assert_eq!(strip(&a.history), strip(&b.history));
    assert_ne!(strip(&a.history), strip(&f.history));
    // Within 5% of the first epoch's loss of f32's best: 12 epochs end on
    // the steep part of the curve (the loss falls 3-4x in the last one),
    // where ulp-level differences in any product move the best loss by
    // several percent of itself (the `gemm` crate's AVX-512 kernels against
    // its AVX2 ones moved f32's from 0.03636 to 0.03632 and bf16's from
    // 0.0369 to 0.0387), while a bf16 path that failed to learn would stay
    // near the start.
    let (ab, fb, start) = (a.best_val_loss, f.best_val_loss, f.history[0].val_loss);
    assert!(
        (ab - fb).abs() < 0.05 * start,
        "bf16 best val loss {ab}, f32 {fb}, f32's first epoch {start}"
    );
    let auc = a.history[a.best_epoch - 1].val_auc.unwrap();
    assert!(
        auc > 0.9,
        "bf16 training should find a[r-3] > 0.5, val AUC {auc}"
    );
    half.training.precision = "fp16".into();
    let e = fit(&prep, &half, &Device::Cpu, &FitOptions::default())
        .err()
        .expect("fp16 is not a precision")
        .to_string();
    assert!(
        e.contains("training.precision") && e.contains("f32 or bf16"),
        "{e}"
    );
}

#[test]
fn a_checkpoint_with_a_renamed_or_reshaped_tensor_does_not_load() {
    let d = tempfile::tempdir().unwrap();
    let cfg = config(write_series(d.path(), 400, true, 9), 2, 2, 0.01);
    let out = d.path().join("model");
    train_to_dir(&cfg, &out, &Device::Cpu, &FitOptions::default()).unwrap();
    let md = load_model_dir(&out, &Device::Cpu).unwrap();
    let arch = md.model.arch().to_json();
    let weights = out.join("model.safetensors");
    let good = std::fs::read(&weights).unwrap();

    // Renamed: fc.weight -> head.weight.
    let mut snap = md.model.snapshot().unwrap();
    snap.iter_mut()
        .filter(|(n, _)| n == "fc.weight")
        .for_each(|(n, _)| *n = "head.weight".into());
    save(&weights, &snap, &arch).unwrap();
    // The manifest sees the weights changed first ...
    let e = load_model_dir(&out, &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("model.safetensors (changed)"), "{e}");
    // ... and with it rewritten to match (an edit by hand) the tensors
    // are checked one by one.
    recur_core::dirwrite::reseal(&out).unwrap();
    let e = load_model_dir(&out, &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("missing: fc.weight [1, 16]") && e.contains("unexpected: head.weight [1, 16]"),
        "{e}"
    );

    // Reshaped: a narrower recurrent matrix under the right name.
    let mut snap = md.model.snapshot().unwrap();
    for (n, t) in snap.iter_mut() {
        if n == "lstm.weight_hh_l0" {
            *t = t.narrow(1, 0, 8).unwrap();
        }
    }
    save(&weights, &snap, &arch).unwrap();
    recur_core::dirwrite::reseal(&out).unwrap();
    let e = load_model_dir(&out, &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("misshapen: lstm.weight_hh_l0 is [64, 8], code expects [64, 16]"),
        "{e}"
    );

    // The architecture stored with the weights must match the config.
    std::fs::write(&weights, &good).unwrap();
    let cfg_path = out.join("config.yaml");
    let text = std::fs::read_to_string(&cfg_path).unwrap();
    std::fs::write(
        &cfg_path,
        text.replace("hidden_size: 16", "hidden_size: 32"),
    )
    .unwrap();
    recur_core::dirwrite::reseal(&out).unwrap();
    let e = load_model_dir(&out, &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("hidden_size: checkpoint has 16, code expects 32"),
        "{e}"
    );
    assert!(e.contains("refusing to load"), "{e}");
}

#[test]
fn whole_sequences_from_a_ts_file_train_evaluate_and_predict() {
    use recur_core::config::Layout;
    let d = tempfile::tempdir().unwrap();
    // Class "up" rises, class "down" falls, both with noise; 20 steps.
    let mut g = Lcg(11);
    let mut s = String::from("@problemName Trend\n@classLabel true up down\n@data\n");
    for i in 0..200 {
        let up = i % 2 == 0;
        let vals: Vec<String> = (0..20)
            .map(|t| {
                let trend = if up {
                    t as f64 * 0.1
                } else {
                    -(t as f64) * 0.1
                };
                format!("{:.4}", trend + g.next() - 0.5)
            })
            .collect();
        s += &format!("{}:{}\n", vals.join(","), if up { "up" } else { "down" });
    }
    let path = d.path().join("trend.ts");
    std::fs::write(&path, s).unwrap();
    let mut cfg = config(path.clone(), 15, 5, 0.01);
    cfg.data.layout = Layout::Sequences;
    cfg.data.time_column = None;
    cfg.data.features = None;
    cfg.data.target.column = None;
    cfg.data.target.positive_label = Some("up".into());
    cfg.data.split.shuffle = Some(true);
    let out = d.path().join("m");
    let report = train_to_dir(&cfg, &out, &Device::Cpu, &FitOptions::default()).unwrap();
    assert_eq!((report.n_train, report.n_val, report.n_test), (140, 30, 30));
    assert_eq!(report.sequence_length, 20);
    assert!(
        report.test.as_ref().unwrap().auc.unwrap() > 0.95,
        "{:?}",
        report.test
    );
    let p = recur_deploy::Predictor::load(&out, &Device::Cpu).unwrap();
    let e = recur_deploy::evaluate(&p, &path).unwrap();
    assert_eq!(e.rows["all"], 200);
    let s = &e.models["lstm"].raw.parts["all"];
    assert_eq!((s.n, s.positives), (200, 100));
    let preds = d.path().join("p.csv");
    let scores = recur_deploy::score_file(&p, &path, false).unwrap();
    assert_eq!(scores.predictions.len(), 200);
    recur_deploy::write_predictions(&p, &scores, &path, &preds).unwrap();
    let text = std::fs::read_to_string(&preds).unwrap();
    assert!(
        text.starts_with("row,label,p_lstm,probability,decision\n0,"),
        "{text}"
    );
    // An output never overwrites its input.
    let e = recur_deploy::write_predictions(&p, &scores, &path, &path)
        .unwrap_err()
        .to_string();
    assert!(e.contains("is the input file"), "{e}");
}

/// Series of 40 steps where the class is a bump early or late, plus noise:
/// what a convolution sees and a plain recurrence over 40 steps learns
/// slowly.
fn write_bumps(path: &Path, n: usize, seed: u64) {
    let mut g = Lcg(seed);
    let mut s = String::from("@problemName Bumps\n@classLabel true early late\n@data\n");
    for i in 0..n {
        let early = i % 2 == 0;
        let at = if early { 10.0 } else { 28.0 };
        let vals: Vec<String> = (0..40)
            .map(|t| {
                let bump = (-((t as f64 - at) / 3.0).powi(2)).exp() * 2.0;
                format!("{:.4}", bump + g.next() - 0.5)
            })
            .collect();
        s += &format!(
            "{}:{}\n",
            vals.join(","),
            if early { "early" } else { "late" }
        );
    }
    std::fs::write(path, s).unwrap();
}

#[test]
fn lstm_fcn_trains_saves_and_loads_strictly_and_predicts_what_it_trained() {
    use recur_core::config::{ClassifierKind, Layout};
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("bumps.ts");
    write_bumps(&path, 120, 5);
    let mut cfg = config(path.clone(), 12, 12, 0.003);
    cfg.data.layout = Layout::Sequences;
    cfg.data.time_column = None;
    cfg.data.features = None;
    cfg.data.target.column = None;
    cfg.data.target.positive_label = Some("late".into());
    cfg.data.split.shuffle = Some(true);
    cfg.model.kind = ClassifierKind::LstmFcn;
    cfg.model.hidden_size = 4;
    cfg.model.dropout = 0.5;
    cfg.model.filters = [8, 16, 8];
    cfg.training.batch_size = 16;
    let out = d.path().join("m");
    let report = train_to_dir(&cfg, &out, &Device::Cpu, &FitOptions::default()).unwrap();
    assert!(
        report.test.as_ref().unwrap().auc.unwrap() > 0.95,
        "{:?}",
        report.test
    );
    // The checkpoint holds the running statistics and the LSTM-FCN arch.
    let md = load_model_dir(&out, &Device::Cpu).unwrap();
    assert_eq!(md.model.arch().kind(), "lstm_fcn");
    let names: Vec<String> = md
        .model
        .snapshot()
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert!(names.contains(&"bn2.running_mean".to_string()), "{names:?}");
    // What is loaded predicts what was trained: the loaded model's logits
    // equal a second load's, and the batch does not change a row's score.
    let p = recur_deploy::Predictor::load(&out, &Device::Cpu).unwrap();
    let all = recur_deploy::score_file(&p, &path, false).unwrap();
    let again = recur_deploy::score_file(&p, &path, false).unwrap();
    assert_eq!(
        format!("{:?}", all.predictions),
        format!("{:?}", again.predictions)
    );
    let x = md.windows_of(&path, true).unwrap();
    let logits = predict_logits(&md.model, &x.windows, &Device::Cpu).unwrap();
    let mut buf = Vec::new();
    x.windows.gather(&[7], &mut buf);
    let one = Tensor::from_slice(&buf, (1, 40, 1), &Device::Cpu).unwrap();
    let alone: Vec<f32> = md.model.forward(&one, None).unwrap().to_vec1().unwrap();
    assert!(
        (alone[0] - logits[7]).abs() < 1e-5,
        "{} vs {}",
        alone[0],
        logits[7]
    );
    // A scaler whose std would send every input beyond float32 is refused
    // on load, naming the file (not, later, the input).
    let scaler_path = out.join("scaler.json");
    let good_scaler = std::fs::read_to_string(&scaler_path).unwrap();
    let mut s: serde_json::Value = serde_json::from_str(&good_scaler).unwrap();
    s["std"][0] = serde_json::json!(1e-40);
    std::fs::write(&scaler_path, s.to_string()).unwrap();
    recur_core::dirwrite::reseal(&out).unwrap();
    let e = load_model_dir(&out, &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("scaler.json") && e.contains("float32's normal range"),
        "{e}"
    );
    std::fs::write(&scaler_path, good_scaler).unwrap();
    // A config that says lstm does not load LSTM-FCN weights.
    let cfg_path = out.join("config.yaml");
    let text = std::fs::read_to_string(&cfg_path).unwrap();
    std::fs::write(&cfg_path, text.replace("type: lstm-fcn", "type: lstm")).unwrap();
    recur_core::dirwrite::reseal(&out).unwrap();
    let e = load_model_dir(&out, &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("refusing to load") && e.contains("kind"), "{e}");
}

#[test]
fn a_watcher_that_says_stop_ends_training_with_the_best_weights_so_far() {
    let d = tempfile::tempdir().unwrap();
    let cfg = config(write_series(d.path(), 800, true, 5), 20, 20, 0.01);
    let prep = prepare_training(&cfg).unwrap();
    let mut seen = Vec::new();
    let r = recur_train::trainer::fit_watched(
        &prep,
        &cfg,
        &Device::Cpu,
        &FitOptions::default(),
        &mut |rec| {
            seen.push(rec.epoch);
            rec.epoch < 3
        },
    )
    .unwrap();
    // Pruned after epoch 3: three epochs run, the best of them kept.
    assert_eq!(seen, vec![1, 2, 3]);
    assert_eq!(r.epochs_run, 3);
    assert!(r.best_epoch <= 3);
    let best = r
        .history
        .iter()
        .map(|h| h.val_loss)
        .fold(f64::INFINITY, f64::min);
    assert_eq!(r.best_val_loss, best);
}

/// Collects the notes a fit tells.
#[derive(Default)]
struct Notes(std::sync::Mutex<Vec<String>>);

impl recur_core::progress::Progress for Notes {
    fn note(&self, line: &str) {
        self.0.lock().unwrap().push(line.to_string());
    }
}

#[test]
fn a_model_no_better_than_a_constant_guess_is_said() {
    let d = tempfile::tempdir().unwrap();
    let path = write_series(d.path(), 800, true, 5);
    // The note said about the fit, if any (it is kept for the report as
    // it was said).
    let said = |lr: f64, pos_weight: Option<f64>| -> Option<String> {
        let mut cfg = config(path.clone(), 3, 3, lr);
        if let Some(w) = pos_weight {
            cfg.training.pos_weight = recur_core::config::PosWeight::Number(w);
        }
        let prep = prepare_training(&cfg).unwrap();
        let notes = Notes::default();
        let opts = FitOptions { progress: &notes };
        let r = fit(&prep, &cfg, &Device::Cpu, &opts).unwrap();
        let lines: Vec<String> = notes
            .0
            .into_inner()
            .unwrap()
            .into_iter()
            .filter(|l| l.contains("no better than a constant guess"))
            .collect();
        let kept: Vec<String> = r.notes.iter().map(|n| format!("note: {n}")).collect();
        assert_eq!(lines, kept);
        lines.into_iter().next()
    };
    // A rate that learns the signal, then one that saturates every cell at
    // the first step (its loss far above the base rate's).
    assert_eq!(said(0.02, None), None);
    assert!(said(1e30, None).unwrap().contains("learnt nothing"));
    // A class weight of 1e-30: the constant guess is near perfect for the
    // weighted loss, and the model that ranks no better is said so too.
    assert!(said(0.02, Some(1e-30)).is_some());
}

/// A config changed in code meets the rules a file does: each value below
/// panicked, wrapped or trained a model no command would load back.
#[test]
fn a_config_changed_in_code_is_checked_as_a_file_is() {
    let d = tempfile::tempdir().unwrap();
    let data = write_series(d.path(), 300, true, 7);
    type Edit = fn(&mut Config);
    let edits: [(Edit, &str); 4] = [
        (|c| c.model.hidden_size = 0, "model.hidden_size"),
        (|c| c.model.sequence_length = 0, "model.sequence_length"),
        (|c| c.model.dropout = 1.5, "model.dropout"),
        (|c| c.training.batch_size = 0, "training.batch_size"),
    ];
    for (edit, key) in edits {
        let mut c = config(data.clone(), 1, 1, 0.01);
        edit(&mut c);
        let out = d.path().join("m");
        let e = train_to_dir(&c, &out, &Device::Cpu, &FitOptions::default())
            .err()
            .unwrap();
        assert!(
            matches!(e, recur_core::Error::Config { .. }) && e.to_string().contains(key),
            "{key}: {e}"
        );
        assert!(!out.exists(), "{key}: a model was written");
    }
    // Whole series in memory (Python's SequenceClassifier) likewise.
    let series = recur_data::ucr::Sequences {
        source: "in memory".into(),
        values: (0..20).map(|i| vec![i as f64; 8]).collect(),
        labels: (0..20).map(|i| (i % 2).to_string()).collect(),
        sequence_length: 8,
        dims: 1,
        filled: 0,
    };
    let mut c = common::sequences_config(&data, recur_core::config::ClassifierKind::Lstm);
    c.model.hidden_size = 0;
    let e = recur_train::train_sequences_to_dir(
        &c,
        &series,
        &d.path().join("s"),
        &Device::Cpu,
        &FitOptions::default(),
    )
    .err()
    .unwrap();
    assert!(e.to_string().contains("model.hidden_size"), "{e}");
    let mut l = recur_core::lvm_config::LvmConfig::default();
    l.data.train = data;
    l.training.batch_size = 0;
    let e = recur_train::lvm::train_to_dir(
        &l,
        &d.path().join("lvm"),
        &Device::Cpu,
        &recur_core::progress::SILENT,
    )
    .err()
    .unwrap();
    assert!(e.to_string().contains("batch_size"), "{e}");
    // What a program holds prints with `{:?}` (`unwrap_err` needs it).
    let e = recur_deploy::Predictor::load(&d.path().join("nope"), &Device::Cpu).unwrap_err();
    assert!(e.to_string().contains("nope"), "{e}");
    assert!(format!("{:?}", FitOptions::default()).starts_with("FitOptions"));
}

/// A reporter that asks to stop once the first stage (an epoch's batches)
/// is over.
struct StopAfterFirstStage(std::sync::atomic::AtomicBool);

impl recur_core::progress::Progress for StopAfterFirstStage {
    fn finish(&self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
    fn stop_requested(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// A stop asked after the last batch (during the trees, the calibration)
/// ends the run without a model: it was asked only between batches, and
/// the model was written all the same.
#[test]
fn a_stop_asked_after_the_last_batch_writes_no_model() {
    let d = tempfile::tempdir().unwrap();
    let data = write_series(d.path(), 300, true, 7);
    let c = config(data, 1, 1, 0.01);
    let out = d.path().join("m");
    let stop = StopAfterFirstStage(Default::default());
    let e = train_to_dir(&c, &out, &Device::Cpu, &FitOptions { progress: &stop })
        .err()
        .unwrap();
    assert!(recur_core::progress::is_interrupted(&e), "{e}");
    assert!(!out.exists());
}

/// A reporter that asks to stop once `flag` is set.
struct StopWhen<'a>(&'a std::sync::atomic::AtomicBool);

impl recur_core::progress::Progress for StopWhen<'_> {
    fn stop_requested(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// A program stops a classifier search through its `Progress`, as the
/// LVM search already could: the trial running ends with `Interrupted`,
/// the finished one stays in trials.json, and the next run goes on from it.
#[test]
fn a_library_search_stops_when_its_progress_asks_and_resumes() {
    use recur_core::config::TuneConfig;
    use std::sync::atomic::{AtomicBool, Ordering};
    let d = tempfile::tempdir().unwrap();
    let data = write_series(d.path(), 300, true, 7);
    let mut c = config(data, 2, 2, 0.01);
    c.tune = Some(TuneConfig {
        sequence_length: [4, 8],
        hidden_size: [4, 8],
        ..Default::default()
    });
    let out = d.path().join("search");
    let flag = AtomicBool::new(false);
    let stop = StopWhen(&flag);
    let seen = std::sync::Mutex::new(0usize);
    let after_first = |_: &recur_train::tune::Trial| {
        *seen.lock().unwrap() += 1;
        flag.store(true, Ordering::SeqCst);
    };
    let e = recur_train::tune::tune(&c, 3, 1, &out, &Device::Cpu, &stop, &after_first)
        .expect_err("the search was asked to stop after its first trial");
    assert!(recur_core::progress::is_interrupted(&e), "{e}");
    assert_eq!(*seen.lock().unwrap(), 1);
    let silent = &recur_core::progress::SILENT;
    let r = recur_train::tune::tune(&c, 3, 1, &out, &Device::Cpu, silent, &|_| {}).unwrap();
    assert_eq!(r.resumed, 1);
    assert_eq!(r.trials.len(), 3);
}

//! More than two classes, end to end on a small synthetic `.ts` file of
//! two channels: a softmax head trained with class-weighted cross-entropy,
//! a temperature fit on validation, per-class probabilities from the
//! predictor, the metrics of `recur eval`, the table of `recur predict`,
//! the same numbers from the same seed, and strict loading.

use candle_core::Device;
use recur_core::config::{ClassifierKind, Config};
use recur_deploy::multiclass::argmax;
use recur_train::{train_to_dir, FitOptions};
use std::path::Path;

mod common;

use common::{sequences_config, Lcg};

/// `n` series of 16 steps in two channels: `up` rises in channel 0, `down`
/// falls in it, `flat` holds still there but rises in channel 1; noise on
/// both. Classes are unbalanced 2:1:1 (`up` the most common).
fn write_three_classes(path: &Path, n: usize, seed: u64) {
    let mut g = Lcg(seed);
    let mut s = String::from("@problemName Three\n@classLabel true up down flat\n@data\n");
    for i in 0..n {
        let class = ["up", "down", "up", "flat"][i % 4];
        let (a, b) = match class {
            "up" => (0.02, 0.0),
            "down" => (-0.02, 0.0),
            _ => (0.0, 0.02),
        };
        let ch = |slope: f64, g: &mut Lcg| {
            (0..16)
                .map(|t| format!("{:.4}", slope * t as f64 + g.next() - 0.5))
                .collect::<Vec<_>>()
                .join(",")
        };
        let c0 = ch(a, &mut g);
        let c1 = ch(b, &mut g);
        s += &format!("{c0}:{c1}:{class}\n");
    }
    std::fs::write(path, s).unwrap();
}

fn config(path: &Path, kind: ClassifierKind) -> Config {
    let mut c = sequences_config(path, kind);
    c.model.hidden_size = 12;
    c.model.filters = [8, 16, 8];
    c.training.batch_size = 32;
    c.training.epochs = 25;
    c.training.early_stopping_patience = 25;
    c
}

#[test]
fn three_classes_train_calibrate_predict_and_evaluate() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("three.ts");
    write_three_classes(&path, 240, 3);
    let cfg = config(&path, ClassifierKind::Lstm);
    let out = d.path().join("m");
    let report = train_to_dir(&cfg, &out, &Device::Cpu, &FitOptions::default()).unwrap();
    assert_eq!(report.classes, vec!["down", "flat", "up"]);
    let test = report.test.as_ref().unwrap();
    assert!(test.accuracy > 0.85, "{test:?}");
    assert!(test.macro_f1.unwrap() > 0.8, "{test:?}");
    assert!(test.auc.unwrap() > 0.95, "{test:?}");
    let conf = test.confusion.as_ref().unwrap();
    assert_eq!(conf.iter().flatten().sum::<usize>(), report.n_test);
    // Calibration is fit on validation and never makes it worse there.
    let tf = report.temperature.as_ref().unwrap();
    assert!(tf.temperature > 0.0 && tf.temperature != 1.0, "{tf:?}");
    assert!(report.val.logloss < tf.val_raw.logloss, "{tf:?}");
    assert_eq!(report.val.accuracy, tf.val_raw.accuracy);
    let text = report.to_string();
    assert!(
        text.contains("macro F1")
            && text.contains("confusion on test")
            && text.contains("temperature"),
        "{text}"
    );

    // The predictor gives each class's probability, summing to one, and
    // the most probable class by name.
    let p = recur_deploy::Predictor::load(&out, &Device::Cpu).unwrap();
    assert_eq!(p.classes(), ["down", "flat", "up"]);
    let scores = recur_deploy::score_file(&p, &path, false).unwrap();
    assert_eq!(scores.predictions.len(), 240);
    let mut right = 0;
    for x in &scores.predictions {
        let q = x.class_probabilities.as_ref().unwrap();
        assert!((q.iter().sum::<f64>() - 1.0).abs() < 1e-9, "{q:?}");
        let c = argmax(q, 3)[0];
        assert_eq!(x.class.as_deref(), Some(p.classes()[c].as_str()));
        assert_eq!(x.probability, Some(q[c]));
        right += usize::from(x.label == Some(c as f32));
    }
    // `recur eval` on the whole file: the same accuracy the rows give.
    let e = recur_deploy::evaluate(&p, &path).unwrap();
    let m = e.multiclass.as_ref().unwrap();
    assert_eq!(m.calibrated.n, 240);
    assert!((m.calibrated.accuracy - right as f64 / 240.0).abs() < 1e-12);
    assert!((m.temperature - tf.temperature).abs() < 1e-12);
    assert!(e.to_string().contains("macro AUC"), "{e}");
    // `recur predict`'s table: a probability column per class.
    let preds = d.path().join("p.csv");
    recur_deploy::write_predictions(&p, &scores, &path, &preds).unwrap();
    let table = std::fs::read_to_string(&preds).unwrap();
    let mut lines = table.lines();
    assert_eq!(
        lines.next(),
        Some("row,label,p_down,p_flat,p_up,class,probability")
    );
    assert!(lines.next().unwrap().starts_with("0,up,"), "{table}");

    // The same seed gives the same numbers.
    let again = train_to_dir(
        &cfg,
        &d.path().join("m2"),
        &Device::Cpu,
        &FitOptions::default(),
    )
    .unwrap();
    assert_eq!(
        serde_json::to_string(&again).unwrap(),
        serde_json::to_string(&report).unwrap()
    );
    // `calibration: none` keeps the softmax as trained (a temperature was
    // fit all the same, while config.yaml said none).
    let mut none = cfg.clone();
    none.calibration = recur_core::job_a::CalibrationKind::None;
    let raw = train_to_dir(
        &none,
        &d.path().join("m3"),
        &Device::Cpu,
        &FitOptions::default(),
    )
    .unwrap();
    let tf_none = raw.temperature.as_ref().unwrap();
    assert_eq!(tf_none.temperature, 1.0);
    assert_eq!(raw.val.logloss, tf.val_raw.logloss);
    assert!(
        raw.to_string().contains("temperature 1: calibration none"),
        "{raw}"
    );

    // A file with a class the model never saw is refused by name (its
    // header declares it; one that does not is refused as it is read).
    let other = d.path().join("other.ts");
    let text = std::fs::read_to_string(&path).unwrap();
    let undeclared = text.replacen(":flat\n", ":sideways\n", 1);
    std::fs::write(&other, &undeclared).unwrap();
    let err = recur_deploy::evaluate(&p, &other).unwrap_err().to_string();
    assert!(
        err.contains("class `sideways` is not one the header declares"),
        "{err}"
    );
    std::fs::write(
        &other,
        undeclared.replace(
            "@classLabel true up down flat",
            "@classLabel true up down flat sideways",
        ),
    )
    .unwrap();
    let err = recur_deploy::evaluate(&p, &other).unwrap_err().to_string();
    assert!(
        err.contains("`sideways`") && err.contains("down, flat, up"),
        "{err}"
    );
    // `predict` scores it, its label left empty, and says so.
    let scored = recur_deploy::score_file(&p, &other, false).unwrap();
    assert_eq!(scored.predictions.len(), 240);
    assert!(
        scored.notes.len() == 1
            && scored.notes[0].contains("1 series have a class the model was not trained on")
            && scored.notes[0].contains("`sideways`"),
        "{:?}",
        scored.notes
    );
    // A file with a different number of channels is refused.
    let one = d.path().join("one.ts");
    let text: String = text
        .lines()
        .map(|l| match l.split_once(':') {
            Some((_, rest)) if !l.starts_with('@') => format!("{rest}\n"),
            _ => format!("{l}\n"),
        })
        .collect();
    std::fs::write(&one, text).unwrap();
    let err = recur_deploy::score_file(&p, &one, false)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("1 dimension(s)") && err.contains("trained on 2"),
        "{err}"
    );
}

#[test]
fn lstm_fcn_takes_three_classes_and_a_mismatched_class_list_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("three.ts");
    write_three_classes(&path, 160, 9);
    let mut cfg = config(&path, ClassifierKind::LstmFcn);
    cfg.training.epochs = 12;
    cfg.training.learning_rate = 0.003;
    cfg.training.batch_size = 16;
    let out = d.path().join("m");
    let report = train_to_dir(&cfg, &out, &Device::Cpu, &FitOptions::default()).unwrap();
    assert!(report.test.as_ref().unwrap().accuracy > 0.8, "{report}");
    // A Job A directory, which `recur inspect` and Python's `recur.load`
    // open as one (they took every kind but the LSTM's for an LVM).
    use recur_deploy::model_dir::{inspect, kind_of, DirKind};
    assert_eq!(kind_of(&out), DirKind::Classifier);
    let seen = inspect(&out, &Device::Cpu).unwrap();
    assert!(seen.checks.as_ref().unwrap().is_ok(), "{:?}", seen.checks);
    let e = recur_deploy::model_dir::load_lvm(&out.join("model.safetensors"), &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("Job A classifier (lstm_fcn)"), "{e}");
    // data.json edited to two classes: the head no longer matches the
    // checkpoint, and loading says so instead of guessing.
    let dj = out.join("data.json");
    let info = std::fs::read_to_string(&dj).unwrap();
    let edited = info.replace("\"flat\",", "");
    assert_ne!(info, edited);
    std::fs::write(&dj, edited).unwrap();
    let err = recur_deploy::Predictor::load(&out, &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("data.json"), "{err}");
}

#[test]
fn one_class_and_trees_with_many_classes_are_clear_errors() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("one.ts");
    std::fs::write(&path, "@data\n1,2,3:a\n2,3,4:a\n3,4,5:a\n4,5,6:a\n").unwrap();
    let cfg = config(&path, ClassifierKind::Lstm);
    let err = train_to_dir(
        &cfg,
        &d.path().join("m"),
        &Device::Cpu,
        &FitOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("1 class (a)") && err.contains("one.ts"),
        "{err}"
    );
    let path = d.path().join("three.ts");
    write_three_classes(&path, 40, 1);
    let mut cfg = config(&path, ClassifierKind::Lstm);
    cfg.trees = Some(Default::default());
    let err = train_to_dir(
        &cfg,
        &d.path().join("m"),
        &Device::Cpu,
        &FitOptions::default(),
    )
    .unwrap_err()
    .to_string();
    // Refused by the config's own check, as a file with `trees:` on whole
    // series is (the many-class check behind it is for a config that
    // skips it).
    assert!(
        err.contains("trees") && err.contains("rows layout"),
        "{err}"
    );
}

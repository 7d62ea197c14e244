//! Job A complete, as a user runs it: selection, trees, calibration and
//! the ensemble from one config, the report and its HTML page; an XGBoost
//! model in the trees' place; and the errors for bad settings.

mod common;

use common::{err, ok, recur};
use std::path::{Path, PathBuf};

/// `n` rows: `a` (autocorrelated), `b` (white noise), `flat` (constant 2)
/// and `y[t] = 1` when `a[t-3] > 1`, so memory of three rows predicts it.
fn write_series(dir: &Path, n: usize) -> PathBuf {
    let mut g = recur_core::rng::Rng::new(9);
    let mut a = vec![1.0f64; n];
    for t in 1..n {
        a[t] = 1.0 + 0.6 * (a[t - 1] - 1.0) + g.normal() as f64;
    }
    let mut s = String::from("t,a,b,flat,y\n");
    for r in 0..n {
        let y = (r >= 3 && a[r - 3] > 1.0) as u8;
        s += &format!("{r},{:.5},{:.5},2.0,{y}\n", a[r], 1.0 + g.unit() as f64);
    }
    let p = dir.join("series.csv");
    std::fs::write(&p, s).unwrap();
    p
}

fn config(dir: &Path, extra: &str) -> PathBuf {
    let data = write_series(dir, 1500);
    let yaml = format!(
        "data:\n  path: {}\n  time_column: t\n  target:\n    column: y\n\
         model:\n  sequence_length: 8\n  hidden_size: 8\n\
         training:\n  epochs: 3\n  batch_size: 64\n  learning_rate: 0.01\n{extra}",
        data.display()
    );
    let p = dir.join("job_a.yaml");
    std::fs::write(&p, yaml).unwrap();
    p
}

/// Writes `yaml` as `dir/c.yaml` and trains it into `dir/m` with `extra`
/// arguments: the model directory and what training printed.
fn train_yaml(dir: &Path, yaml: &str, extra: &[&str]) -> (PathBuf, String) {
    let cfg = dir.join("c.yaml");
    std::fs::write(&cfg, yaml).unwrap();
    let m = dir.join("m");
    let mut args = vec![
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        m.to_str().unwrap(),
    ];
    args.extend(extra);
    let text = ok(&recur(&args));
    (m, text)
}

fn json(p: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[test]
fn one_config_trains_selects_blends_calibrates_and_reports() {
    let d = tempfile::tempdir().unwrap();
    let cfg = config(
        d.path(),
        "selection:\n  max_noise_ratio: .inf\n  min_abs_autocorr: 0\n  ewma_span: 1\n\
         trees:\n  lags: [1, 2, 3]\n  iterations: 200\n  learning_rate: 0.2\n  max_depth: 3\n\
         calibration: isotonic\nensemble:\n  weights: dynamic\n",
    );
    let out = d.path().join("m");
    let html = d.path().join("report.html");
    let text = ok(&recur(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--report-html",
        html.to_str().unwrap(),
    ]));
    for want in [
        "lstm (raw)",
        "trees (calibrated)",
        "ensemble (raw)",
        "dropped: constant",
        "ensemble weights",
    ] {
        assert!(text.contains(want), "{want} missing from:\n{text}");
    }
    let r = json(&out.join("report.json"));
    // The constant column was dropped; a and b kept.
    assert_eq!(r["features"], serde_json::json!(["a", "b"]));
    let w = &r["weights"];
    let sum = w["trees"].as_f64().unwrap() + w["lstm"].as_f64().unwrap();
    assert!((sum - 1.0).abs() < 1e-12, "{w}");
    let models = r["models"].as_object().unwrap();
    assert_eq!(models.len(), 3);
    for (name, m) in models {
        for v in ["raw", "calibrated"] {
            let t = &m[v]["test"];
            assert!(t["auc"].as_f64().unwrap() > 0.5, "{name} {v}: {t}");
            let th = m[v]["threshold"].as_f64().unwrap();
            assert!((0.01..=0.99).contains(&th));
        }
    }
    // The trees read the lag-3 copy, which carries the label exactly.
    let trees_auc = models["trees"]["raw"]["test"]["auc"].as_f64().unwrap();
    assert!(trees_auc > 0.95, "{trees_auc}");
    assert_eq!(r["trees"]["importance"][0][0], "a_lag3");
    assert_eq!(r["trees"]["source"], "forust");
    // Isotonic calibration, fit on validation, is calibrated there.
    for (name, m) in models {
        let cal = m["calibrated"]["val"]["ece"].as_f64().unwrap();
        assert!(cal < 0.03, "{name}: validation ECE after isotonic {cal}");
        assert_eq!(m["calibrator"]["kind"], "isotonic");
    }
    for f in [
        "trees.json",
        "ensemble.json",
        "selection.json",
        "report.json",
    ] {
        assert!(out.join(f).exists(), "{f}");
    }
    // inspect names whose figures it shows: the LSTM's raw ones, and the
    // deployed model's (it showed the LSTM's beside "deployed: ensemble").
    let ins = ok(&recur(&["inspect", out.to_str().unwrap()]));
    let cal = &models["ensemble"]["calibrated"];
    let want = format!(
        "deployed ensemble (calibrated): val AUC {:.4}; test AUC {:.4}",
        cal["val"]["auc"].as_f64().unwrap(),
        cal["test"]["auc"].as_f64().unwrap()
    );
    assert!(
        ins.contains(&want) && ins.contains("the LSTM (raw): val AUC"),
        "{ins}"
    );
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        page.matches("<svg").count() >= 5,
        "ROC, 3 reliability diagrams, training curves"
    );
    assert!(page.contains("reliability: ensemble"));
    // The model still predicts (the LSTM with the selected features).
    let preds = d.path().join("p.csv");
    let data = d.path().join("series.csv");
    ok(&recur(&[
        "predict",
        "--model",
        out.to_str().unwrap(),
        "--input",
        data.to_str().unwrap(),
        "--output",
        preds.to_str().unwrap(),
    ]));
    // Every row from the trees' first (lag 3) on, and the header.
    assert_eq!(
        std::fs::read_to_string(&preds).unwrap().lines().count(),
        1500 - 3 + 1
    );
}

#[test]
fn an_xgboost_model_can_take_the_trees_place() {
    let d = tempfile::tempdir().unwrap();
    // The fixture model reads features a, b and c.
    let mut g = recur_core::rng::Rng::new(2);
    let mut s = String::from("a,b,c,y\n");
    for r in 0..600 {
        let (a, b, c) = (g.normal(), g.normal(), g.normal());
        s += &format!(
            "{a:.4},{b:.4},{c:.4},{}\n",
            (a + 0.5 * b * c > 0.0 || r % 7 == 0) as u8
        );
    }
    std::fs::write(d.path().join("abc.csv"), s).unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../recur-models/tests/fixtures");
    let cfg = d.path().join("x.yaml");
    // The user's model, in a folder of its own that goes away after training.
    let theirs = d.path().join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    std::fs::copy(
        fixture.join("xgb_binary.json"),
        theirs.join("xgb_binary.json"),
    )
    .unwrap();
    let yaml = |model: &str| {
        format!(
            "data:\n  path: abc.csv\n  features: [a, b, c]\n  target:\n    column: y\n\
             model:\n  sequence_length: 4\n  hidden_size: 4\ntraining:\n  epochs: 1\n\
             trees:\n  xgboost_model: {}\nensemble: {{}}\n",
            theirs.join(model).display()
        )
    };
    std::fs::write(&cfg, yaml("xgb_binary.json")).unwrap();
    let out = d.path().join("m");
    ok(&recur(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]));
    // The model is copied in, with its SHA-256, and scores without the original.
    let original = std::fs::read(theirs.join("xgb_binary.json")).unwrap();
    assert_eq!(std::fs::read(out.join("xgboost.json")).unwrap(), original);
    let dep = json(&out.join("ensemble.json"));
    assert_eq!(dep["trees"]["source"], "xgboost");
    assert_eq!(
        dep["trees"]["sha256"].as_str(),
        Some(recur_core::fsx::sha256_bytes(&original).as_str())
    );
    let saved = std::fs::read_to_string(out.join("config.yaml")).unwrap();
    assert!(saved.contains("xgboost_model: xgboost.json"), "{saved}");
    // Its data path is absolute: the saved config runs from the model
    // directory as it ran from where it was trained.
    let data_line = saved
        .lines()
        .find(|l| l.trim_start().starts_with("path:"))
        .unwrap();
    assert!(
        data_line.contains(&format!(" {}", d.path().canonicalize().unwrap().display())),
        "{saved}"
    );
    let again = d.path().join("again");
    ok(&recur(&[
        "train",
        "--config",
        out.join("config.yaml").to_str().unwrap(),
        "--out",
        again.to_str().unwrap(),
    ]));
    std::fs::remove_dir_all(&theirs).unwrap();
    let preds = d.path().join("p.csv");
    ok(&recur(&[
        "predict",
        "--model",
        out.to_str().unwrap(),
        "--input",
        d.path().join("abc.csv").to_str().unwrap(),
        "--output",
        preds.to_str().unwrap(),
    ]));
    let text = std::fs::read_to_string(&preds).unwrap();
    assert!(
        text.starts_with("row,label,p_lstm,p_trees,p_ensemble,probability,decision\n"),
        "{text}"
    );
    std::fs::create_dir(&theirs).unwrap();
    std::fs::copy(
        fixture.join("xgb_regression.json"),
        theirs.join("xgb_regression.json"),
    )
    .unwrap();
    let r = json(&out.join("report.json"));
    assert_eq!(r["trees"]["source"], "xgboost");
    assert_eq!(r["trees"]["trees"], 6);
    // The model was trained on this rule: it ranks well here.
    assert!(
        r["models"]["trees"]["raw"]["test"]["auc"].as_f64().unwrap() > 0.8,
        "{}",
        r["models"]["trees"]
    );
    std::fs::write(&cfg, yaml("xgb_regression.json")).unwrap();
    let e = err(&recur(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]));
    assert!(
        e.contains("xgb_regression.json") && e.contains("reg:squarederror"),
        "{e}"
    );
    // Refused before the LSTM trains, each in its own words:
    let refused = |name: &str, text: &[u8]| {
        std::fs::write(theirs.join(name), text).unwrap();
        std::fs::write(&cfg, yaml(name)).unwrap();
        // Not quiet: no epoch may be printed.
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_recur"))
            .args(["--threads", "1", "train", "--config"])
            .arg(&cfg)
            .arg("--out")
            .arg(d.path().join("refused"))
            .output()
            .unwrap();
        let e = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(!out.status.success() && !e.contains("epoch"), "{e}");
        assert!(!d.path().join("refused").exists());
        e
    };
    // a model without feature names, whose columns only position could
    // match (one trained in another order scored without a word);
    let unnamed = std::fs::read_to_string(fixture.join("xgb_binary.json"))
        .unwrap()
        .replace(r#""feature_names":["a","b","c"]"#, r#""feature_names":[]"#);
    assert!(!unnamed.contains(r#""feature_names":["a""#));
    let e = refused("unnamed.json", unnamed.as_bytes());
    assert!(
        e.contains("no feature names") && e.contains(r#"feature_names = ["a", "b", "c"]"#),
        "{e}"
    );
    // (A binary:logitraw model trains, scoring the sigmoid of its margin;
    // a directory from before, whose trees were scored by their margins,
    // is refused at load rather than scored on another scale.)
    let raw = std::fs::read_to_string(fixture.join("xgb_binary.json"))
        .unwrap()
        .replace("binary:logistic", "binary:logitraw");
    std::fs::write(theirs.join("raw.json"), raw).unwrap();
    std::fs::write(&cfg, yaml("raw.json")).unwrap();
    let rawm = d.path().join("raw");
    ok(&recur(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        rawm.to_str().unwrap(),
    ]));
    let predict_raw = || {
        recur(&[
            "predict",
            "--model",
            rawm.to_str().unwrap(),
            "--input",
            d.path().join("abc.csv").to_str().unwrap(),
            "--output",
            d.path().join("raw.csv").to_str().unwrap(),
        ])
    };
    ok(&predict_raw());
    let scored = std::fs::read_to_string(d.path().join("raw.csv")).unwrap();
    let p_trees: Vec<f64> = scored
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').nth(3).and_then(|v| v.parse().ok()))
        .collect();
    assert!(!p_trees.is_empty() && p_trees.iter().all(|p| (0.0..=1.0).contains(p)));
    let ens = rawm.join("ensemble.json");
    let text = std::fs::read_to_string(&ens).unwrap();
    assert!(text.contains("\"scores\": \"probability\""), "{text}");
    std::fs::write(
        &ens,
        text.replace("\"scores\": \"probability\"", "\"scores\": null"),
    )
    .unwrap();
    recur_core::dirwrite::reseal(&rawm).unwrap();
    let e = err(&predict_raw());
    assert!(
        e.contains("binary:logitraw") && e.contains("retrain"),
        "{e}"
    );
    // a binary (UBJSON) model;
    let e = refused(
        "model.ubj",
        b"{L\x00\x00\x00\x00\x00\x00\x00\x07learner{\xff\xfe}",
    );
    assert!(e.contains("UBJSON") && e.contains("model.json"), "{e}");
    // lag copies named as a column of the file.
    let text = std::fs::read_to_string(d.path().join("abc.csv")).unwrap();
    std::fs::write(
        d.path().join("abc.csv"),
        text.replacen("a,b,c,y", "a,a_lag1,c,y", 1),
    )
    .unwrap();
    std::fs::write(
        &cfg,
        "data:\n  path: abc.csv\n  features: [a, a_lag1, c]\n  target:\n    column: y\n\
         model:\n  sequence_length: 4\n  hidden_size: 4\ntrees:\n  lags: [1]\nensemble: {}\n",
    )
    .unwrap();
    let e = err(&recur(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        d.path().join("refused").to_str().unwrap(),
    ]));
    assert!(
        e.contains("`a_lag1` is both a feature and the lagged copy"),
        "{e}"
    );
}

#[test]
fn select_features_prints_every_statistic_and_bad_settings_are_clear() {
    let d = tempfile::tempdir().unwrap();
    let cfg = config(d.path(), "selection:\n  max_noise_ratio: .inf\n");
    let j = d.path().join("sel.json");
    let text = ok(&recur(&[
        "select-features",
        "--config",
        cfg.to_str().unwrap(),
        "--json",
        j.to_str().unwrap(),
    ]));
    assert!(
        text.contains("flat") && text.contains("dropped: constant"),
        "{text}"
    );
    assert!(
        text.contains("b") && text.contains("dropped: autocorrelation"),
        "{text}"
    );
    let s = json(&j);
    assert_eq!(s["kept"], serde_json::json!(["a"]));
    assert_eq!(s["train_rows"][0], 0);
    // Its --json never replaces the config or the data it read.
    let data = d.path().join("series.csv");
    let before = std::fs::read(&data).unwrap();
    for input in [&cfg, &data] {
        let e = err(&recur(&[
            "select-features",
            "--config",
            cfg.to_str().unwrap(),
            "--json",
            input.to_str().unwrap(),
        ]));
        assert!(e.contains("is the input file"), "{e}");
    }
    assert_eq!(std::fs::read(&data).unwrap(), before);
    // Everything dropped: each feature and the filter that dropped it.
    let cfg = config(d.path(), "selection:\n  min_abs_autocorr: 0.95\n");
    let e = err(&recur(&[
        "select-features",
        "--config",
        cfg.to_str().unwrap(),
    ]));
    for want in [
        "dropped every feature",
        "a: autocorrelation",
        "b: autocorrelation",
        "flat: constant",
    ] {
        assert!(e.contains(want), "{want}: {e}");
    }
    // A feature list naming a missing column.
    let cfg = config(d.path(), "");
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "  time_column: t\n",
        "  time_column: t\n  features: [a, wind]\n",
    );
    std::fs::write(&cfg, text).unwrap();
    let e = err(&recur(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        d.path().join("x").to_str().unwrap(),
    ]));
    assert!(e.contains("wind"), "{e}");
    // An ensemble without trees.
    let cfg = config(d.path(), "ensemble: {}\n");
    let e = err(&recur(&["train", "--config", cfg.to_str().unwrap()]));
    assert!(e.contains("ensemble") && e.contains("trees:"), "{e}");
    // Lags longer than the data: the key is named.
    let cfg = config(d.path(), "trees: {lags: [100000]}\n");
    let e = err(&recur(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        d.path().join("lags").to_str().unwrap(),
    ]));
    assert!(e.contains("trees.lags (largest 100000)"), "{e}");
}

/// Training never writes over what it reads: `--report-html` naming the
/// data, the config or a file of the model is refused before training, and
/// retraining into a model directory that holds a user's files (which
/// replacing the directory would delete) is refused, the files kept.
#[test]
fn training_never_writes_over_its_inputs() {
    let d = tempfile::tempdir().unwrap();
    let cfg = config(d.path(), "");
    let data = d.path().join("series.csv");
    let out = d.path().join("m");
    let (c, o) = (cfg.to_str().unwrap(), out.to_str().unwrap());
    let before = (std::fs::read(&data).unwrap(), std::fs::read(&cfg).unwrap());
    for html in [&data, &cfg] {
        let e = err(&recur(&[
            "train",
            "--config",
            c,
            "--out",
            o,
            "--report-html",
            html.to_str().unwrap(),
        ]));
        assert!(e.contains("is the input file"), "{e}");
    }
    // The same file through a folder that does not exist yet.
    let sneaky = d.path().join("new").join("..").join("series.csv");
    let e = err(&recur(&[
        "train",
        "--config",
        c,
        "--out",
        o,
        "--report-html",
        sneaky.to_str().unwrap(),
    ]));
    assert!(e.contains("is the input file"), "{e}");
    assert_eq!(
        (std::fs::read(&data).unwrap(), std::fs::read(&cfg).unwrap()),
        before
    );
    assert!(!out.exists());
    // DIR/report.html is recur's own name inside the model; another file
    // of the model is not.
    let own = out.join("report.html");
    ok(&recur(&[
        "train",
        "--config",
        c,
        "--out",
        o,
        "--report-html",
        own.to_str().unwrap(),
    ]));
    assert!(own.exists());
    let e = err(&recur(&[
        "train",
        "--config",
        c,
        "--out",
        o,
        "--report-html",
        out.join("config.yaml").to_str().unwrap(),
    ]));
    assert!(e.contains("inside the model directory"), "{e}");
    // A user's file in the model directory: refused, and kept.
    let mine = out.join("train.csv");
    std::fs::copy(&data, &mine).unwrap();
    let e = err(&recur(&["train", "--config", c, "--out", o]));
    assert!(
        e.contains("train.csv") && e.contains("not part of its model"),
        "{e}"
    );
    assert_eq!(std::fs::read(&mine).unwrap(), before.0);
    ok(&recur(&["inspect", o]));
}

/// Starts `recur serve --config cfg` on a free port; returns the child and
/// its address once `/health` answers.
#[cfg(unix)]
fn serve(cfg: &Path) -> (std::process::Child, String) {
    let (child, url, lines) = common::serve(cfg);
    std::thread::spawn(move || for _ in lines {});
    recur_dev::load::wait_ready(&url, 60).unwrap();
    (child, url)
}

#[cfg(unix)]
fn post(url: &str, path: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build(),
    );
    let mut r = agent
        .post(format!("{url}{path}"))
        .header("content-type", "application/json")
        .send(body.to_string())
        .unwrap();
    let status = r.status().as_u16();
    (
        status,
        serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap(),
    )
}

#[cfg(unix)]
#[test]
fn predict_eval_and_classify_deploy_what_training_scored() {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    // Smoothing, tree lags, isotonic calibration and a dynamic blend.
    let cfg = config(
        d.path(),
        "selection:\n  max_noise_ratio: .inf\n  min_abs_autocorr: 0\n  ewma_span: 3\n\
         trees:\n  lags: [1, 2, 3]\n  iterations: 100\n  learning_rate: 0.2\n  max_depth: 3\n\
         calibration: isotonic\nensemble:\n  weights: dynamic\n",
    );
    let built = d.path().join("built");
    ok(&recur(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        built.to_str().unwrap(),
    ]));
    // Moved elsewhere, the directory still works; its files have the
    // umask's mode (0644 under 022).
    let out = d.path().join("moved");
    std::fs::rename(&built, &out).unwrap();
    for f in [
        "model.safetensors",
        "ensemble.json",
        "trees.json",
        "config.yaml",
    ] {
        let mode = std::fs::metadata(out.join(f)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o666 & !recur_core::fsx::umask(), "{f}");
    }
    let data = d.path().join("series.csv");
    let (o, i) = (out.to_str().unwrap(), data.to_str().unwrap());

    // eval on the training file reproduces the report, model by model.
    let ej = d.path().join("eval.json");
    let per_row = d.path().join("rows.csv");
    let text = ok(&recur(&[
        "eval",
        "--model",
        o,
        "--input",
        i,
        "--json",
        ej.to_str().unwrap(),
        "--per-row",
        per_row.to_str().unwrap(),
    ]));
    assert!(text.contains("is the training file"), "{text}");
    let (r, e) = (json(&out.join("report.json")), json(&ej));
    assert_eq!(e["training_file"], true);
    assert_eq!(e["deployed"], "ensemble");
    let models = r["models"].as_object().unwrap();
    assert_eq!(models.len(), 3);
    assert_eq!(e["models"].as_object().unwrap().len(), 3);
    for (name, m) in models {
        for v in ["raw", "calibrated"] {
            let got = &e["models"][name][v];
            assert_eq!(got["threshold"], m[v]["threshold"], "{name} {v}");
            assert_eq!(got["parts"]["test"], m[v]["test"], "{name} {v} test");
            assert_eq!(got["parts"]["validation"], m[v]["val"], "{name} {v} val");
        }
    }

    // A model whose data.json names no training file (fitted in Python
    // from a DataFrame) scores every row of it, and says so (it did in
    // silence, the training rows inside "all").
    let copy = d.path().join("in-memory");
    assert!(std::process::Command::new("cp")
        .args(["-r", o, copy.to_str().unwrap()])
        .status()
        .unwrap()
        .success());
    let mut info = json(&copy.join("data.json"));
    info.as_object_mut().unwrap().remove("data_sha256").unwrap();
    std::fs::write(copy.join("data.json"), info.to_string()).unwrap();
    recur_core::dirwrite::reseal(&copy).unwrap();
    let text = ok(&recur(&[
        "eval",
        "--model",
        copy.to_str().unwrap(),
        "--input",
        i,
    ]));
    assert!(
        text.contains("names no training file") && !text.contains("is the training file"),
        "{text}"
    );

    // The training file with one more day (how such files grow) is not
    // its bytes: every row is scored, and the note says how many are of
    // the training and validation periods (it scored them in silence).
    let info = json(&out.join("data.json"));
    let span = |part: &str, key: &str| {
        let p = info["parts"].as_array().unwrap().iter();
        let s = p.clone().find(|s| s["part"] == part).unwrap();
        s[key].clone()
    };
    let grown = d.path().join("grown.csv");
    let mut rows = std::fs::read_to_string(&data).unwrap();
    let last_line = rows.lines().last().unwrap().to_string();
    let t_last: i64 = last_line.split(',').next().unwrap().parse().unwrap();
    rows += &format!(
        "{}{}\n",
        t_last + 1,
        &last_line[last_line.find(',').unwrap()..]
    );
    std::fs::write(&grown, rows).unwrap();
    let ej = d.path().join("grown.json");
    let text = ok(&recur(&[
        "eval",
        "--model",
        o,
        "--input",
        grown.to_str().unwrap(),
        "--json",
        ej.to_str().unwrap(),
    ]));
    let n_train = span("train", "windows").as_u64().unwrap();
    let n_val = span("validation", "windows").as_u64().unwrap();
    let train_end = span("train", "last_time").as_str().unwrap().to_string();
    let train_start = span("train", "first_time").as_str().unwrap().to_string();
    let e = json(&ej);
    let note = e["note"].as_str().unwrap().to_string();
    let all = e["rows"]["all"].as_u64().unwrap();
    assert!(
        note.contains("not the training file's bytes")
            && note.contains(&format!(
                "{n_train} of the {all} labelled rows scored are of the model's training \
                 period ({train_start} to {train_end})"
            ))
            && note.contains("in-sample")
            && text.contains(&note),
        "{note}"
    );
    // Its validation count: every row from validation's first time to its
    // last (the times here are the row numbers), the rows of the gap
    // between the parts left out.
    let in_val: u64 = note
        .split(" and ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let time =
        |part: &str, key: &str| -> i64 { span(part, key).as_str().unwrap().parse().unwrap() };
    let (val_start, val_end) = (
        time("validation", "first_time"),
        time("validation", "last_time"),
    );
    assert_eq!(in_val, (val_end - val_start + 1) as u64);
    assert!(in_val >= n_val, "{in_val} {n_val}");
    // The rows after validation (with the 7 the first window reads): no
    // note.
    let grown_text = std::fs::read_to_string(&grown).unwrap();
    let kept: Vec<&str> = grown_text
        .lines()
        .enumerate()
        .filter(|(i, l)| {
            *i == 0 || l.split(',').next().unwrap().parse::<i64>().unwrap() > val_end - 7
        })
        .map(|(_, l)| l)
        .collect();
    let tail = d.path().join("tail.csv");
    let scored_without_a_note = |lines: &[String]| {
        std::fs::write(&tail, lines.join("\n") + "\n").unwrap();
        let text = ok(&recur(&[
            "eval",
            "--model",
            o,
            "--input",
            tail.to_str().unwrap(),
        ]));
        assert!(!text.contains("note:") && text.contains("all: "), "{text}");
    };
    scored_without_a_note(&kept.iter().map(|l| l.to_string()).collect::<Vec<_>>());
    // Rows from before the training period (the same values 5,000 days
    // earlier) are not the training rows either.
    let earlier: Vec<String> = grown_text
        .lines()
        .enumerate()
        .map(|(i, l)| match (i, l.split_once(',')) {
            (0, _) | (_, None) => l.to_string(),
            (_, Some((t, rest))) => format!("{},{rest}", t.parse::<i64>().unwrap() - 5000),
        })
        .collect();
    scored_without_a_note(&earlier);

    // predict writes the same table as eval --per-row.
    let preds = d.path().join("p.csv");
    ok(&recur(&[
        "predict",
        "--model",
        o,
        "--input",
        i,
        "--output",
        preds.to_str().unwrap(),
    ]));
    let table = std::fs::read_to_string(&preds).unwrap();
    assert_eq!(table, std::fs::read_to_string(&per_row).unwrap());
    let mut lines = table.lines();
    assert_eq!(
        lines.next(),
        Some("row,t,label,p_lstm,p_trees,p_ensemble,probability,decision")
    );
    // Rows 3..6: the trees score (lags 1-3), the LSTM (8 rows) does not yet.
    let first: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!((first[0], first[3], first[5]), ("3", "", ""), "{first:?}");
    let rows: Vec<Vec<String>> = table
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    let decisions: std::collections::BTreeSet<&str> = rows.iter().map(|r| r[7].as_str()).collect();
    assert!(
        decisions.contains("0") && decisions.contains("1"),
        "{decisions:?}"
    );
    // The same model as a Parquet table.
    let pq = d.path().join("p.parquet");
    ok(&recur(&[
        "predict",
        "--model",
        o,
        "--input",
        i,
        "--output",
        pq.to_str().unwrap(),
    ]));
    let t = recur_data::Table::read(&pq, None).unwrap();
    assert_eq!(t.n_rows(), rows.len());
    let cell: f64 = t.column("probability").unwrap().cell(100).parse().unwrap();
    assert!((cell - rows[100][6].parse::<f64>().unwrap()).abs() <= 5e-7);

    // The classifier alone behind recur serve answers the same.
    let serve_cfg = d.path().join("serve.yaml");
    std::fs::write(&serve_cfg, format!("classifier: {o}\n")).unwrap();
    let (mut child, url) = serve(&serve_cfg);
    let source = std::fs::read_to_string(&data).unwrap();
    let header: Vec<&str> = source.lines().next().unwrap().split(',').collect();
    let all: Vec<serde_json::Value> = source
        .lines()
        .skip(1)
        .map(|l| {
            let m: serde_json::Map<String, serde_json::Value> = header
                .iter()
                .zip(l.split(','))
                .map(|(k, v)| (k.to_string(), serde_json::json!(v.parse::<f64>().unwrap())))
                .collect();
            serde_json::Value::Object(m)
        })
        .collect();
    for want in rows
        .iter()
        .filter(|r| r[0].parse::<usize>().unwrap() % 97 == 50)
    {
        let row: usize = want[0].parse().unwrap();
        let (status, r) = post(
            &url,
            "/v1/classify",
            &serde_json::json!({"window": {"id": row, "rows": &all[..=row]}}),
        );
        assert_eq!(status, 200, "{r}");
        let got = &r["results"][0];
        assert_eq!(got["id"], row);
        assert_eq!(got["time"].as_f64(), Some(row as f64));
        for (k, col) in [
            ("p_lstm", 3),
            ("p_trees", 4),
            ("p_ensemble", 5),
            ("probability", 6),
        ] {
            let a = got[k].as_f64().unwrap();
            let b: f64 = want[col].parse().unwrap();
            assert!(
                (a - b).abs() <= 5e-7,
                "row {row} {k}: serve {a}, predict {b}"
            );
        }
        assert_eq!(got["decision"].to_string(), want[7], "row {row}");
        // The time column `t` is read (its order checked), not ignored.
        assert_eq!(r["ignored_columns"], serde_json::json!(["flat", "y"]));
    }
    // Too few rows: the 422 says how many.
    let (status, r) = post(
        &url,
        "/v1/classify",
        &serde_json::json!({"window": &all[..10]}),
    );
    assert_eq!(
        (status, r["code"].as_str()),
        (422, Some("too_few_rows")),
        "{r}"
    );
    assert!(r["error"].as_str().unwrap().contains("at least 15"), "{r}");
    let (status, _) = post(&url, "/chat", &serde_json::json!({"messages": ["hi"]}));
    assert_eq!(status, 404);
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    assert!(child.wait().unwrap().success());

    // inspect checks the whole directory.
    let text = ok(&recur(&["inspect", o]));
    assert!(
        text.contains("checks: OK") && text.contains("deployed: ensemble"),
        "{text}"
    );
    // Outputs never replace the input, the model's files or each other.
    let e = err(&recur(&["eval", "--model", o, "--input", i, "--json", i]));
    assert!(e.contains("is the input file"), "{e}");
    let e = err(&recur(&["drift", "--model", o, "--input", i, "--json", i]));
    assert!(e.contains("is the input file"), "{e}");
    let config_yaml = out.join("config.yaml");
    let c = config_yaml.to_str().unwrap();
    let e = err(&recur(&["drift", "--model", o, "--input", i, "--json", c]));
    assert!(e.contains("inside the model directory"), "{e}");
    let inside = out.join("trees.json");
    let e = err(&recur(&[
        "predict",
        "--model",
        o,
        "--input",
        i,
        "--output",
        inside.to_str().unwrap(),
    ]));
    assert!(e.contains("inside the model directory"), "{e}");
    let e = err(&recur(&[
        "eval",
        "--model",
        o,
        "--input",
        i,
        "--json",
        "x.json",
        "--per-row",
        "x.json",
    ]));
    assert!(e.contains("one file"), "{e}");
    assert_eq!(std::fs::read_to_string(&data).unwrap(), source);

    // A file edited by hand differs from the manifest, which names it.
    let manifest = std::fs::read_to_string(out.join("manifest.json")).unwrap();
    let dep = std::fs::read_to_string(out.join("ensemble.json")).unwrap();
    std::fs::write(
        out.join("ensemble.json"),
        dep.replace("\"deployed\": \"ensemble\"", "\"deployed\": \"lstm\""),
    )
    .unwrap();
    let e = err(&recur(&[
        "predict",
        "--model",
        o,
        "--input",
        i,
        "--output",
        preds.to_str().unwrap(),
    ]));
    assert!(e.contains("ensemble.json (changed)"), "{e}");
    // With the manifest rewritten to match, a hand-edited ensemble.json is
    // still refused, naming the field; nothing panics.
    let v: serde_json::Value = serde_json::from_str(&dep).unwrap();
    type Edit = Box<dyn Fn(&mut serde_json::Value)>;
    let edits: Vec<(&str, Edit)> = vec![
        (
            "trees.inputs",
            Box::new(|v| v["trees"]["lags"] = serde_json::json!([1, 2])),
        ),
        (
            "lags",
            Box::new(|v| v["trees"]["lags"] = serde_json::json!([0, 1, 2])),
        ),
        (
            "models.ensemble.calibrator",
            Box::new(|v| {
                v["models"]["ensemble"]["calibrator"] =
                    serde_json::json!({"kind": "isotonic", "x": [], "y": []})
            }),
        ),
        (
            "weights",
            Box::new(|v| v["weights"] = serde_json::json!({"trees": 5.0, "lstm": 5.0})),
        ),
        (
            "threshold_calibrated",
            Box::new(|v| v["models"]["lstm"]["threshold_calibrated"] = serde_json::json!(5.0)),
        ),
        (
            "deployed",
            Box::new(|v| v["deployed"] = serde_json::json!("forest")),
        ),
    ];
    let predict = [
        "predict",
        "--model",
        o,
        "--input",
        i,
        "--output",
        preds.to_str().unwrap(),
    ];
    for (field, edit) in edits {
        let mut w = v.clone();
        edit(&mut w);
        std::fs::write(out.join("ensemble.json"), w.to_string()).unwrap();
        recur_core::dirwrite::reseal(&out).unwrap();
        let e = err(&recur(&predict));
        assert!(
            e.contains("ensemble.json") && e.contains(field),
            "{field}: {e}"
        );
        let ins = recur(&["inspect", o]);
        assert_eq!(
            ins.status.code(),
            Some(2),
            "inspect passes a broken directory"
        );
        assert!(String::from_utf8_lossy(&ins.stdout).contains("checks: FAILED"));
        // The reason reaches standard error too (it said "see above").
        let stderr = String::from_utf8_lossy(&ins.stderr);
        assert!(
            stderr.contains("does not pass the load checks") && stderr.contains(field),
            "{field}: {stderr}"
        );
    }
    std::fs::write(out.join("ensemble.json"), dep).unwrap();
    std::fs::write(out.join("manifest.json"), &manifest).unwrap();
    ok(&recur(&predict));
    std::fs::write(out.join("trees.json"), "{}").unwrap();
    let e = err(&recur(&predict));
    assert!(e.contains("trees.json (changed)"), "{e}");
    recur_core::dirwrite::reseal(&out).unwrap();
    let e = err(&recur(&predict));
    assert!(e.contains("trees.json") && e.contains("SHA-256"), "{e}");
    // A split edited out of order (validation over the training rows) is
    // refused with the manifest rewritten to match.
    let dj = out.join("data.json");
    let data_text = std::fs::read_to_string(&dj).unwrap();
    let mut data: serde_json::Value = serde_json::from_str(&data_text).unwrap();
    data["time_split"]["val"]["start"] = serde_json::json!(0);
    std::fs::write(&dj, data.to_string()).unwrap();
    recur_core::dirwrite::reseal(&out).unwrap();
    let e = err(&recur(&predict));
    assert!(e.contains("data.json") && e.contains("time_split"), "{e}");
    // A header whose stated kind is damaged (the manifest rewritten to
    // match) is refused for its damage, not taken for an LVM's.
    std::fs::write(&dj, data_text).unwrap();
    let weights = out.join("model.safetensors");
    let good = std::fs::read(&weights).unwrap();
    let from = b"\\\"lstm_classifier\\\"";
    let at = good.windows(from.len()).position(|w| w == from).unwrap();
    let mut bad = good.clone();
    bad[at + from.len() - 3] = b'z';
    std::fs::write(&weights, &bad).unwrap();
    recur_core::dirwrite::reseal(&out).unwrap();
    let e = err(&recur(&predict));
    assert!(
        e.contains("the architecture in the header is corrupted") && !e.contains("Job B"),
        "{e}"
    );
}

#[test]
fn a_constant_default_feature_is_dropped_with_a_warning_and_the_split_is_shown() {
    let d = tempfile::tempdir().unwrap();
    // No features list and no selection: every numeric column is a feature.
    let cfg = config(d.path(), "");
    let out = d.path().join("m");
    let text = ok(&recur(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]));
    assert!(
        text.contains("warning: `flat` never changes on the training rows (2,"),
        "{text}"
    );
    let r = json(&out.join("report.json"));
    assert_eq!(r["features"], serde_json::json!(["a", "b"]));
    assert!(text.contains("label of row r = `y` at row r + 0"), "{text}");
    let parts = r["parts"].as_array().unwrap();
    assert_eq!(parts.len(), 3);
    assert_eq!(parts[0]["part"], "train");
    assert_eq!(parts[0]["first_time"], "0");
    let rate = parts[2]["base_rate"].as_f64().unwrap();
    assert!(rate > 0.1 && rate < 0.9, "{rate}");
    assert!(text.contains("base rate"), "{text}");
}

/// What training notes is in the report, whatever `--quiet` says: on
/// standard output with the report, in `report.json`, the HTML page and
/// `inspect`. A listed feature constant on the training rows, and a cost
/// matrix under which acting on every row beats the threshold.
#[test]
fn training_notes_reach_the_report_the_page_and_inspect() {
    let d = tempfile::tempdir().unwrap();
    let cfg = config(
        d.path(),
        "cost:\n  tp: 1.0\n  fp: 0.5\n  tn: 0.0\n  fn: 0.0\n",
    );
    let yaml = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        yaml.replace(
            "  time_column: t\n",
            "  time_column: t\n  features: [a, flat]\n",
        ),
    )
    .unwrap();
    let (out, html) = (d.path().join("m"), d.path().join("r.html"));
    let text = ok(&recur(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--report-html",
        html.to_str().unwrap(),
    ]));
    let flat = "`flat` (2) never changes on the training rows";
    let always = "acting on every row would be worth";
    for want in [flat, always] {
        assert!(
            text.contains("note: ") && text.contains(want),
            "{want}: {text}"
        );
        let r = json(&out.join("report.json"));
        let warnings = r["warnings"].as_array().unwrap();
        assert!(
            warnings.iter().any(|w| w.as_str().unwrap().contains(want)),
            "{r}"
        );
        assert!(std::fs::read_to_string(&html).unwrap().contains(want));
        let shown = ok(&recur(&["inspect", out.to_str().unwrap()]));
        assert!(shown.contains(want), "{shown}");
    }
}

/// `train --precision bf16` fits in bf16 but scores the report, the
/// calibrators and the thresholds in f32, as the model is deployed by
/// default: `recur eval` without the flag reproduces the report. (With the
/// flag over the whole command they came from bf16 scoring, and differed.)
#[test]
fn a_model_trained_with_the_bf16_flag_is_reported_as_it_is_deployed() {
    let d = tempfile::tempdir().unwrap();
    let cfg = config(d.path(), "calibration: isotonic\n");
    let out = d.path().join("m");
    let o = out.to_str().unwrap();
    ok(&recur(&[
        "train",
        "--precision",
        "bf16",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        o,
    ]));
    let saved = std::fs::read_to_string(out.join("config.yaml")).unwrap();
    assert!(saved.contains("precision: bf16"), "{saved}");
    let ej = d.path().join("eval.json");
    let data = d.path().join("series.csv");
    ok(&recur(&[
        "eval",
        "--model",
        o,
        "--input",
        data.to_str().unwrap(),
        "--json",
        ej.to_str().unwrap(),
    ]));
    let (r, e) = (json(&out.join("report.json")), json(&ej));
    let m = &r["models"]["lstm"];
    for v in ["raw", "calibrated"] {
        let got = &e["models"]["lstm"][v];
        assert_eq!(got["threshold"], m[v]["threshold"], "{v}");
        assert_eq!(got["parts"]["validation"], m[v]["val"], "{v} val");
        assert_eq!(got["parts"]["test"], m[v]["test"], "{v} test");
    }
    // In bf16 the same command says its figures are not the report's f32
    // ones (it still said it scored the parts as training did); in f32 it
    // says nothing of the kind.
    let eval_in = |p: &str| {
        ok(&recur(&[
            "--precision",
            p,
            "eval",
            "--model",
            o,
            "--input",
            data.to_str().unwrap(),
        ]))
    };
    assert!(eval_in("bf16").contains("scored with bf16 products"));
    assert!(!eval_in("f32").contains("bf16"));
    let err_text = err(&recur(&["demo", "--precision", "bf16", "--out", o]));
    assert!(err_text.contains("the demo trains in f32"), "{err_text}");
}

/// config.yaml's label rule and smoothing are checked against what
/// training recorded (data.json, selection.json): edited with the manifest
/// rewritten, predict used the new rule on a model trained with the old.
#[test]
fn a_config_edited_against_the_recorded_rule_or_smoothing_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let cfg = config(
        d.path(),
        "selection:\n  max_noise_ratio: .inf\n  min_abs_autocorr: 0\n  ewma_span: 2\n",
    );
    let out = d.path().join("m");
    let o = out.to_str().unwrap();
    ok(&recur(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        o,
    ]));
    let data = d.path().join("series.csv");
    let yaml = out.join("config.yaml");
    let text = std::fs::read_to_string(&yaml).unwrap();
    for (from, to, said) in [
        (
            "  ewma_span: 2\n",
            "  ewma_span: 5\n",
            "selection.ewma_span 5, selection.json records 2",
        ),
        ("    horizon: 0\n", "    horizon: 3\n", "`y` at row r + 3"),
    ] {
        assert!(text.contains(from), "{text}");
        std::fs::write(&yaml, text.replace(from, to)).unwrap();
        recur_core::dirwrite::reseal(&out).unwrap();
        let e = err(&recur(&[
            "predict",
            "--model",
            o,
            "--input",
            data.to_str().unwrap(),
            "--output",
            d.path().join("p.csv").to_str().unwrap(),
        ]));
        assert!(
            e.contains("states another model than training recorded") && e.contains(said),
            "{e}"
        );
    }
    std::fs::write(&yaml, &text).unwrap();
    recur_core::dirwrite::reseal(&out).unwrap();
    let got = ok(&recur(&["inspect", o]));
    assert!(got.contains("checks: OK"), "{got}");

    // A model trained before a rule about training settings was added
    // (these passed then) still scores, as it did: every command refused
    // it, and editing config.yaml as the message said failed the manifest.
    let predict = |name: &str| {
        let p = d.path().join(name);
        ok(&recur(&[
            "predict",
            "--model",
            o,
            "--input",
            data.to_str().unwrap(),
            "--output",
            p.to_str().unwrap(),
        ]));
        std::fs::read(p).unwrap()
    };
    let before = predict("before.csv");
    let mut old = text.clone();
    for (from, to) in [
        (
            "  early_stopping_patience: 5\n",
            "  early_stopping_patience: 0\n",
        ),
        ("  min_abs_autocorr: 0.0\n", "  min_abs_autocorr: -1.0\n"),
        ("    positive_label: null\n", "    positive_label: yes\n"),
    ] {
        assert!(old.contains(from), "{from}: {old}");
        old = old.replace(from, to);
    }
    std::fs::write(&yaml, &old).unwrap();
    recur_core::dirwrite::reseal(&out).unwrap();
    assert_eq!(predict("after.csv"), before);
    let got = ok(&recur(&["inspect", o]));
    assert!(got.contains("checks: OK"), "{got}");
    // Training from it checks it whole.
    let e = err(&recur(&[
        "train",
        "--config",
        yaml.to_str().unwrap(),
        "--out",
        d.path().join("again").to_str().unwrap(),
    ]));
    assert!(e.contains("training.early_stopping_patience"), "{e}");
    // What scoring reads is still held to the rules.
    std::fs::write(
        &yaml,
        text.replace("  hidden_size: 8\n", "  hidden_size: 0\n"),
    )
    .unwrap();
    recur_core::dirwrite::reseal(&out).unwrap();
    let e = recur(&[
        "predict",
        "--model",
        o,
        "--input",
        data.to_str().unwrap(),
        "--output",
        "-",
    ]);
    let e = err(&e);
    assert!(e.contains("model.hidden_size"), "{e}");
}

/// Files to score as a user keeps them. A model trained on a tab-separated
/// `.txt` (`data.format: tsv`) scores the same rows kept as a `.csv`, read
/// as CSV by its extension; a target column whose newest cells are empty
/// (labels not known yet) is scored, those rows' labels empty in `predict`
/// and left out of `eval`'s figures; and a default feature that varies only
/// within its sums' rounding is left out as a constant, as the scaler would
/// have mapped it to zeros.
#[test]
fn files_to_score_are_read_as_a_user_keeps_them() {
    let d = tempfile::tempdir().unwrap();
    let csv = write_series(d.path(), 1500);
    let lines: Vec<String> = std::fs::read_to_string(&csv)
        .unwrap()
        .lines()
        .enumerate()
        .map(|(i, l)| match i {
            0 => format!("{l},big"),
            _ => format!("{l},{:.7}", 1e9 + (i % 3) as f64 * 1e-7),
        })
        .collect();
    std::fs::write(&csv, lines.join("\n") + "\n").unwrap();
    let txt = d.path().join("series.txt");
    std::fs::write(&txt, lines.join("\n").replace(',', "\t") + "\n").unwrap();
    let yaml = format!(
        "data:\n  path: {}\n  format: tsv\n  time_column: t\n  target:\n    column: y\n\
         model:\n  sequence_length: 8\n  hidden_size: 8\n\
         training:\n  epochs: 2\n  batch_size: 64\n",
        txt.display()
    );
    let (m, text) = train_yaml(d.path(), &yaml, &[]);
    assert!(
        text.contains("warning: `big` never changes on the training rows (1000000000"),
        "{text}"
    );
    assert_eq!(
        json(&m.join("report.json"))["features"],
        serde_json::json!(["a", "b"])
    );
    let predict = |input: &Path, out: &str| {
        let o = d.path().join(out);
        ok(&recur(&[
            "predict",
            "--model",
            m.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
            "--output",
            o.to_str().unwrap(),
        ]));
        std::fs::read_to_string(o).unwrap()
    };
    let from_txt = predict(&txt, "p_txt.csv");
    assert_eq!(predict(&csv, "p_csv.csv"), from_txt);
    // Tab-separated rows named .csv are read as CSV, and the error says why.
    let tabs = d.path().join("tabs.csv");
    std::fs::copy(&txt, &tabs).unwrap();
    let e = err(&recur(&[
        "predict",
        "--model",
        m.to_str().unwrap(),
        "--input",
        tabs.to_str().unwrap(),
        "--output",
        d.path().join("p_tabs.csv").to_str().unwrap(),
    ]));
    assert!(
        e.contains("tabs.csv") && e.contains("one column holding tabs") && e.contains("(.tsv)"),
        "{e}"
    );

    // The newest three labels not known yet, and the last row's time.
    let mut live: Vec<String> = lines.clone();
    let n = live.len();
    for l in &mut live[n - 3..] {
        let mut cells: Vec<&str> = l.split(',').collect();
        cells[4] = "";
        *l = cells.join(",");
    }
    live[n - 1] = live[n - 1].split_once(',').unwrap().1.to_string();
    live[n - 1].insert(0, ',');
    let live_csv = d.path().join("live.csv");
    std::fs::write(&live_csv, live.join("\n") + "\n").unwrap();
    let from_live = predict(&live_csv, "p_live.csv");
    let (full, part): (Vec<&str>, Vec<&str>) =
        (from_txt.lines().collect(), from_live.lines().collect());
    assert_eq!(full.len(), part.len());
    let header: Vec<&str> = full[0].split(',').collect();
    let label = header.iter().position(|&c| c == "label").unwrap();
    for (i, (a, b)) in full.iter().zip(&part).enumerate() {
        let (a, b): (Vec<&str>, Vec<&str>) = (a.split(',').collect(), b.split(',').collect());
        for (k, (x, y)) in a.iter().zip(&b).enumerate() {
            if k == label && i + 3 >= full.len() {
                assert!(!x.is_empty() && y.is_empty(), "line {i}: {x:?} {y:?}");
            } else if header[k] == "t" && i + 1 == full.len() {
                // An empty time is written empty, not NaN.
                assert!(!x.is_empty() && y.is_empty(), "line {i}: {x:?} {y:?}");
            } else {
                assert_eq!(x, y, "line {i}, column {}", header[k]);
            }
        }
    }
    let eval = |input: &Path, out: &str| {
        let o = d.path().join(out);
        ok(&recur(&[
            "eval",
            "--model",
            m.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
            "--json",
            o.to_str().unwrap(),
        ]));
        json(&o)["rows"]["all"].as_u64().unwrap()
    };
    assert_eq!(eval(&live_csv, "e_live.json") + 3, eval(&csv, "e_csv.json"));
}

/// What training says of settings it overrides or does not use: trees
/// without `ensemble:` are compared with the LSTM, with no blend's weights
/// shown; a gap below the horizon is raised to it with a note.
#[test]
fn trees_alone_show_no_blend_and_a_short_gap_is_said() {
    let d = tempfile::tempdir().unwrap();
    let data = write_series(d.path(), 1200);
    // The first row's time left empty: the training part starts at no time.
    let csv = std::fs::read_to_string(&data).unwrap();
    std::fs::write(&data, csv.replacen("\n0,", "\n,", 1)).unwrap();
    let yaml = format!(
        "data:\n  path: {}\n  time_column: t\n  features: [a, b]\n  target:\n    column: y\n    horizon: 2\n  \
         split:\n    gap: 1\n\
         model:\n  sequence_length: 8\n  hidden_size: 8\n\
         training:\n  epochs: 2\n  batch_size: 64\ntrees:\n  lags: [1, 2]\n  iterations: 20\n",
        data.display()
    );
    let html = d.path().join("r.html");
    let (m, text) = train_yaml(d.path(), &yaml, &["--report-html", html.to_str().unwrap()]);
    let cfg = d.path().join("c.yaml");
    assert!(
        text.contains("data.split.gap 1 is below the horizon 2: the parts are 2 rows apart"),
        "{text}"
    );
    assert_eq!(json(&m.join("data.json"))["time_split"]["gap"], 2);
    let parts = json(&m.join("report.json"))["parts"].clone();
    assert!(
        parts[0]["first_time"].is_null() && parts[1]["first_time"].is_string(),
        "{parts}"
    );
    assert!(text.contains("LSTM and trees on the test rows"), "{text}");
    assert!(!text.contains("ensemble"), "{text}");
    let html = std::fs::read_to_string(&html).unwrap();
    assert!(
        html.contains("<h2>LSTM and trees (test)</h2>"),
        "{}",
        &html[..html.len().min(400)]
    );
    // Refused rather than behaving as 1.
    std::fs::write(
        &cfg,
        std::fs::read_to_string(&cfg).unwrap() + "  early_stopping_rounds: 0\n",
    )
    .unwrap();
    let e = err(&recur(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        m.to_str().unwrap(),
    ]));
    assert!(
        e.contains("trees.early_stopping_rounds") && e.contains("at least 1"),
        "{e}"
    );
}

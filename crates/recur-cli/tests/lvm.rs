//! `recur lvm train | eval | predict` end to end on vectors with real
//! structure: each article's next vector is a fixed rotation of the last
//! plus noise, so a trained model must beat copy-last and context-mean on
//! validation and on an out-of-distribution file (noisier, other articles).

mod common;

use candle_core::{Device, Tensor};
use common::{err, ok, recur};
use recur_core::rng::Rng;
use std::path::{Path, PathBuf};

const D: usize = 16;

/// Chunks of `articles` articles, `len` chunks each, stored in shuffled
/// row order: x_{i+1} = normalize(R x_i + noise * e), R a fixed rotation of
/// 8 planes.
fn write_chunks(
    path: &Path,
    seed: u64,
    first_article: i64,
    articles: usize,
    len: usize,
    noise: f32,
) {
    let mut rng = Rng::new(seed);
    let norm = |v: &mut [f32]| {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter_mut().for_each(|x| *x /= n);
    };
    let mut rows: Vec<(i64, i64, Vec<f32>)> = Vec::new();
    for a in 0..articles {
        let mut x: Vec<f32> = (0..D).map(|_| rng.normal()).collect();
        norm(&mut x);
        for c in 0..len {
            rows.push((first_article + a as i64, c as i64, x.clone()));
            let mut y = vec![0.0; D];
            for p in 0..D / 2 {
                let th = 0.7 + 0.15 * p as f32;
                let (s, co) = th.sin_cos();
                y[2 * p] = co * x[2 * p] - s * x[2 * p + 1] + noise * rng.normal();
                y[2 * p + 1] = s * x[2 * p] + co * x[2 * p + 1] + noise * rng.normal();
            }
            norm(&mut y);
            x = y;
        }
    }
    rng.shuffle(&mut rows);
    let dev = Device::Cpu;
    let v: Vec<f32> = rows.iter().flat_map(|r| r.2.clone()).collect();
    let a: Vec<i64> = rows.iter().map(|r| r.0).collect();
    let c: Vec<i64> = rows.iter().map(|r| r.1).collect();
    Tensor::write_npz(
        &[
            (
                "vectors",
                &Tensor::from_vec(v, (rows.len(), D), &dev).unwrap(),
            ),
            ("article_indices", &Tensor::new(a.as_slice(), &dev).unwrap()),
            ("chunk_indices", &Tensor::new(c.as_slice(), &dev).unwrap()),
        ],
        path,
    )
    .unwrap();
}

/// The model's mean cosine on `part` is clearly above both baselines'.
fn beats_baselines(report: &serde_json::Value, part: &str, kind: &str) {
    let m = report[part]["cosine_mean"].as_f64().unwrap();
    for b in ["copy_last", "context_mean"] {
        let base = report["baselines"][b][part]["cosine_mean"]
            .as_f64()
            .unwrap();
        assert!(m > base + 0.05, "{kind} {part}: {m:.4} vs {b} {base:.4}");
    }
}

fn data(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let (train, ood, cfg) = (
        dir.join("train.npz"),
        dir.join("ood.npz"),
        dir.join("lvm.yaml"),
    );
    write_chunks(&train, 1, 0, 60, 14, 0.15);
    write_chunks(&ood, 2, 1000, 15, 14, 0.35);
    std::fs::write(
        &cfg,
        "data: {train: train.npz, ood: ood.npz, val_fraction: 0.2, context: 5}\n\
         model: {type: lstm, d_model: 32, num_layers: 1}\n\
         training: {learning_rate: 0.01, batch_size: 16, epochs: 8, schedule: cosine, seed: 7}\n",
    )
    .unwrap();
    (train, ood, cfg)
}

#[test]
fn lvm_train_eval_predict_beats_the_baselines() {
    let d = tempfile::tempdir().unwrap();
    let (train, ood, cfg) = data(d.path());
    let out = d.path().join("m");
    // Run from the data's folder with relative paths, as a user would.
    let printed = ok(&std::process::Command::new(env!("CARGO_BIN_EXE_recur"))
        .args([
            "--threads",
            "1",
            "-q",
            "lvm",
            "train",
            "--config",
            "lvm.yaml",
            "--out",
            "m",
        ])
        .current_dir(d.path())
        .output()
        .unwrap());
    assert_eq!(cfg, d.path().join("lvm.yaml"));
    assert!(
        printed.contains("copy_last") && printed.contains("context_mean"),
        "{printed}"
    );
    for f in [
        "model.safetensors",
        "final.safetensors",
        "config.yaml",
        "training_history.json",
        "report.json",
    ] {
        assert!(out.join(f).exists(), "{f} not written");
    }
    let history: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("training_history.json")).unwrap())
            .unwrap();
    assert_eq!(history.as_array().unwrap().len(), 8);
    // inspect knows an LVM directory and checks it as one.
    let ins = ok(&recur(&["inspect", out.to_str().unwrap()]));
    assert!(
        ins.contains("checks: OK (a Job B LVM directory") && ins.contains("validation cosine"),
        "{ins}"
    );
    // Vectors far past an embedding's scale: an error naming the value,
    // never NaN figures or baselines of 0.
    let huge = d.path().join("huge.npz");
    let m = 12;
    let articles: Vec<i64> = (0..m as i64).map(|i| i / 6).collect();
    let chunks: Vec<i64> = (0..m as i64).map(|i| i % 6).collect();
    recur_data::npz::write_chunks(&huge, &vec![3.0e38f32; m * D], D, &articles, &chunks).unwrap();
    let e = err(&recur(&[
        "lvm",
        "eval",
        "--model",
        out.to_str().unwrap(),
        "--data",
        huge.to_str().unwrap(),
    ]));
    assert!(e.contains("holds 3e38") && e.contains("normalise"), "{e}");
    assert!(
        history[0]["lr"].as_f64().unwrap() > history[7]["lr"].as_f64().unwrap(),
        "cosine schedule"
    );

    let json = d.path().join("eval.json");
    let ev = ok(&recur(&[
        "lvm",
        "eval",
        "--model",
        out.to_str().unwrap(),
        "--data",
        train.to_str().unwrap(),
        "--ood",
        ood.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ]));
    assert!(ev.contains("OOD minus validation"), "{ev}");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    for rep in [&r, &report] {
        for part in ["val", "ood"] {
            for k in ["cosine_mean", "cosine_std", "mse_mean"] {
                assert!(rep[part][k].is_number(), "{part}.{k}: {rep}");
            }
            beats_baselines(rep, part, "lstm");
        }
    }

    // --heldout scores exactly the articles training held out: the same
    // validation figure as the training report, here and in the leaderboard.
    // It names the training file by absolute path, as config.yaml does.
    let split: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("split.json")).unwrap()).unwrap();
    let named = std::path::PathBuf::from(split["data"].as_str().unwrap());
    assert_eq!(named, train.canonicalize().unwrap());
    let held = d.path().join("held.json");
    let printed = ok(&recur(&[
        "lvm",
        "eval",
        "--model",
        out.to_str().unwrap(),
        "--data",
        train.to_str().unwrap(),
        "--heldout",
        "--json",
        held.to_str().unwrap(),
    ]));
    assert!(printed.contains("articles the model held out"), "{printed}");
    let h: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&held).unwrap()).unwrap();
    assert_eq!(h["val"]["n"], report["val"]["n"]);
    assert!(
        (h["val"]["cosine_mean"].as_f64().unwrap()
            - report["val"]["cosine_mean"].as_f64().unwrap())
        .abs()
            < 1e-9
    );
    assert!(
        r["val"]["n"].as_u64() > report["val"]["n"].as_u64(),
        "without --heldout every window counts"
    );
    let lbh = d.path().join("lbh.json");
    ok(&recur(&[
        "lvm",
        "leaderboard",
        "--models",
        out.to_str().unwrap(),
        "--data",
        train.to_str().unwrap(),
        "--heldout",
        "--json",
        lbh.to_str().unwrap(),
    ]));
    let rows: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&lbh).unwrap()).unwrap();
    assert!(
        (rows[0]["val_cosine"].as_f64().unwrap() - report["val"]["cosine_mean"].as_f64().unwrap())
            .abs()
            < 1e-9
    );
    // Another file's article indices name other articles: refused.
    let e = err(&recur(&[
        "lvm",
        "eval",
        "--model",
        out.to_str().unwrap(),
        "--data",
        ood.to_str().unwrap(),
        "--heldout",
    ]));
    assert!(
        e.contains("is not the file") && e.contains("trained on"),
        "{e}"
    );
    // A model without held-out articles says what to do instead (one
    // written before manifests: with its manifest, a missing split.json
    // is a mixed directory).
    std::fs::rename(out.join("split.json"), d.path().join("split.json")).unwrap();
    let e = err(&recur(&[
        "lvm",
        "eval",
        "--model",
        out.to_str().unwrap(),
        "--data",
        train.to_str().unwrap(),
    ]));
    assert!(e.contains("split.json (missing)"), "{e}");
    std::fs::rename(out.join("manifest.json"), d.path().join("manifest.json")).unwrap();
    let e = err(&recur(&[
        "lvm",
        "eval",
        "--model",
        out.to_str().unwrap(),
        "--data",
        train.to_str().unwrap(),
        "--heldout",
    ]));
    // Without its manifest, the directory is refused (deleting it turned
    // the check off).
    assert!(e.contains("no manifest.json"), "{e}");
    std::fs::rename(d.path().join("split.json"), out.join("split.json")).unwrap();
    std::fs::rename(d.path().join("manifest.json"), out.join("manifest.json")).unwrap();
    // A config.yaml that states another model than the weights (edited,
    // the manifest rewritten to match) is refused, naming the keys.
    let e = predict_with_config_edited(&out, "  type: lstm\n", "  type: gru\n", &train);
    assert!(e.contains("model.type gru, the weights lstm"), "{e}");
    // So is a header whose stated kind is damaged, for its damage (it had
    // said the header holds no LVM architecture).
    let weights = out.join("model.safetensors");
    let good = std::fs::read(&weights).unwrap();
    let from = b"\\\"lstm\\\"";
    let at = good.windows(from.len()).position(|w| w == from).unwrap();
    let mut bad = good.clone();
    bad[at + from.len() - 3] = b'n';
    std::fs::write(&weights, &bad).unwrap();
    recur_core::dirwrite::reseal(&out).unwrap();
    let e = predict_with_config_edited(&out, "  type: lstm\n", "  type: lstm\n", &train);
    assert!(
        e.contains("the architecture in the header is corrupted"),
        "{e}"
    );
    // inspect of the file alone says so too (it showed the kind bare).
    let ins = ok(&recur(&["inspect", weights.to_str().unwrap()]));
    assert!(
        ins.contains("warning: the architecture in the header is corrupted"),
        "{ins}"
    );
    std::fs::write(&weights, &good).unwrap();
    recur_core::dirwrite::reseal(&out).unwrap();

    // The leaderboard measures the listed checkpoint on real windows.
    let lb = d.path().join("lb.json");
    let md = ok(&recur(&[
        "lvm",
        "leaderboard",
        "--models",
        out.to_str().unwrap(),
        "--data",
        train.to_str().unwrap(),
        "--ood",
        ood.to_str().unwrap(),
        "--json",
        lb.to_str().unwrap(),
    ]));
    assert!(
        md.starts_with("| model |") && md.contains("| m | lstm |"),
        "{md}"
    );
    // Two folders of one name are told apart by their paths.
    let twin = d.path().join("twin").join("m");
    std::fs::create_dir_all(&twin).unwrap();
    for f in std::fs::read_dir(&out).unwrap().flatten() {
        if f.file_type().unwrap().is_file() {
            std::fs::copy(f.path(), twin.join(f.file_name())).unwrap();
        }
    }
    let both = ok(&recur(&[
        "lvm",
        "leaderboard",
        "--models",
        out.to_str().unwrap(),
        twin.to_str().unwrap(),
        "--data",
        train.to_str().unwrap(),
    ]));
    for p in [&out, &twin] {
        assert!(
            both.contains(&format!("| {} | lstm |", p.display())),
            "{both}"
        );
    }
    // Data of another width: the error names the file and the model.
    let narrow = d.path().join("narrow.npz");
    let dev = Device::Cpu;
    Tensor::write_npz(
        &[
            (
                "context_sequences",
                &Tensor::ones((2, 5, 3), candle_core::DType::F32, &dev).unwrap(),
            ),
            (
                "target_vectors",
                &Tensor::ones((2, 3), candle_core::DType::F32, &dev).unwrap(),
            ),
        ],
        &narrow,
    )
    .unwrap();
    let e = err(&recur(&[
        "lvm",
        "leaderboard",
        "--models",
        out.to_str().unwrap(),
        "--data",
        narrow.to_str().unwrap(),
    ]));
    assert!(
        e.contains("narrow.npz: vectors have dimension 3")
            && e.contains(&format!("(the model in {})", out.display())),
        "{e}"
    );
    let rows: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&lb).unwrap()).unwrap();
    let row = &rows[0];
    assert_eq!(row["params"], report["params"]);
    let (cos, mean) = (
        row["val_cosine"].as_f64().unwrap(),
        row["lat_b1_mean_ms"].as_f64().unwrap(),
    );
    assert!(mean > 0.0 && row["lat_b1_p95_ms"].as_f64() >= row["lat_b1_p50_ms"].as_f64());
    assert!((row["efficiency"].as_f64().unwrap() - cos / mean * 1000.0).abs() < 1e-6);
    for b in ["1", "8", "32", "128"] {
        assert!(
            row["throughput"][b].as_f64().unwrap() > 0.0,
            "throughput at batch {b}"
        );
    }
    assert_eq!(
        rows.as_array().unwrap().len(),
        3,
        "the model and two baselines"
    );

    let npy = d.path().join("pred.npy");
    let p = ok(&recur(&[
        "lvm",
        "predict",
        "--model",
        out.to_str().unwrap(),
        "--data",
        ood.to_str().unwrap(),
        "--output",
        npy.to_str().unwrap(),
    ]));
    // 15 articles x (14 - 5) windows.
    assert!(p.contains("135 predicted vectors"), "{p}");
    // No output replaces the data read or a file of the model directory.
    let (o, od) = (out.to_str().unwrap(), ood.to_str().unwrap());
    let weights = out.join("model.safetensors");
    let w = weights.to_str().unwrap();
    let ood_bytes = std::fs::read(&ood).unwrap();
    for args in [
        &["predict", "--model", o, "--data", od, "--output", od][..],
        &["predict", "--model", o, "--data", od, "--output", w],
        &["eval", "--model", o, "--data", od, "--json", od],
        &["eval", "--model", o, "--data", od, "--json", w],
        &["leaderboard", "--models", o, "--data", od, "--markdown", od],
        &["leaderboard", "--models", o, "--data", od, "--json", w],
    ] {
        let mut all = vec!["lvm"];
        all.extend_from_slice(args);
        let e = err(&recur(&all));
        assert!(
            e.contains("is the input file") || e.contains("inside the model directory"),
            "{args:?}: {e}"
        );
    }
    assert_eq!(std::fs::read(&ood).unwrap(), ood_bytes);
    // Finite vectors too large for the model: an error naming the window,
    // not a file of NaN predictions.
    let huge = d.path().join("huge.npz");
    let dev = Device::Cpu;
    Tensor::write_npz(
        &[
            (
                "context_sequences",
                &Tensor::full(3e38f32, (2, 5, D), &dev).unwrap(),
            ),
            (
                "target_vectors",
                &Tensor::full(0.25f32, (2, D), &dev).unwrap(),
            ),
        ],
        &huge,
    )
    .unwrap();
    let bad = d.path().join("bad.npy");
    let e = err(&recur(&[
        "lvm",
        "predict",
        "--model",
        o,
        "--data",
        huge.to_str().unwrap(),
        "--output",
        bad.to_str().unwrap(),
    ]));
    assert!(
        e.contains("window 0") && e.contains("holds 3e38") && !bad.exists(),
        "{e}"
    );
    // Zero targets, placeholders in a file of contexts to predict, are
    // taken by predict and refused by eval, which would score 0 on them.
    let placeholder = d.path().join("contexts.npz");
    Tensor::write_npz(
        &[
            (
                "context_sequences",
                &Tensor::full(0.25f32, (2, 5, D), &dev).unwrap(),
            ),
            (
                "target_vectors",
                &Tensor::zeros((2, D), candle_core::DType::F32, &dev).unwrap(),
            ),
        ],
        &placeholder,
    )
    .unwrap();
    let p = placeholder.to_str().unwrap();
    let preds = d.path().join("pl.npy");
    ok(&recur(&[
        "lvm",
        "predict",
        "--model",
        o,
        "--data",
        p,
        "--output",
        preds.to_str().unwrap(),
    ]));
    let e = err(&recur(&["lvm", "eval", "--model", o, "--data", p]));
    assert!(e.contains("the target of window 0 is all zeros"), "{e}");
    ok(&recur(&["inspect", o]));
    // The other job's commands, directory, config or data file, name what
    // was given and what takes it, not a key of the wrong schema.
    let csv = d.path().join("rows.csv");
    std::fs::write(&csv, "a,y\n1,0\n2,1\n").unwrap();
    for args in [
        vec![
            "predict",
            "--model",
            o,
            "--input",
            csv.to_str().unwrap(),
            "--output",
            "p.csv",
        ],
        vec!["drift", "--model", o, "--input", csv.to_str().unwrap()],
    ] {
        let e = err(&recur(&args));
        assert!(
            e.contains("holds a Job B model (an LVM)") && e.contains("recur lvm"),
            "{e}"
        );
    }
    let e = err(&recur(&["train", "--config", cfg.to_str().unwrap()]));
    assert!(
        e.contains("this is a Job B (LVM) config") && e.contains("recur lvm train"),
        "{e}"
    );
    let e = err(&recur(&["inspect", train.to_str().unwrap()]));
    assert!(e.contains("is a NumPy archive (.npz), not a model"), "{e}");
    let t = Tensor::read_npy(&npy).unwrap();
    assert_eq!(t.dims(), [135, D]);
    let norms: Vec<f32> = t.sqr().unwrap().sum(1).unwrap().to_vec1().unwrap();
    assert!(
        norms.iter().all(|n| (n - 1.0).abs() < 1e-4),
        "outputs are unit vectors"
    );
}

#[test]
fn lvm_bad_input_is_a_clear_error() {
    let d = tempfile::tempdir().unwrap();
    let (_, _, cfg) = data(d.path());
    std::fs::write(
        &cfg,
        "data: {train: train.npz}\nmodel: {type: transformerx}\n",
    )
    .unwrap();
    let out = recur(&["lvm", "train", "--config", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("model.type") && e.contains("transformerx"),
        "{e}"
    );
    let out = recur(&[
        "lvm",
        "eval",
        "--model",
        d.path().to_str().unwrap(),
        "--data",
        "x.npz",
    ]);
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("not a recur LVM model directory") && !e.contains("panicked"),
        "{e}"
    );
    // An error that candle made carries no backtrace into the message,
    // whatever RUST_BACKTRACE says.
    std::fs::write(
        &cfg,
        "data: {train: train.npz}\nmodel: {type: lstm, d_model: 8, init: average}\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_recur"))
        .args(["-q", "lvm", "train", "--config", cfg.to_str().unwrap()])
        .args(["--out", d.path().join("m").to_str().unwrap()])
        .env("RUST_BACKTRACE", "1")
        .env_remove("RUST_LIB_BACKTRACE")
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{e}");
    assert!(
        e.contains("d_model (8) must equal the vector dimension (16)")
            && !e.contains("candle_core::")
            && e.lines().count() <= 2,
        "{e}"
    );
}

/// The other kinds on the same data. The GRU and the Transformer see order
/// as the LSTM does and must beat both baselines everywhere; the AMN mixes the context by
/// content, not position, so on this rotation task it is only asked to
/// beat them on validation (on real text it is the original's best OOD
/// model).
#[test]
fn gru_amn_and_transformer_train_and_beat_the_baselines() {
    let d = tempfile::tempdir().unwrap();
    let (_, _, cfg) = data(d.path());
    for (kind, model, lr, ood_too) in [
        ("gru", "{type: gru, d_model: 32, num_layers: 1}", 0.01, true),
        ("amn", "{type: amn, d_model: 16}", 0.01, false),
        (
            "transformer",
            "{type: transformer, d_model: 32, num_layers: 1, heads: 4, ff: 64}",
            0.003,
            true,
        ),
    ] {
        std::fs::write(
            &cfg,
            format!(
                "data: {{train: train.npz, ood: ood.npz, val_fraction: 0.2}}\nmodel: {model}\n\
                 training: {{learning_rate: {lr}, batch_size: 16, epochs: 8, seed: 7}}\n"
            ),
        )
        .unwrap();
        let out = d.path().join(kind);
        ok(&recur(&[
            "lvm",
            "train",
            "--config",
            cfg.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]));
        let r: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap())
                .unwrap();
        assert_eq!(r["model"], kind);
        let parts: &[&str] = if ood_too { &["val", "ood"] } else { &["val"] };
        for part in parts {
            beats_baselines(&r, part, kind);
        }
        if kind == "transformer" {
            // No tensor's shape shows the heads: a config.yaml stating
            // other heads than the header (the manifest rewritten) is
            // refused, as the other sizes are.
            let train = d.path().join("train.npz");
            let e = predict_with_config_edited(&out, "  heads: 4\n", "  heads: 2\n", &train);
            assert!(e.contains("model.heads 2, the weights 4"), "{e}");
        }
    }
}

/// `lvm predict` of `out` on `data` with `from` replaced by `to` in its
/// config.yaml and the manifest rewritten to match (an edit a manifest
/// does not catch): its error. The config is restored after.
fn predict_with_config_edited(out: &Path, from: &str, to: &str, data: &Path) -> String {
    let yaml = out.join("config.yaml");
    let text = std::fs::read_to_string(&yaml).unwrap();
    assert!(text.contains(from), "{text}");
    std::fs::write(&yaml, text.replace(from, to)).unwrap();
    recur_core::dirwrite::reseal(out).unwrap();
    let e = err(&recur(&[
        "lvm",
        "predict",
        "--model",
        out.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--output",
        out.with_extension("x.npy").to_str().unwrap(),
    ]));
    std::fs::write(&yaml, &text).unwrap();
    recur_core::dirwrite::reseal(out).unwrap();
    e
}

fn trials_of(out: &Path) -> Vec<serde_json::Value> {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("trials.json")).unwrap()).unwrap();
    v.as_array().unwrap().clone()
}

/// `recur tune` on an LVM config: trial 0 is the config as given, every
/// trial stays in its ranges and is scored by validation cosine, a second
/// run resumes, and best.yaml trains to the figure its trial reported.
#[test]
fn tune_searches_an_lvm_config_resumes_and_its_best_trains_to_its_figure() {
    let d = tempfile::tempdir().unwrap();
    let (_, _, cfg) = data(d.path());
    std::fs::write(
        &cfg,
        "data: {train: train.npz, ood: ood.npz, val_fraction: 0.2, context: 5}\n\
         model: {type: mlp, d_model: 32, num_layers: 1}\n\
         training: {learning_rate: 0.003, weight_decay: 0.02, batch_size: 16, epochs: 3, seed: 7}\n\
         tune: {learning_rate: [0.001, 0.03], weight_decay: [0.001, 0.1], d_model: [16, 64], \
         startup_trials: 2, prune_after_trials: 2, warmup_epochs: 1}\n",
    )
    .unwrap();
    let out = d.path().join("tune");
    let o = out.to_str().unwrap();
    let c = cfg.to_str().unwrap();
    let text = ok(&recur(&[
        "tune", "--config", c, "--trials", "3", "--out", o,
    ]));
    let first = trials_of(&out);
    let numbers: Vec<u64> = first
        .iter()
        .map(|t| t["number"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, vec![0, 1, 2]);
    let p0 = &first[0]["params"];
    assert_eq!(
        (
            p0["learning_rate"].as_f64(),
            p0["weight_decay"].as_f64(),
            p0["d_model"].as_u64()
        ),
        (Some(0.003), Some(0.02), Some(32)),
        "trial 0 is not the config as given: {p0}"
    );
    for t in &first {
        let p = &t["params"];
        let lr = p["learning_rate"].as_f64().unwrap();
        let wd = p["weight_decay"].as_f64().unwrap();
        let dm = p["d_model"].as_u64().unwrap();
        assert!(
            (0.001..=0.03).contains(&lr) && (0.001..=0.1).contains(&wd),
            "{t}"
        );
        assert!((16..=64).contains(&dm) && p["num_layers"] == 1, "{t}");
        // The value is the kept (best) epoch's validation cosine.
        let curve: Vec<f64> = t["curve"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let best = curve.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        assert_eq!(t["value"].as_f64().unwrap(), best, "{t}");
    }
    assert!(
        text.contains("best: trial") && text.contains("over the context mean"),
        "{text}"
    );
    // The search beats the context mean on this data (a rotation).
    let best: &serde_json::Value = first
        .iter()
        .max_by(|a, b| {
            a["value"]
                .as_f64()
                .unwrap()
                .total_cmp(&b["value"].as_f64().unwrap())
        })
        .unwrap();
    // Resumed: the finished trials are kept as they were.
    let text = ok(&recur(&[
        "tune", "--config", c, "--trials", "4", "--out", o,
    ]));
    assert!(text.contains("resumed from 3 trials"), "{text}");
    let after = trials_of(&out);
    assert_eq!(after.len(), 4);
    assert_eq!(
        &after[..3],
        &first[..],
        "a finished trial was lost or changed"
    );
    let best_after = after
        .iter()
        .max_by(|a, b| {
            a["value"]
                .as_f64()
                .unwrap()
                .total_cmp(&b["value"].as_f64().unwrap())
        })
        .unwrap()
        .clone();
    assert!(best_after["value"].as_f64() >= best["value"].as_f64());
    // best.yaml trains, from another folder, to the best trial's figure:
    // the same split, seed and recipe.
    let m = d.path().join("best-model");
    ok(&recur(&[
        "lvm",
        "train",
        "--config",
        out.join("best.yaml").to_str().unwrap(),
        "--out",
        m.to_str().unwrap(),
    ]));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(m.join("report.json")).unwrap()).unwrap();
    let got = report["val"]["cosine_mean"].as_f64().unwrap();
    let want = best_after["value"].as_f64().unwrap();
    assert!(
        (got - want).abs() < 1e-6,
        "best.yaml trained to {got}, its trial said {want}"
    );
    beats_baselines(&report, "val", "tuned mlp");
    // d_model taken out of `tune:`: trials of other widths are not the
    // config's (they were resumed as if they were 32 wide).
    assert!(after.iter().skip(1).any(|t| t["params"]["d_model"] != 32));
    std::fs::write(
        &cfg,
        "data: {train: train.npz, ood: ood.npz, val_fraction: 0.2, context: 5}\n\
         model: {type: mlp, d_model: 32, num_layers: 1}\n\
         training: {learning_rate: 0.003, weight_decay: 0.02, batch_size: 16, epochs: 3, seed: 7}\n\
         tune: {learning_rate: [0.001, 0.03], weight_decay: [0.001, 0.1], \
         startup_trials: 2, prune_after_trials: 2, warmup_epochs: 1}\n",
    )
    .unwrap();
    let e = err(&recur(&[
        "tune", "--config", c, "--trials", "5", "--out", o,
    ]));
    assert!(e.contains("lie outside the tune: ranges"), "{e}");
    // A width range the average start cannot take is refused by name.
    std::fs::write(
        &cfg,
        "data: {train: train.npz}\nmodel: {type: lstm, d_model: 16, init: average}\n\
         tune: {d_model: [16, 64]}\n",
    )
    .unwrap();
    let e = err(&recur(&[
        "tune", "--config", c, "--trials", "2", "--out", o,
    ]));
    assert!(e.contains("tune.d_model") && e.contains("average"), "{e}");
    // The MLP's dropout was searched; a GRU has none to search, and its
    // trials and best.yaml say none.
    assert!(first
        .iter()
        .any(|t| t["params"]["dropout"] != first[0]["params"]["dropout"]));
    std::fs::write(
        &cfg,
        "data: {train: train.npz, val_fraction: 0.2, context: 5}\n\
         model: {type: gru, d_model: 16, num_layers: 1}\n\
         training: {batch_size: 16, epochs: 1, seed: 7}\n\
         tune: {startup_trials: 3}\n",
    )
    .unwrap();
    let gru = d.path().join("tune-gru");
    ok(&recur(&[
        "tune",
        "--config",
        c,
        "--trials",
        "3",
        "--out",
        gru.to_str().unwrap(),
    ]));
    for t in trials_of(&gru) {
        assert_eq!(t["params"]["dropout"].as_f64(), Some(0.0), "{t}");
    }
    let best = std::fs::read_to_string(gru.join("best.yaml")).unwrap();
    assert!(!best.contains("dropout: 0."), "{best}");
}

/// `final.safetensors` holds the last epoch's weights, `model.safetensors`
/// the best epoch's: on targets that are mostly noise a wide MLP overfits,
/// its validation cosine peaks early, and the two differ (the final file
/// was a second copy of the best).
#[test]
fn final_weights_are_the_last_epochs_not_the_best() {
    let d = tempfile::tempdir().unwrap();
    let (train, ood) = (d.path().join("train.npz"), d.path().join("ood.npz"));
    write_chunks(&train, 3, 0, 30, 12, 1.5);
    write_chunks(&ood, 4, 1000, 6, 12, 1.5);
    let cfg = d.path().join("over.yaml");
    std::fs::write(
        &cfg,
        "data: {train: train.npz, ood: ood.npz, val_fraction: 0.3, context: 5}\n\
         model: {type: mlp, d_model: 256, num_layers: 2, dropout: 0.0}\n\
         training: {loss: mse, learning_rate: 0.003, batch_size: 8, epochs: 12, schedule: none, seed: 3}\n",
    )
    .unwrap();
    let out = d.path().join("m");
    ok(&recur(&[
        "lvm",
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]));
    let history: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(out.join("training_history.json")).unwrap())
            .unwrap();
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let best = report["best_epoch"].as_u64().unwrap() as usize;
    assert!(best < history.len(), "best epoch {best} is the last");
    let read = |f: &str| std::fs::read(out.join(f)).unwrap();
    assert!(
        read("model.safetensors") != read("final.safetensors"),
        "final.safetensors is the best epoch's copy"
    );
    // The final weights score the last epoch's validation cosine.
    std::fs::copy(out.join("final.safetensors"), out.join("model.safetensors")).unwrap();
    recur_core::dirwrite::reseal(&out).unwrap();
    let json = d.path().join("final.json");
    ok(&recur(&[
        "lvm",
        "eval",
        "--model",
        out.to_str().unwrap(),
        "--data",
        train.to_str().unwrap(),
        "--heldout",
        "--json",
        json.to_str().unwrap(),
    ]));
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let last = history.last().unwrap()["val_cosine"].as_f64().unwrap();
    let got = r["val"]["cosine_mean"].as_f64().unwrap();
    assert!(
        (got - last).abs() < 1e-6,
        "final weights score {got}, last epoch {last}"
    );
}

/// Ready windows without `article_indices` cannot be held out by article:
/// training says so, holds out the last block and leaves the `context`
/// windows before it out (the note said "by article" and the block's
/// neighbours were trained on). A validation or OOD file that is a copy of
/// the training file is refused.
#[test]
fn ready_windows_without_articles_and_copied_files() {
    let d = tempfile::tempdir().unwrap();
    let dev = Device::Cpu;
    let mut rng = Rng::new(5);
    let n = 60;
    let ctx: Vec<f32> = (0..n * 5 * D).map(|_| rng.normal()).collect();
    let tgt: Vec<f32> = (0..n * D).map(|_| rng.normal()).collect();
    let ready = d.path().join("ready.npz");
    Tensor::write_npz(
        &[
            (
                "context_sequences",
                &Tensor::from_vec(ctx, (n, 5, D), &dev).unwrap(),
            ),
            (
                "target_vectors",
                &Tensor::from_vec(tgt, (n, D), &dev).unwrap(),
            ),
        ],
        &ready,
    )
    .unwrap();
    let cfg = d.path().join("ready.yaml");
    std::fs::write(
        &cfg,
        "data: {train: ready.npz, val_fraction: 0.2, context: 5}\n\
         model: {type: mlp, d_model: 16, num_layers: 1}\n\
         training: {epochs: 1, batch_size: 8}\n",
    )
    .unwrap();
    // Not quiet: the split's note is what is checked.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_recur"))
        .args(["--threads", "1", "lvm", "train", "--config"])
        .arg(&cfg)
        .arg("--out")
        .arg(d.path().join("m"))
        .output()
        .unwrap();
    let said =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("the last 12 of 60 windows")
            && said.contains("no `article_indices`")
            && said.contains("the 5 windows before them are left out")
            && !said.contains("by article"),
        "{said}"
    );
    assert!(!d.path().join("m/split.json").exists());
    // `lvm train` of the config as it stands, into `out`: its error.
    let train_err = |out: &str| {
        err(&recur(&[
            "lvm",
            "train",
            "--config",
            cfg.to_str().unwrap(),
            "--out",
            d.path().join(out).to_str().unwrap(),
        ]))
    };
    // Too few windows to set a context's worth aside: said in those terms.
    let small = d.path().join("small.npz");
    Tensor::write_npz(
        &[
            (
                "context_sequences",
                &Tensor::ones((6, 5, D), candle_core::DType::F32, &dev).unwrap(),
            ),
            (
                "target_vectors",
                &Tensor::ones((6, D), candle_core::DType::F32, &dev).unwrap(),
            ),
        ],
        &small,
    )
    .unwrap();
    std::fs::write(
        &cfg,
        "data: {train: small.npz, context: 5}\nmodel: {type: mlp, d_model: 16}\n",
    )
    .unwrap();
    let e = train_err("s");
    assert!(
        e.contains("no article_indices")
            && e.contains("give more windows")
            && !e.contains("more articles"),
        "{e}"
    );

    let (train, ood, _) = data(d.path());
    let copy = d.path().join("copy.npz");
    std::fs::copy(&train, &copy).unwrap();
    for (key, yaml) in [
        (
            "data.ood",
            "data: {train: train.npz, ood: copy.npz, context: 5}\n",
        ),
        (
            "data.val",
            "data: {train: train.npz, val: copy.npz, context: 5}\n",
        ),
    ] {
        std::fs::write(
            &cfg,
            format!("{yaml}model: {{type: mlp, d_model: 16}}\ntraining: {{epochs: 1}}\n"),
        )
        .unwrap();
        let e = train_err("c");
        assert!(
            e.contains(key) && e.contains("same bytes as data.train"),
            "{e}"
        );
        // The advice is the key's own (an OOD file was told of data.val).
        assert!(e.contains(&format!("leave {key} out")), "{e}");
    }
    assert!(ood.exists());
    // A file that is not there is named by its key.
    std::fs::write(
        &cfg,
        "data: {train: train.npz, ood: nope.npz, context: 5}\nmodel: {type: mlp, d_model: 16}\n",
    )
    .unwrap();
    let e = train_err("c");
    assert!(
        e.contains("data.ood") && e.contains("nope.npz: no such file"),
        "{e}"
    );
}

//! The `recur` binary end to end on small files: train -> report.json ->
//! eval -> predict -> inspect, byte-identical reports for the same seed,
//! and a clear error (exit code 2, naming the file, column or row) for
//! every kind of bad input.

mod common;

use common::{err, ok, recur};
use std::path::{Path, PathBuf};

/// 300 days: day, x1, x2, rain; rain follows x1 of the day before.
fn write_data(dir: &Path, name: &str) -> PathBuf {
    let mut s = String::from("day,x1,x2,rain\n");
    for i in 0..300 {
        let x1 = ((i * 37) % 101) as f64 / 101.0;
        let x2 = ((i * 13) % 17) as f64 / 17.0;
        let prev = (((i + 300 - 1) * 37) % 101) as f64 / 101.0;
        s += &format!("2020-{:03},{x1:.4},{x2:.4},{}\n", i, (prev > 0.6) as u8);
    }
    let p = dir.join(name);
    std::fs::write(&p, s).unwrap();
    p
}

fn write_config(dir: &Path, data: &Path) -> PathBuf {
    let c = format!(
        "data:\n  path: {}\n  time_column: day\n  target: {{column: rain, horizon: 1}}\n\
         model: {{sequence_length: 10, hidden_size: 8}}\n\
         training: {{epochs: 3, batch_size: 64, learning_rate: 0.01}}\n",
        data.display()
    );
    let p = dir.join("c.yaml");
    std::fs::write(&p, c).unwrap();
    p
}

#[test]
fn train_eval_predict_inspect_and_same_seed_same_report() {
    let d = tempfile::tempdir().unwrap();
    let data = write_data(d.path(), "d.csv");
    let cfg = write_config(d.path(), &data);
    let (m1, m2) = (d.path().join("m1"), d.path().join("m2"));
    let out = ok(&recur(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        m1.to_str().unwrap(),
    ]));
    assert!(out.contains("ROC AUC"), "{out}");
    ok(&recur(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        m2.to_str().unwrap(),
    ]));
    let r1 = std::fs::read(m1.join("report.json")).unwrap();
    assert_eq!(
        r1,
        std::fs::read(m2.join("report.json")).unwrap(),
        "same seed, different report.json"
    );

    // A file whose ISO dates run backwards is refused by predict and eval,
    // as by training: its windows would join unrelated days.
    let text = std::fs::read_to_string(&data).unwrap();
    let mut back = String::from("day,x1,x2,rain\n");
    for (i, line) in text.lines().skip(1).enumerate() {
        let rest = line.split_once(',').unwrap().1;
        back += &format!("2020-{:02}-{:02},{rest}\n", 12 - i / 28 % 12, 28 - i % 28);
    }
    let back_csv = d.path().join("back.csv");
    std::fs::write(&back_csv, back).unwrap();
    for cmd in ["predict", "eval"] {
        let mut args = vec![
            cmd,
            "--model",
            m1.to_str().unwrap(),
            "--input",
            back_csv.to_str().unwrap(),
        ];
        if cmd == "predict" {
            args.extend(["--output", "never.csv"]);
        }
        let e = err(&recur(&args));
        assert!(
            e.contains("back.csv") && e.contains("comes before"),
            "{cmd}: {e}"
        );
    }

    let report: serde_json::Value = serde_json::from_slice(&r1).unwrap();
    for part in ["val", "test"] {
        for k in ["auc", "pr_auc", "logloss", "brier"] {
            assert!(report[part][k].is_number(), "{part}.{k} missing: {report}");
        }
    }
    for k in [
        "best_epoch",
        "epochs_run",
        "pos_weight",
        "n_train",
        "n_val",
        "n_test",
    ] {
        assert!(report[k].is_number(), "{k} missing");
    }
    assert_eq!(report["features"], serde_json::json!(["x1", "x2"]));
    for f in [
        "config.yaml",
        "model.safetensors",
        "scaler.json",
        "features.json",
        "history.json",
        "data.json",
    ] {
        assert!(m1.join(f).exists(), "{f} not written");
    }

    let ev = ok(&recur(&[
        "eval",
        "--model",
        m1.to_str().unwrap(),
        "--input",
        data.to_str().unwrap(),
    ]));
    // The training file: its validation and test parts, as in the report.
    assert!(
        ev.contains("ROC AUC") && ev.contains("validation:") && ev.contains("test:"),
        "{ev}"
    );
    // Standard output closed at once (`| head -1`): the process dies at its
    // first line, with the JSON already written.
    let figures = d.path().join("figures.json");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_recur"))
        .args([
            "eval",
            "--model",
            m1.to_str().unwrap(),
            "--input",
            data.to_str().unwrap(),
        ])
        .args(["--json", figures.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    child.wait().unwrap();
    assert!(figures.exists(), "the JSON was lost with the pipe");
    // Another file: all its labelled windows (280 - 10 + 1, the last unlabelled).
    let text = std::fs::read_to_string(&data).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let other = d.path().join("later.csv");
    std::fs::write(&other, [&lines[..1], &lines[21..]].concat().join("\n")).unwrap();
    let ev = ok(&recur(&[
        "eval",
        "--model",
        m1.to_str().unwrap(),
        "--input",
        other.to_str().unwrap(),
    ]));
    assert!(ev.contains("all: 270 rows"), "{ev}");

    let preds = d.path().join("p.csv");
    ok(&recur(&[
        "predict",
        "--model",
        m1.to_str().unwrap(),
        "--input",
        data.to_str().unwrap(),
        "--output",
        preds.to_str().unwrap(),
    ]));
    let text = std::fs::read_to_string(&preds).unwrap();
    // Another name gets the same CSV, and says so.
    let named = d.path().join("p.json");
    let out = recur(&[
        "predict",
        "--model",
        m1.to_str().unwrap(),
        "--input",
        data.to_str().unwrap(),
        "--output",
        named.to_str().unwrap(),
    ]);
    let note = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && note.contains("p.json will hold a CSV table"),
        "{note}"
    );
    assert_eq!(std::fs::read_to_string(&named).unwrap(), text);
    // A newline in the output's name stays on the line that names it (it
    // printed a line of its own, which a reader takes for recur's).
    let odd = d.path().join("p\nforged.csv");
    let said = ok(&recur(&[
        "predict",
        "--model",
        m1.to_str().unwrap(),
        "--input",
        data.to_str().unwrap(),
        "--output",
        odd.to_str().unwrap(),
    ]));
    assert!(
        said.contains("p\\u{a}forged.csv") && !said.lines().any(|l| l.starts_with("forged")),
        "{said}"
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "row,day,label,p_lstm,probability,decision");
    assert_eq!(lines.len() - 1, 300 - 10 + 1);
    assert!(lines[1].starts_with("9,2020-009,"), "{}", lines[1]);
    assert!(lines[291].starts_with("299,2020-299,"), "{}", lines[291]);

    let ins = ok(&recur(&["inspect", m1.to_str().unwrap()]));
    assert!(
        ins.contains("lstm.weight_ih_l0") && ins.contains("[32, 2]") && ins.contains("checks: OK"),
        "{ins}"
    );

    // Training into a folder of someone else's files is refused, and
    // nothing in it changes; into an earlier model it is a retrain.
    let theirs = d.path().join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    std::fs::write(theirs.join("config.yaml"), "mine: true\n").unwrap();
    let e = err(&recur(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        theirs.to_str().unwrap(),
    ]));
    assert!(e.contains("not a recur model directory"), "{e}");
    assert_eq!(
        std::fs::read_to_string(theirs.join("config.yaml")).unwrap(),
        "mine: true\n"
    );
}

#[test]
fn bad_input_is_a_clear_error_naming_file_column_or_row() {
    let d = tempfile::tempdir().unwrap();
    let data = write_data(d.path(), "d.csv");
    let cfg = write_config(d.path(), &data);
    let good = std::fs::read_to_string(&data).unwrap();
    let train = |text: &str| {
        std::fs::write(&data, text).unwrap();
        err(&recur(&[
            "train",
            "--config",
            cfg.to_str().unwrap(),
            "--out",
            d.path().join("m").to_str().unwrap(),
        ]))
    };

    // A thread count out of 1..=1024 is refused before anything runs.
    for n in ["0", "5000", "many"] {
        let e = err(&std::process::Command::new(env!("CARGO_BIN_EXE_recur"))
            .args(["--threads", n, "inspect", data.to_str().unwrap()])
            .output()
            .unwrap());
        assert!(e.contains("from 1 to 1024"), "{n}: {e}");
    }

    let e = train(&good.replace("rain", "drizzle"));
    assert!(
        e.contains("d.csv") && e.contains("no column `rain`"),
        "missing target: {e}"
    );
    let e = train(&good.replacen("0.3663", "abc", 1));
    assert!(
        e.contains("column `x1` is not numeric") && e.contains("line") && e.contains("abc"),
        "non-numeric: {e}"
    );
    // A crafted cell cannot drive the terminal: its escape sequences are
    // shown escaped, never written raw.
    let e = train(&good.replacen("0.3663", "x\x1b[2J\x1b]0;PWNED\x07", 1));
    assert!(
        e.contains("holds `x\\u{1b}[2J\\u{1b}]0;PWNED\\u{7}`") && !e.contains('\x1b'),
        "escapes: {e}"
    );
    // Nor start a line of its own (a quoted cell may hold a line break).
    let e = train(&good.replacen("0.3663", "\"abc\nmodel written to /tmp/x\"", 1));
    assert!(
        e.contains("holds `abc\\u{a}model written"),
        "line break: {e}"
    );
    let e = train(&good.replacen("0.3663", "NaN", 1));
    assert!(e.contains("column `x1`") && e.contains("NaN"), "NaN: {e}");
    let e = train(&good.replacen("0.3663", "inf", 1));
    assert!(
        e.contains("column `x1`") && e.contains("is inf"),
        "inf: {e}"
    );
    let short: String = good.lines().take(6).map(|l| format!("{l}\n")).collect();
    let e = train(&short);
    assert!(
        e.contains("5 rows") && e.contains("sequence_length = 10"),
        "too few rows: {e}"
    );
    let e = train(&good.replacen(",1\n", ",3\n", 1));
    assert!(
        e.contains("`rain` must be binary") && e.contains("holds 3"),
        "non-binary: {e}"
    );
    let e = train("");
    assert!(
        e.contains("d.csv") && e.contains("empty"),
        "empty file: {e}"
    );

    // A config typo names the key; a missing model directory says what to do.
    std::fs::write(&cfg, "model: {hiden_size: 3}\n").unwrap();
    let e = err(&recur(&["train", "--config", cfg.to_str().unwrap()]));
    assert!(e.contains("hiden_size"), "{e}");
    let e = err(&recur(&[
        "eval",
        "--model",
        d.path().to_str().unwrap(),
        "--input",
        data.to_str().unwrap(),
    ]));
    assert!(e.contains("not a recur model directory"), "{e}");
    // The demo's --out as a file is named for every part (only the
    // classifier's said so; the others gave "File exists (os error 17)").
    for part in ["lvm", "price", "classifier"] {
        let e = err(&recur(&[
            "demo",
            "--part",
            part,
            "--out",
            data.to_str().unwrap(),
        ]));
        assert!(
            e.contains("is not a folder; --out names the folder"),
            "{part}: {e}"
        );
    }
}

/// `recur bench lstm` runs the classifier workload and writes the figures
/// the PyTorch comparison reads.
#[test]
fn bench_lstm_writes_the_figures_compare_reads() {
    let d = tempfile::tempdir().unwrap();
    let json = d.path().join("w1.json");
    let run = recur(&[
        "bench",
        "lstm",
        "--workload",
        "w1",
        "--min-seconds",
        "0",
        "--json",
        json.to_str().unwrap(),
    ]);
    let out = ok(&run);
    assert!(out.contains("train") && out.contains("seq/s"), "{out}");
    // What it is doing is said before the silence of the timing, but
    // for -q (which `recur` above passes).
    assert!(!String::from_utf8_lossy(&run.stderr).contains("timing"));
    let loud = std::process::Command::new(env!("CARGO_BIN_EXE_recur"))
        .args(["--threads", "1", "bench", "lstm", "--workload", "w1"])
        .args(["--min-seconds", "0"])
        .output()
        .unwrap();
    ok(&loud);
    let said = String::from_utf8_lossy(&loud.stderr);
    assert!(
        said.contains("timing w1 on 1 thread(s): training, inference, then batch-1 latency"),
        "{said}"
    );
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(r["impl"], "recur");
    assert_eq!(r["threads"], 1);
    // nn.LSTM(16, 64) + Linear(64, 1).
    assert_eq!(r["params"], 21057);
    assert_eq!(r["train_steps"], 10);
    for k in [
        "train_seq_per_s",
        "infer_seq_per_s",
        "lat_b1_p50_ms",
        "lat_b1_p95_ms",
        "peak_rss_mb",
    ] {
        assert!(r[k].as_f64().is_some_and(|v| v > 0.0), "{k}: {r}");
    }
    assert!(r["lat_b1_p95_ms"].as_f64() >= r["lat_b1_p50_ms"].as_f64());
    let e = err(&recur(&["bench", "lstm", "--workload", "w3"]));
    assert!(e.contains("w3") && e.contains("w2-gru"), "{e}");
    // A time that never ends (NaN, inf) or is below zero is refused (NaN
    // ran for ever).
    for bad in ["NaN", "inf", "-1"] {
        let e = err(&recur(&[
            "bench",
            "lstm",
            "--workload",
            "w1",
            &format!("--min-seconds={bad}"),
        ]));
        assert!(e.contains("from 0 to 86400"), "{bad}: {e}");
    }
}

/// The demo's model names its data where it stays (recur's cache), so its
/// saved config trains again after the demo ends; a temporary copy was
/// deleted with the demo, and `train --config DIR/price/config.yaml` failed.
#[test]
fn the_demos_saved_config_trains_again() {
    let d = tempfile::tempdir().unwrap();
    let home = d.path().join("home");
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_recur"))
            .env("RECUR_HOME", &home)
            .args(["--threads", "1", "-q"])
            .args(args)
            .output()
            .unwrap()
    };
    let out = d.path().join("demo");
    // --precision f32 is the demo's own, taken as said (bf16 is refused).
    ok(&run(&[
        "--precision",
        "f32",
        "demo",
        "--part",
        "price",
        "--out",
        out.to_str().unwrap(),
    ]));
    let saved = std::fs::read_to_string(out.join("price/config.yaml")).unwrap();
    let data = home.join("data/msft.csv");
    assert!(
        saved.contains(&format!("path: {}", data.display())),
        "{saved}"
    );
    let bundled = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/msft.csv");
    assert_eq!(
        std::fs::read(&data).unwrap(),
        std::fs::read(bundled).unwrap()
    );
    ok(&run(&[
        "train",
        "--config",
        out.join("price/config.yaml").to_str().unwrap(),
        "--out",
        d.path().join("again").to_str().unwrap(),
    ]));
    assert_eq!(
        std::fs::read(out.join("price/model.safetensors")).unwrap(),
        std::fs::read(d.path().join("again/model.safetensors")).unwrap(),
        "the same config and data train the same model"
    );
    // A cache that cannot be written: the demo still runs, and says what
    // that means for the saved config.
    let file = d.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_recur"))
        .env("RECUR_HOME", &file)
        .args(["--threads", "1", "demo", "--part", "price", "--out"])
        .arg(d.path().join("demo2"))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("temporary folder") && said.contains("RECUR_HOME"),
        "{said}"
    );
}

/// A data file of 100 MB or more is announced before it is read, unless
/// `--quiet` (a sparse file: nothing is written to disk; it is then refused
/// for its NUL bytes, after the line).
#[test]
fn a_large_data_file_is_announced_before_it_is_read() {
    let d = tempfile::tempdir().unwrap();
    let big = d.path().join("big.csv");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(150_000_000)
        .unwrap();
    let cfg = write_config(d.path(), &big);
    let run = |quiet: bool| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_recur"));
        c.args(["--threads", "1"]);
        if quiet {
            c.arg("-q");
        }
        let o = c
            .args(["select-features", "--config", cfg.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(!o.status.success());
        String::from_utf8(o.stderr).unwrap()
    };
    let said = run(false);
    assert!(
        said.contains("reading ") && said.contains("(150 MB) ..."),
        "{said}"
    );
    assert!(said.contains("NUL byte"), "{said}");
    assert!(!run(true).contains("reading "));
}

/// A model folder a `train --out` that died between its two renames left
/// aside (`.NAME.old-RUN`) is put back and loads, on the first try.
#[test]
fn a_folder_left_aside_by_a_crashed_swap_loads_at_once() {
    let d = tempfile::tempdir().unwrap();
    let data = write_data(d.path(), "days.csv");
    let cfg = write_config(d.path(), &data);
    let m = d.path().join("m");
    ok(&recur(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        m.to_str().unwrap(),
    ]));
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(m.join("manifest.json")).unwrap()).unwrap();
    let aside = d
        .path()
        .join(format!(".m.old-{}", manifest["run"].as_str().unwrap()));
    std::fs::rename(&m, &aside).unwrap();
    let out = d.path().join("p.csv");
    ok(&recur(&[
        "predict",
        "--model",
        m.to_str().unwrap(),
        "--input",
        data.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ]));
    assert!(m.join("manifest.json").is_file() && !aside.exists());
    // A named pipe for the manifest is refused at once (predict waited on
    // it for a writer, before the manifest check could say so).
    std::fs::remove_file(m.join("manifest.json")).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(m.join("manifest.json"))
        .status()
        .unwrap();
    assert!(made.success());
    let got = recur_sh(
        "timeout 60 \"$0\" predict --model m --input days.csv --output p2.csv",
        d.path(),
    );
    let e = err(&got);
    assert!(
        e.contains("manifest.json") && e.contains("not a regular file"),
        "{e}"
    );
}

/// `recur` through `sh -c`, for a shell's redirections and umask.
fn recur_sh(script: &str, dir: &Path) -> std::process::Output {
    std::process::Command::new("sh")
        .args(["-c", script, env!("CARGO_BIN_EXE_recur")])
        .current_dir(dir)
        .output()
        .unwrap()
}

#[test]
fn standard_output_as_an_output_is_written_through_and_the_umask_is_kept() {
    let d = tempfile::tempdir().unwrap();
    let data = write_data(d.path(), "days.csv");
    let cfg = write_config(d.path(), &data);
    // A private model under umask 077: the folder 0700, its files 0600.
    let m = d.path().join("m");
    let out = recur_sh(
        &format!(
            "umask 077; exec \"$0\" --threads 1 -q train --config {} --out m",
            cfg.display()
        ),
        d.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&m), 0o700);
    assert_eq!(mode(&m.join("model.safetensors")), 0o600);
    // `>> all.csv` with --output /dev/stdout appends; the file stays the
    // same one, and the summary line goes to standard error.
    let all = d.path().join("all.csv");
    std::fs::write(&all, "precious\n").unwrap();
    let predict = "exec \"$0\" --threads 1 predict --model m --input days.csv --output";
    let out = recur_sh(&format!("{predict} /dev/stdout >> all.csv"), d.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&all).unwrap();
    assert!(text.starts_with("precious\nrow,"), "{}", &text[..60]);
    assert!(!text.contains("written to"), "{text}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("written to /dev/stdout"));
    // `-` is standard output: the table alone there, nothing named `-`.
    let out = recur_sh(&format!("{predict} -"), d.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert_eq!(table.lines().count(), text.lines().count() - 1, "{table}");
    assert!(table.starts_with("row,") && !table.contains("written to"));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("written to standard output") && !said.contains("whatever its name"),
        "{said}"
    );
    assert!(!d.path().join("-").exists());
    // A standard output that cannot take the table fails, named as such.
    let out = recur_sh(&format!("{predict} - >/dev/full"), d.path());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code() == Some(2) && said.contains("error: standard output: No space left"),
        "{said}"
    );
    // Nor does help or the version pass for printed when they were not.
    for asked in ["--help", "--version", "predict --help"] {
        let out = recur_sh(&format!("exec \"$0\" {asked} >/dev/full"), d.path());
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.code() == Some(2) && said.contains("standard output: No space left"),
            "{asked}: {:?} {said}",
            out.status
        );
    }
    // A standard error that cannot be written does not fail the work.
    let out = recur_sh(&format!("{predict} p.csv 2>/dev/full"), d.path());
    assert!(out.status.success());
    assert!(d.path().join("p.csv").is_file());
}

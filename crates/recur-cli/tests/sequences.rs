//! Whole-series classification as a user runs it from the command line:
//! a `.ts` file of three classes, two channels, lengths that differ and
//! missing values; `recur train`, `recur eval` (the metrics and the
//! confusion matrix), `recur predict` (a probability per class), and
//! `recur serve`'s `/v1/classify`, which gives the same probabilities.

mod common;

use common::{ok, recur};
use std::path::Path;

/// `n` series: `up` rises in channel 0, `down` falls, `flat` rises in
/// channel 1; lengths 8 to 19; every 5th value of channel 1 missing.
/// Returns each series as `/v1/classify` takes it: a list of steps of
/// two values, `null` where the file has `?`.
fn write_ts(path: &Path, n: usize, seed: u64) -> Vec<serde_json::Value> {
    let mut state = seed;
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 11) as f64) / ((1u64 << 53) as f64)
    };
    let mut s = String::from("@problemName Three\n@missing true\n@equalLength false\n@data\n");
    let mut json = Vec::new();
    for i in 0..n {
        let class = ["up", "down", "up", "flat"][i % 4];
        let (a, b) = match class {
            "up" => (0.1, 0.0),
            "down" => (-0.1, 0.0),
            _ => (0.0, 0.1),
        };
        let len = 8 + (next() * 12.0) as usize;
        let c0: Vec<String> = (0..len)
            .map(|t| format!("{:.4}", a * t as f64 + next() - 0.5))
            .collect();
        let c1: Vec<String> = (0..len)
            .map(|t| {
                let v = format!("{:.4}", b * t as f64 + next() - 0.5);
                if t % 5 == 2 {
                    "?".into()
                } else {
                    v
                }
            })
            .collect();
        s += &format!("{}:{}:{class}\n", c0.join(","), c1.join(","));
        let num = |v: &String| -> serde_json::Value {
            v.parse::<f64>()
                .map_or(serde_json::Value::Null, |x| x.into())
        };
        json.push(serde_json::Value::Array(
            c0.iter()
                .zip(&c1)
                .map(|(a, b)| serde_json::json!([num(a), num(b)]))
                .collect(),
        ));
    }
    std::fs::write(path, s).unwrap();
    json
}

#[test]
fn three_classes_of_several_lengths_from_train_to_predict() {
    let d = tempfile::tempdir().unwrap();
    let train = d.path().join("three_TRAIN.ts");
    let test = d.path().join("three_TEST.ts");
    write_ts(&train, 200, 1);
    let test_series = write_ts(&test, 80, 2);
    let cfg = d.path().join("c.yaml");
    std::fs::write(
        &cfg,
        "data:\n  path: three_TRAIN.ts\n  layout: sequences\n  split: {train: 0.8, val: 0.2, test: 0.0, shuffle: true}\n\
         model: {hidden_size: 12}\n\
         training: {epochs: 20, learning_rate: 0.01, batch_size: 16, pos_weight: 2.0}\n",
    )
    .unwrap();
    let m = d.path().join("m");
    let m = m.to_str().unwrap();
    let page = d.path().join("report.html");
    let text = ok(&recur(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        m,
        "--report-html",
        page.to_str().unwrap(),
    ]));
    assert!(
        text.contains("macro F1") && text.contains("temperature"),
        "{text}"
    );
    // A setting of two classes is said in the report, not only in passing.
    assert!(
        text.contains("note: training.pos_weight is for two classes; this label has 3"),
        "{text}"
    );
    // inspect's raw figures are the raw ones (it had shown those after the
    // temperature as raw), the temperature's beside them.
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(Path::new(m).join("report.json")).unwrap())
            .unwrap();
    // report.html shows the figures per class: the confusion matrix of
    // report.json under the classes' names, and each class's F1, whose
    // mean is the macro F1.
    let html = std::fs::read_to_string(&page).unwrap();
    let data: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(Path::new(m).join("data.json")).unwrap())
            .unwrap();
    let names: Vec<&str> = data["classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 3);
    let conf = r["val"]["confusion"].as_array().unwrap();
    let at = html
        .find("<h2>Per class (validation)</h2>")
        .expect("a per-class section");
    let section = &html[at..];
    let mut f1_sum = 0.0;
    for (i, row) in conf.iter().enumerate() {
        let cells: String = row
            .as_array()
            .unwrap()
            .iter()
            .map(|c| format!("<td>{c}</td>"))
            .collect();
        assert!(
            section.contains(&format!("<tr><td>{}</td>{cells}</tr>", names[i])),
            "row {i} of the confusion matrix: {section}"
        );
        let row: Vec<f64> = row
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_f64().unwrap())
            .collect();
        let predicted: f64 = conf.iter().map(|r| r[i].as_f64().unwrap()).sum();
        f1_sum += 2.0 * row[i] / (row.iter().sum::<f64>() + predicted);
    }
    let macro_f1 = r["val"]["macro_f1"].as_f64().unwrap();
    assert!(
        (f1_sum / 3.0 - macro_f1).abs() < 1e-12,
        "{f1_sum} {macro_f1}"
    );
    let (raw, scaled) = (&r["temperature"]["val_raw"]["auc"], &r["val"]["auc"]);
    let ins = ok(&recur(&["inspect", m]));
    let line = ins
        .lines()
        .find(|l| l.contains("best epoch"))
        .unwrap()
        .to_string();
    assert!(
        line.contains(&format!(
            "the LSTM (raw): val AUC {:.4}",
            raw.as_f64().unwrap()
        )) && line.contains(&format!(": val AUC {:.4}", scaled.as_f64().unwrap()))
            && line.contains("at temperature"),
        "{line}"
    );
    let text = ok(&recur(&[
        "eval",
        "--model",
        m,
        "--input",
        test.to_str().unwrap(),
    ]));
    assert!(
        text.contains("80 series, 3 classes") && text.contains("confusion on this file"),
        "{text}"
    );
    assert!(!text.contains("note:"), "{text}");
    // The training file itself is scored whole, and said to be mostly the
    // series the model fitted (it was presented as unseen).
    let text = ok(&recur(&[
        "eval",
        "--model",
        m,
        "--input",
        train.to_str().unwrap(),
    ]));
    assert!(
        text.contains("note: this is the model's training file: its 200 series")
            && text.contains("mostly in-sample"),
        "{text}"
    );
    let acc: f64 = text
        .lines()
        .find(|l| l.starts_with("accuracy"))
        .and_then(|l| l.split_whitespace().last())
        .unwrap()
        .parse()
        .unwrap();
    assert!(acc > 0.85, "{text}");
    let out = d.path().join("p.csv");
    let text = ok(&recur(&[
        "predict",
        "--model",
        m,
        "--input",
        test.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ]));
    assert!(text.contains("80 series scored (3 classes"), "{text}");
    let table = std::fs::read_to_string(&out).unwrap();
    assert!(
        table.starts_with("row,label,p_down,p_flat,p_up,class,probability\n0,up,"),
        "{table}"
    );
    // The service scores the same series whole: the probabilities
    // `recur predict` wrote, each series alone or in a batch.
    let serve_cfg = d.path().join("serve.yaml");
    std::fs::write(&serve_cfg, format!("classifier: {m}\n")).unwrap();
    let (mut child, url, _lines) = common::serve(&serve_cfg);
    recur_dev::load::wait_ready(&url, 60).unwrap();
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build(),
    );
    let post = |body: serde_json::Value| -> (u16, serde_json::Value) {
        let mut r = agent
            .post(format!("{url}/v1/classify"))
            .header("content-type", "application/json")
            .send(body.to_string())
            .unwrap();
        let status = r.status().as_u16();
        let text = r.body_mut().read_to_string().unwrap();
        (status, serde_json::from_str(&text).unwrap())
    };
    let (status, batch) = post(serde_json::json!({"sequences": test_series}));
    let (status_alone, alone) =
        post(serde_json::json!({"sequence": {"id": "s3", "steps": test_series[3]}}));
    let (status_bad, bad) = post(serde_json::json!({"sequence": [[1.0], [2.0]]}));
    let (status_rows, rows) = post(serde_json::json!({"window": [[1.0, 2.0]]}));
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(status, 200, "{batch}");
    assert_eq!(batch["classes"], serde_json::json!(["down", "flat", "up"]));
    assert_eq!(batch["layout"], "sequences");
    let results = batch["results"].as_array().unwrap();
    assert_eq!(results.len(), 80);
    for (line, r) in table.lines().skip(1).zip(results) {
        let cells: Vec<&str> = line.split(',').collect();
        let served: Vec<f64> = r["class_probabilities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        for (k, p) in served.iter().enumerate() {
            let written: f64 = cells[2 + k].parse().unwrap();
            assert!((written - p).abs() < 1e-6, "{line} vs {r}");
        }
        assert_eq!(r["class"], cells[5], "{line} vs {r}");
    }
    assert_eq!(status_alone, 200, "{alone}");
    assert_eq!(alone["results"][0]["id"], "s3");
    assert_eq!(
        alone["results"][0]["class_probabilities"], results[3]["class_probabilities"],
        "a series alone and in a batch of other lengths"
    );
    assert_eq!(status_bad, 422, "{bad}");
    assert!(
        bad["error"]
            .as_str()
            .unwrap()
            .contains("sequence[0] has 1 values"),
        "{bad}"
    );
    assert_eq!(status_rows, 422, "{rows}");
    assert!(
        rows["error"].as_str().unwrap().contains("whole series"),
        "{rows}"
    );
}

/// A two-class model keeps both classes: `eval` refuses a class it never
/// saw (it scored every unknown label as the negative class), `predict`
/// scores such a file without labels, and `data.json` names the negative
/// class, so a loaded model can give the labels back as they were.
#[test]
fn a_binary_model_refuses_a_class_it_never_saw() {
    let d = tempfile::tempdir().unwrap();
    let train = d.path().join("two.ts");
    let mut s = String::from("@data\n");
    for i in 0..40 {
        let (class, slope) = if i % 2 == 0 {
            ("up", 0.1)
        } else {
            ("down", -0.1)
        };
        let v: Vec<String> = (0..10)
            .map(|t| format!("{:.2}", slope * t as f64))
            .collect();
        s += &format!("{}:{class}\n", v.join(","));
    }
    std::fs::write(&train, &s).unwrap();
    let other = d.path().join("other.ts");
    std::fs::write(&other, s.replace(":down", ":flat")).unwrap();
    let cfg = d.path().join("c.yaml");
    std::fs::write(
        &cfg,
        "data: {path: two.ts, layout: sequences}\nmodel: {hidden_size: 4}\ntraining: {epochs: 1, batch_size: 16}\n",
    )
    .unwrap();
    let m = d.path().join("m");
    let m = m.to_str().unwrap();
    ok(&recur(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        m,
    ]));
    // The same series as a CSV with pandas' numbered header line: named,
    // not read as a series of a class `0` of its own.
    let mut csv = (0..=10)
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",")
        + "\n";
    for line in s.lines().skip(1) {
        let (v, class) = line.rsplit_once(':').unwrap();
        csv += &format!("{class},{v}\n");
    }
    std::fs::write(d.path().join("two.csv"), csv).unwrap();
    let cfg_csv = d.path().join("csv.yaml");
    std::fs::write(
        &cfg_csv,
        "data: {path: two.csv, layout: sequences}\nmodel: {hidden_size: 4}\ntraining: {epochs: 1}\n",
    )
    .unwrap();
    let out = recur(&[
        "train",
        "--config",
        cfg_csv.to_str().unwrap(),
        "--out",
        d.path().join("mc").to_str().unwrap(),
    ]);
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && e.contains("header of column numbers"),
        "{e}"
    );
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.path().join("m/data.json")).unwrap())
            .unwrap();
    assert_eq!(
        (&info["positive_label"], &info["negative_label"]),
        (&serde_json::json!("up"), &serde_json::json!("down")),
        "{info}"
    );
    let out = recur(&["eval", "--model", m, "--input", other.to_str().unwrap()]);
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && e.contains(
                "class `flat`, which the model was not trained on (its classes: down, up)"
            ),
        "{e}"
    );
    let p = d.path().join("p.csv");
    ok(&recur(&[
        "predict",
        "--model",
        m,
        "--input",
        other.to_str().unwrap(),
        "--output",
        p.to_str().unwrap(),
    ]));
    // Nor does `predict` write into another model's directory (it
    // replaced that model's checkpoint with a CSV).
    let m2 = d.path().join("m2");
    std::fs::create_dir(&m2).unwrap();
    for f in std::fs::read_dir(d.path().join("m")).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), m2.join(f.file_name())).unwrap();
    }
    let target = m2.join("model.safetensors");
    let before = std::fs::read(&target).unwrap();
    let out = recur(&[
        "predict",
        "--model",
        m,
        "--input",
        other.to_str().unwrap(),
        "--output",
        target.to_str().unwrap(),
    ]);
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && e.contains("lies inside the model directory"),
        "{e}"
    );
    assert_eq!(std::fs::read(&target).unwrap(), before);
}

/// A file that lists its series by class, as many UCR files do: the
/// sequences layout shuffles before the split by default, so validation
/// holds both classes; with `shuffle: false` the validation part would be
/// of one class (calibrated to call every series positive), and training
/// refuses it, naming the part, the class and the setting.
#[test]
fn a_file_sorted_by_class_is_shuffled_or_refused() {
    let d = tempfile::tempdir().unwrap();
    let mut s = String::from("@data\n");
    for i in 0..60 {
        let (class, slope) = if i < 30 { ("down", -0.1) } else { ("up", 0.1) };
        let v: Vec<String> = (0..10)
            .map(|t| format!("{:.3}", slope * t as f64 + 0.01 * ((i * 7 + t) % 5) as f64))
            .collect();
        s += &format!("{}:{class}\n", v.join(","));
    }
    std::fs::write(d.path().join("sorted.ts"), s).unwrap();
    let train = |split: &str, out: &str| {
        let cfg = d.path().join(format!("{out}.yaml"));
        std::fs::write(
            &cfg,
            format!(
                "data: {{path: sorted.ts, layout: sequences, split: {{train: 0.6, val: 0.2, test: 0.2{split}}}}}\n\
                 model: {{hidden_size: 4}}\ntraining: {{epochs: 2, batch_size: 16}}\n"
            ),
        )
        .unwrap();
        recur(&[
            "train",
            "--config",
            cfg.to_str().unwrap(),
            "--out",
            d.path().join(out).to_str().unwrap(),
        ])
    };
    let out = train(", shuffle: false", "kept");
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{e}");
    assert!(
        e.contains("validation part (12 of 60) is of class `up`")
            && e.contains("data.split.shuffle: true"),
        "{e}"
    );
    assert!(!d.path().join("kept").exists());
    ok(&train("", "shuffled"));
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(d.path().join("shuffled/report.json")).unwrap(),
    )
    .unwrap();
    let auc = &report["val"]["auc"];
    assert!(auc.as_f64().is_some(), "validation of one class: {auc}");
}

/// Numeric classes are their numbers however written: `positive_label: 1`
/// names the class a file writes `1.0`, and a file that writes `1` and `0`
/// is scored as the one that writes `1.0` and `0.0` (it was "a class the
/// model was not trained on").
#[test]
fn numeric_classes_match_however_written() {
    let d = tempfile::tempdir().unwrap();
    let write = |name: &str, one: &str, zero: &str| {
        let mut s = String::new();
        for i in 0..60 {
            let (class, slope) = if i % 2 == 0 { (one, 0.1) } else { (zero, -0.1) };
            let v: Vec<String> = (0..10)
                .map(|t| format!("{:.3}", slope * t as f64 + 0.01 * ((i * 7 + t) % 5) as f64))
                .collect();
            s += &format!("{class},{}\n", v.join(","));
        }
        std::fs::write(d.path().join(name), s).unwrap();
        d.path().join(name)
    };
    let train = write("float.csv", "1.0", "0.0");
    let ints = write("int.csv", "1", "0");
    let cfg = d.path().join("c.yaml");
    std::fs::write(
        &cfg,
        "data: {path: float.csv, layout: sequences, target: {positive_label: '1'}}\n\
         model: {hidden_size: 4}\ntraining: {epochs: 2, batch_size: 16}\n",
    )
    .unwrap();
    let m = d.path().join("m");
    ok(&recur(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        m.to_str().unwrap(),
    ]));
    let eval = |input: &Path| {
        let json = input.with_extension("json");
        ok(&recur(&[
            "eval",
            "--model",
            m.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
            "--json",
            json.to_str().unwrap(),
        ]));
        std::fs::read_to_string(json).unwrap()
    };
    let (a, b) = (eval(&train), eval(&ints));
    // The training file's bytes are said to be it; the same series
    // written otherwise score the same.
    let strip = |s: &str| {
        let mut v: serde_json::Value = serde_json::from_str(s).unwrap();
        v.as_object_mut().unwrap().remove("input");
        let note = v.as_object_mut().unwrap().remove("note");
        (v, note.is_some())
    };
    let ((a, said), (b, not_said)) = (strip(&a), strip(&b));
    assert_eq!(a, b);
    assert!(said && !not_said);
}

//! Whole series of different lengths, with missing values, as UEA files
//! hold them: training batches one length at a time, so no series is ever
//! padded, and a series scores the same alone as among others of every
//! length; LSTM-FCN without its dimension shuffle takes them too.

use candle_core::Device;
use recur_core::config::{ClassifierKind, Config};
use recur_train::{train_to_dir, FitOptions};
use std::path::Path;

mod common;

use common::{sequences_config, Lcg};

/// One `.ts` line: two channels of `len` steps, `rise` or `fall` in
/// channel 0, with every 7th value of channel 1 missing (`?`).
fn line(g: &mut Lcg, len: usize, rise: bool) -> String {
    let slope = if rise { 0.1 } else { -0.1 };
    let c0: Vec<String> = (0..len)
        .map(|t| format!("{:.4}", slope * t as f64 + g.next() - 0.5))
        .collect();
    let c1: Vec<String> = (0..len)
        .map(|t| {
            if t % 7 == 3 {
                "?".into()
            } else {
                format!("{:.4}", g.next())
            }
        })
        .collect();
    let class = if rise { "rise" } else { "fall" };
    format!("{}:{}:{class}\n", c0.join(","), c1.join(","))
}

fn write(path: &Path, lines: &[String]) {
    let head = "@problemName Slopes\n@equalLength false\n@classLabel true fall rise\n@data\n";
    std::fs::write(path, format!("{head}{}", lines.concat())).unwrap();
}

fn config(path: &Path, kind: ClassifierKind) -> Config {
    let mut c = sequences_config(path, kind);
    c.model.hidden_size = 8;
    c.model.filters = [8, 8, 8];
    c.model.shuffle = false;
    c.training.batch_size = 16;
    c.training.epochs = 15;
    c
}

#[test]
fn series_of_different_lengths_score_the_same_alone_as_in_any_company() {
    let d = tempfile::tempdir().unwrap();
    let mut g = Lcg(4);
    let lines: Vec<String> = (0..160)
        .map(|i| {
            let len = 6 + (g.next() * 15.0) as usize;
            line(&mut g, len, i % 2 == 0)
        })
        .collect();
    let path = d.path().join("slopes.ts");
    write(&path, &lines);
    for kind in [ClassifierKind::Lstm, ClassifierKind::LstmFcn] {
        let out = d.path().join(format!("m-{kind}"));
        let report = train_to_dir(
            &config(&path, kind),
            &out,
            &Device::Cpu,
            &FitOptions::default(),
        )
        .unwrap();
        assert!(
            report.test.as_ref().unwrap().auc.unwrap() > 0.9,
            "{kind}: {report}"
        );
        assert_eq!(report.sequence_length, 20, "the longest series");
        let p = recur_deploy::Predictor::load(&out, &Device::Cpu).unwrap();
        let all = recur_deploy::score_file(&p, &path, false).unwrap();
        assert_eq!(all.predictions.len(), 160);
        // Each of these series alone in a file gives the probability it
        // has among the 160.
        for i in [0, 1, 17, 42, 159] {
            let one = d.path().join(format!("one-{i}.ts"));
            write(&one, &lines[i..=i]);
            let alone = recur_deploy::score_file(&p, &one, false).unwrap();
            let (a, b) = (
                alone.predictions[0].probability.unwrap(),
                all.predictions[i].probability.unwrap(),
            );
            assert!(
                (a - b).abs() < 1e-6,
                "{kind} series {i}: alone {a}, among others {b}"
            );
        }
        // Lengths the training data did not hold score too.
        let long = d.path().join("long.ts");
        write(&long, &[line(&mut g, 40, true), line(&mut g, 3, false)]);
        assert_eq!(
            recur_deploy::score_file(&p, &long, false)
                .unwrap()
                .predictions
                .len(),
            2
        );
    }
    // LSTM-FCN's dimension shuffle reads a fixed number of steps: refused.
    let mut cfg = config(&path, ClassifierKind::LstmFcn);
    cfg.model.shuffle = true;
    let err = train_to_dir(
        &cfg,
        &d.path().join("x"),
        &Device::Cpu,
        &FitOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("model.shuffle") && err.contains("6..=20"),
        "{err}"
    );
}

#[test]
fn a_model_of_equal_length_series_refuses_other_lengths() {
    let d = tempfile::tempdir().unwrap();
    let mut g = Lcg(8);
    let lines: Vec<String> = (0..80).map(|i| line(&mut g, 12, i % 2 == 0)).collect();
    let path = d.path().join("equal.ts");
    write(&path, &lines);
    let out = d.path().join("m");
    train_to_dir(
        &config(&path, ClassifierKind::Lstm),
        &out,
        &Device::Cpu,
        &FitOptions::default(),
    )
    .unwrap();
    let p = recur_deploy::Predictor::load(&out, &Device::Cpu).unwrap();
    let other = d.path().join("other.ts");
    write(&other, &[line(&mut g, 12, true), line(&mut g, 9, false)]);
    let err = recur_deploy::score_file(&p, &other, false)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("9 to 12") && err.contains("exactly 12"),
        "{err}"
    );
}

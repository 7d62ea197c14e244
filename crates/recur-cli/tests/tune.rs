//! `recur tune` as a user runs it: trial 0 is the given config, every
//! finished trial is on disk, a killed run resumes without losing one, and
//! best.yaml trains as it is.

mod common;

use common::{err, ok, recur};
use std::path::Path;

fn setup(dir: &Path) -> std::path::PathBuf {
    let mut g = recur_core::rng::Rng::new(4);
    let mut a = vec![0.0f64; 900];
    for t in 1..900 {
        a[t] = 0.7 * a[t - 1] + g.normal() as f64;
    }
    let mut s = String::from("a,b,y\n");
    for t in 0..900 {
        s += &format!(
            "{:.4},{:.4},{}\n",
            a[t],
            g.normal(),
            (t >= 2 && a[t - 2] > 0.0) as u8
        );
    }
    std::fs::write(dir.join("d.csv"), s).unwrap();
    let cfg = dir.join("t.yaml");
    std::fs::write(
        &cfg,
        "data:\n  path: d.csv\n  target:\n    column: y\n\
         model:\n  sequence_length: 4\n  hidden_size: 4\ntraining:\n  epochs: 3\n  batch_size: 64\n\
         tune:\n  sequence_length: [3, 6]\n  hidden_size: [2, 6]\n  startup_trials: 2\n  prune_after_trials: 2\n  warmup_epochs: 1\n",
    )
    .unwrap();
    cfg
}

/// `recur tune --config cfg --trials n --out out`.
fn tune(cfg: &str, n: &str, out: &str) -> std::process::Output {
    recur(&["tune", "--config", cfg, "--trials", n, "--out", out])
}

fn trials(out: &Path) -> Vec<serde_json::Value> {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("trials.json")).unwrap()).unwrap();
    v.as_array().unwrap().clone()
}

#[test]
fn tune_records_every_trial_resumes_after_a_kill_and_writes_a_trainable_best() {
    let d = tempfile::tempdir().unwrap();
    let cfg = setup(d.path());
    let out = d.path().join("tune");
    let o = out.to_str().unwrap();
    let text = ok(&tune(cfg.to_str().unwrap(), "3", o));
    let first = trials(&out);
    assert_eq!(first.len(), 3);
    // While another process searches into the folder, a second search is
    // refused at its start (two interleaved their trials).
    {
        let _other = recur_core::dirwrite::hold_outputs(&out).unwrap();
        let e = err(&tune(cfg.to_str().unwrap(), "4", o));
        assert!(e.contains("another recur is writing"), "{e}");
        assert_eq!(trials(&out).len(), 3);
    }
    let numbers: Vec<u64> = first
        .iter()
        .map(|t| t["number"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, vec![0, 1, 2]);
    // Its outputs never replace the config searched.
    let own = out.join("best.yaml");
    let before = std::fs::read(&own).unwrap();
    std::fs::copy(&cfg, &own).unwrap();
    let e = err(&tune(own.to_str().unwrap(), "3", o));
    assert!(e.contains("is the input file"), "{e}");
    assert_eq!(std::fs::read(&own).unwrap(), std::fs::read(&cfg).unwrap());
    std::fs::write(&own, before).unwrap();
    // Trial 0 is the config as given.
    assert_eq!(first[0]["params"]["sequence_length"], 4);
    assert_eq!(first[0]["params"]["hidden_size"], 4);
    assert!(text.contains("best: trial"), "{text}");
    for t in &first {
        let p = &t["params"];
        assert!(
            (3..=6).contains(&p["sequence_length"].as_u64().unwrap()),
            "{t}"
        );
        assert!((2..=6).contains(&p["hidden_size"].as_u64().unwrap()), "{t}");
        assert!(!t["curve"].as_array().unwrap().is_empty());
    }
    // A run killed while trial 1 ran: the file holds trials 0 and 2.
    let kept: Vec<serde_json::Value> = vec![first[0].clone(), first[2].clone()];
    std::fs::write(
        out.join("trials.json"),
        serde_json::to_string(&kept).unwrap(),
    )
    .unwrap();
    let text = ok(&tune(cfg.to_str().unwrap(), "4", o));
    assert!(text.contains("resumed from 2 trials"), "{text}");
    let after = trials(&out);
    assert_eq!(after.len(), 4, "the lost trial is run again as a new one");
    assert_eq!(after[0], kept[0], "a finished trial was lost or changed");
    assert_eq!(after[1], kept[1], "a finished trial was lost or changed");
    let numbers: Vec<u64> = after
        .iter()
        .map(|t| t["number"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, vec![0, 2, 3, 4]);
    // best.yaml trains as it is, from any folder.
    let best = out.join("best.yaml");
    ok(&recur(&[
        "train",
        "--config",
        best.to_str().unwrap(),
        "--out",
        d.path().join("m").to_str().unwrap(),
    ]));
    // Trials of another config (here one more epoch) are not resumed as
    // this one's, and the file stays as it was.
    let other = d.path().join("other.yaml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&other, text.replace("epochs: 3", "epochs: 4")).unwrap();
    let before = std::fs::read(out.join("trials.json")).unwrap();
    let tune_other = || err(&tune(other.to_str().unwrap(), "6", o));
    let e = tune_other();
    assert!(e.contains("the trials of another search"), "{e}");
    assert_eq!(std::fs::read(out.join("trials.json")).unwrap(), before);
    // Nor trials whose search.json is gone: which config they searched
    // cannot be told (they were resumed unchecked).
    let search = std::fs::read(out.join("search.json")).unwrap();
    std::fs::remove_file(out.join("search.json")).unwrap();
    let e = tune_other();
    assert!(e.contains("search.json") && e.contains("is missing"), "{e}");
    assert_eq!(std::fs::read(out.join("trials.json")).unwrap(), before);
    std::fs::write(out.join("search.json"), search).unwrap();
    // A data file that cannot be read is named, not taken for other data
    // ("the trials of another search ... delete trials.json").
    let data = d.path().join("d.csv");
    let aside = d.path().join("d.csv.aside");
    std::fs::rename(&data, &aside).unwrap();
    let e = err(&tune(cfg.to_str().unwrap(), "5", o));
    assert!(e.contains("d.csv") && !e.contains("another search"), "{e}");
    assert_eq!(std::fs::read(out.join("trials.json")).unwrap(), before);
    std::fs::rename(&aside, &data).unwrap();
    // A new search into a folder (trials.json deleted to start afresh)
    // removes the search before's best.yaml at its start: one whose every
    // trial fails (sequence lengths longer than the data allow) leaves
    // none, where it left the old one to read as its own.
    let fresh = d.path().join("fresh");
    std::fs::create_dir(&fresh).unwrap();
    std::fs::copy(out.join("best.yaml"), fresh.join("best.yaml")).unwrap();
    let long = d.path().join("long.yaml");
    std::fs::write(
        &long,
        text.replace("sequence_length: 4", "sequence_length: 5000")
            .replace("sequence_length: [3, 6]", "sequence_length: [4000, 5000]"),
    )
    .unwrap();
    let _ = tune(long.to_str().unwrap(), "2", fresh.to_str().unwrap());
    assert!(trials(&fresh).iter().all(|t| t["state"] == "failed"));
    assert!(!fresh.join("best.yaml").exists());
    // The same config reached by a relative path from its folder resumes.
    let again = std::process::Command::new(env!("CARGO_BIN_EXE_recur"))
        .args(["--threads", "1", "-q", "tune", "--config", "t.yaml"])
        .args(["--trials", "5", "--out", "tune"])
        .current_dir(d.path())
        .output()
        .unwrap();
    ok(&again);
    // A damaged trials file is an error naming it, not a fresh start.
    std::fs::write(out.join("trials.json"), "[{\"number\": 0,").unwrap();
    let e = err(&tune(cfg.to_str().unwrap(), "5", o));
    assert!(
        e.contains("trials.json") && e.contains("delete it (or give a new --out)"),
        "{e}"
    );
}

#[test]
fn a_resumed_search_takes_the_path_the_uninterrupted_one_took() {
    let d = tempfile::tempdir().unwrap();
    let cfg = setup(d.path());
    let run = |out: &Path, n: &str| ok(&tune(cfg.to_str().unwrap(), n, out.to_str().unwrap()));
    let (whole, split) = (d.path().join("whole"), d.path().join("split"));
    run(&whole, "5");
    run(&split, "3");
    run(&split, "5");
    let params = |out: &Path| -> Vec<String> {
        trials(out)
            .iter()
            .map(|t| t["params"].to_string())
            .collect()
    };
    let (a, b) = (params(&whole), params(&split));
    assert_eq!(a.len(), 5);
    assert_eq!(a, b, "the resumed search left the uninterrupted one's path");
    let distinct: std::collections::HashSet<&String> = a.iter().collect();
    assert_eq!(
        distinct.len(),
        5,
        "a trial repeated another's parameters: {a:?}"
    );
}

/// A trial that stops early records the epoch it stopped on: its curve is
/// `recur train`'s history (it was one short).
#[test]
fn a_trial_that_stops_early_records_every_epoch_it_ran() {
    let d = tempfile::tempdir().unwrap();
    let cfg = setup(d.path());
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        text.replace(
            "  epochs: 3\n",
            "  epochs: 40\n  early_stopping_patience: 1\n  learning_rate: 0.05\n",
        ),
    )
    .unwrap();
    let out = d.path().join("tune");
    ok(&tune(cfg.to_str().unwrap(), "1", out.to_str().unwrap()));
    let model = d.path().join("m");
    ok(&recur(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        model.to_str().unwrap(),
    ]));
    let history: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("history.json")).unwrap())
            .unwrap();
    let ran = history.as_array().unwrap().len();
    assert!(ran < 40, "no early stop to check: {ran} epochs");
    let t = &trials(&out)[0];
    assert_eq!(t["curve"].as_array().unwrap().len(), ran, "{t}");
}

//! `recur embed`, `recur corpus build` and `recur models` from the command
//! line, on a tiny random BERT the test writes (no download).

mod common;
use common::{err, ok, recur, recur_stdin};
use std::path::Path;
use std::process::Command;

fn tiny_bert(dir: &Path) -> String {
    let m = dir.join("bert");
    recur_text::tiny::write_bert(&m, 3).unwrap();
    m.display().to_string()
}

fn embeddings(stdout: &str) -> Vec<(String, Vec<f32>)> {
    stdout
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let e = v["embedding"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect();
            (v["text"].as_str().unwrap().to_string(), e)
        })
        .collect()
}

#[test]
fn embed_writes_json_lines_or_npy_from_arguments_or_stdin() {
    let d = tempfile::tempdir().unwrap();
    let m = tiny_bert(d.path());
    let out = ok(&recur(&["embed", "--encoder", &m, "the cat sat", "a dog"]));
    let rows = embeddings(&out);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].0, "the cat sat");
    for (_, e) in &rows {
        assert_eq!(e.len(), recur_text::tiny::BERT_HIDDEN);
        let norm: f32 = e.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4);
    }

    // Standard input, one text per line, gives the same vectors.
    let piped = recur_stdin(&["embed", "--encoder", &m], b"the cat sat\na dog\n");
    assert_eq!(embeddings(&ok(&piped)), rows);

    let npy = d.path().join("e.npy");
    ok(&recur(&[
        "embed",
        "--encoder",
        &m,
        "--output",
        npy.to_str().unwrap(),
        "the cat sat",
        "a dog",
    ]));
    let t = candle_core::Tensor::read_npy(&npy).unwrap();
    assert_eq!(t.dims(), [2, recur_text::tiny::BERT_HIDDEN]);
    let first: Vec<f32> = t.get(0).unwrap().to_vec1().unwrap();
    assert!(first
        .iter()
        .zip(&rows[0].1)
        .all(|(a, b)| (a - b).abs() < 1e-6));
}

#[test]
fn embed_errors_are_clear() {
    let d = tempfile::tempdir().unwrap();
    let e = err(&recur(&["embed", "--encoder", "no-such-model", "x"]));
    assert!(
        e.contains("neither a folder nor a model recur knows"),
        "{e}"
    );
    let empty = d.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let e = err(&recur(&[
        "embed",
        "--encoder",
        empty.to_str().unwrap(),
        "x",
    ]));
    assert!(e.contains("no config.json"), "{e}");
    // Text that is not UTF-8 on standard input.
    let m = tiny_bert(d.path());
    let e = err(&recur_stdin(&["embed", "--encoder", &m], b"ok\ncaf\xe9\n"));
    assert!(e.contains("line 2") && e.contains("UTF-8"), "{e}");
    let e = err(&recur_stdin(&["embed", "--encoder", &m], b"ok\n\nmore\n"));
    assert!(e.contains("line 2 is empty"), "{e}");
    // Only characters the encoder drops (a zero-width space): each was
    // embedded as the empty sentence.
    let e = err(&recur(&["embed", "--encoder", &m, "ok", "\u{200b}"]));
    assert!(
        e.contains("text 2 holds only characters the encoder drops"),
        "{e}"
    );
    let e = err(&recur(&[
        "embed",
        "--encoder",
        &m,
        "--batch-size",
        "0",
        "x",
    ]));
    assert!(e.contains("batch-size"), "{e}");
    // The output may not be the file standard input reads the texts from
    // (it was replaced by the array).
    let texts = d.path().join("in.txt");
    std::fs::write(&texts, "hello\nworld\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_recur"))
        .args([
            "embed",
            "--encoder",
            &m,
            "--output",
            texts.to_str().unwrap(),
        ])
        .stdin(std::fs::File::open(&texts).unwrap())
        .output()
        .unwrap();
    let e = err(&out);
    assert!(e.contains("is the file standard input reads"), "{e}");
    assert_eq!(std::fs::read_to_string(&texts).unwrap(), "hello\nworld\n");
}

#[test]
fn corpus_build_makes_a_training_file_from_documents() {
    let d = tempfile::tempdir().unwrap();
    let m = tiny_bert(d.path());
    let docs = d.path().join("docs.jsonl");
    let mut lines = String::new();
    for a in 0..6 {
        let text: Vec<String> = (0..9)
            .map(|s| format!("The king {a} sat on the mat {s} times."))
            .collect();
        lines += &serde_json::json!({"id": a, "text": text.join(" ")}).to_string();
        lines.push('\n');
    }
    lines += "{\"id\": \"blank\", \"text\": \"\"}\n";
    std::fs::write(&docs, lines).unwrap();
    let news = d.path().join("news.cor");
    std::fs::write(&news, "One. Two sentences here. Three more words. Four of them now. Five at last. Six is the end. Seven is also here.\n").unwrap();
    // `corpus build` with the tiny encoder: inputs, then other arguments
    // (the output last).
    let build = |inputs: &[&Path], rest: &[&str]| {
        let mut args = vec!["corpus", "build", "--encoder", m.as_str(), "--input"];
        args.extend(inputs.iter().map(|p| p.to_str().unwrap()));
        args.extend_from_slice(rest);
        recur(&args)
    };
    // An output never replaces an input.
    let e = err(&build(&[&docs], &["--out", docs.to_str().unwrap()]));
    assert!(e.contains("is the input file"), "{e}");
    assert!(std::fs::read_to_string(&docs)
        .unwrap()
        .contains("The king 0"));
    let out = d.path().join("c.npz");
    // One build at a time writes an output (two deleted each other's parts).
    {
        let _other = recur_core::dirwrite::hold_outputs(&out).unwrap();
        let e = err(&build(&[&docs], &["--out", out.to_str().unwrap()]));
        assert!(e.contains("another recur is writing"), "{e}");
        assert!(!out.exists());
    }
    let o = ok(&build(&[&docs, &news], &["--out", out.to_str().unwrap()]));
    assert!(
        o.contains("7 documents -> 6 articles, 54 chunks (skipped: 1 empty)"),
        "{o}"
    );
    assert!(o.contains("1 documents -> 1 articles, 6 chunks"), "{o}");
    let w = recur_data::npz::read_windows(&out, 5).unwrap();
    assert_eq!((w.len(), w.dim), (6 * 4 + 1, recur_text::tiny::BERT_HIDDEN));
    assert!(d.path().join("c.texts.jsonl").exists());

    // A file that is not UTF-8 is refused with its name.
    let bad = d.path().join("bad.txt");
    std::fs::write(&bad, b"caf\xe9 au lait").unwrap();
    let e = err(&build(&[&bad], &["--out", out.to_str().unwrap()]));
    assert!(e.contains("bad.txt") && e.contains("not UTF-8"), "{e}");
    // An input that never ends (a link to /dev/zero) is refused at once.
    let zero = d.path().join("zero.jsonl");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    let e = err(&build(&[&zero], &["--out", out.to_str().unwrap()]));
    assert!(
        e.contains("zero.jsonl") && e.contains("not a regular file"),
        "{e}"
    );
    // An input named as the build report would be is not replaced by it.
    let named = d.path().join("z.build.json");
    std::fs::write(&named, b"{\"id\": \"a\", \"text\": \"One. Two.\"}\n").unwrap();
    let e = err(&build(
        &[&named],
        &[
            "--format",
            "jsonl",
            "--out",
            d.path().join("z.npz").to_str().unwrap(),
        ],
    ));
    assert!(e.contains("is the input file"), "{e}");
    assert!(std::fs::read_to_string(&named)
        .unwrap()
        .starts_with("{\"id\""));
}

#[test]
fn models_list_names_the_known_encoders() {
    let d = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_recur"))
        .args(["models", "list"])
        .env("RECUR_HOME", d.path())
        .output()
        .unwrap();
    let o = ok(&out);
    assert!(
        o.contains("all-MiniLM-L6-v2") && o.contains("gtr-t5-base"),
        "{o}"
    );
    assert!(o.contains("not fetched"), "{o}");
    assert!(o.contains(&d.path().display().to_string()), "{o}");
    // An empty RECUR_HOME is unset: the user's cache, not the current
    // folder (run from `d`, whose `models` would then be listed).
    let out = Command::new(env!("CARGO_BIN_EXE_recur"))
        .args(["models", "list"])
        .env("RECUR_HOME", "")
        .current_dir(d.path())
        .output()
        .unwrap();
    let o = ok(&out);
    assert!(!o.contains("cache: models"), "{o}");
}

/// A cache that cannot be used says which setting chose it and to set
/// RECUR_HOME; it had named a path only (and an unreadable cache was
/// reported as a model not fetched).
#[test]
fn a_cache_that_cannot_be_used_names_the_setting_that_chose_it() {
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    for (var, said) in [
        ("RECUR_HOME", "RECUR_HOME names it"),
        ("XDG_CACHE_HOME", "XDG_CACHE_HOME puts it there"),
    ] {
        let mut c = Command::new(env!("CARGO_BIN_EXE_recur"));
        c.args(["embed", "hello"]).env_remove("RECUR_HOME");
        let out = c.env(var, &file).output().unwrap();
        let e = err(&out);
        assert!(
            e.contains("recur's cache")
                && e.contains("Not a directory")
                && e.contains(said)
                && e.contains("set RECUR_HOME to a folder you can read and write"),
            "{var}: {e}"
        );
    }
}

//! The corpus builder: documents in every form -> chunks -> the chunks
//! .npz that `recur lvm train` reads, texts beside it, skips counted, and a
//! build that was stopped part-way resuming without losing or redoing work.

use recur_core::progress::SILENT;
use recur_core::Error;
use recur_data::npz::read_windows;
use recur_text::corpus::{build, sibling, BuildOptions, Embed};
use std::cell::Cell;
use std::path::{Path, PathBuf};

/// A stand-in encoder: each chunk's vector is a function of its text, so
/// a resumed build can be compared value for value; it fails after
/// `fail_after` calls, as a killed run stops.
struct Fake {
    calls: Cell<usize>,
    fail_after: Option<usize>,
}

impl Embed for Fake {
    fn dim(&self) -> usize {
        4
    }
    fn identity(&self) -> String {
        "fake-1".into()
    }
    fn source(&self) -> PathBuf {
        PathBuf::from("fake")
    }
    fn embed(&self, texts: &[&str], _batch: usize) -> recur_core::Result<Vec<f32>> {
        if self.fail_after.is_some_and(|n| self.calls.get() >= n) {
            return Err(Error::Msg("killed".into()));
        }
        self.calls.set(self.calls.get() + 1);
        Ok(texts
            .iter()
            .flat_map(|t| {
                let b = t.as_bytes();
                [b.len() as f32, b[0] as f32, b[b.len() - 1] as f32, 1.0]
            })
            .collect())
    }
}

fn fake(fail_after: Option<usize>) -> Fake {
    Fake {
        calls: Cell::new(0),
        fail_after,
    }
}

/// Ten articles of a dozen sentences in JSON lines, plus one empty
/// document, one too short and one repeated id.
fn docs(dir: &Path) -> PathBuf {
    let mut lines = String::new();
    for a in 0..10 {
        let text: Vec<String> = (0..12)
            .map(|s| format!("Article {a} says thing number {s} here."))
            .collect();
        lines += &serde_json::json!({"id": format!("doc{a}"), "text": text.join(" ")}).to_string();
        lines.push('\n');
    }
    lines += "{\"id\": \"empty\", \"text\": \"   \"}\n";
    lines += "{\"id\": \"short\", \"text\": \"Only one sentence here.\"}\n";
    lines += "{\"id\": \"doc3\", \"text\": \"A repeated id is left out. Whatever it says.\"}\n";
    let p = dir.join("docs.jsonl");
    std::fs::write(&p, lines).unwrap();
    p
}

fn opts(part: usize) -> BuildOptions {
    BuildOptions {
        part,
        first_article: 100,
        ..Default::default()
    }
}

#[test]
fn builds_the_chunks_layout_with_texts_and_counts() {
    let d = tempfile::tempdir().unwrap();
    let input = docs(d.path());
    let out = d.path().join("c.npz");
    let r = build(
        std::slice::from_ref(&input),
        &out,
        &fake(None),
        &opts(16),
        &SILENT,
    )
    .unwrap();
    assert_eq!((r.articles, r.chunks), (10, 120));
    let i = &r.inputs[0];
    assert_eq!(
        (i.documents, i.skipped.empty, i.too_short, i.duplicates),
        (13, 1, 1, 1)
    );
    // Windows of 5 inside each article: 12 - 5 = 7 per article.
    let w = read_windows(&out, 5).unwrap();
    assert_eq!(w.len(), 70);
    let arts = w.articles.as_ref().unwrap();
    assert_eq!((arts[0], arts[69]), (100, 109));
    // The texts file has one line per chunk, in vector order.
    let texts = std::fs::read_to_string(sibling(&out, "texts.jsonl")).unwrap();
    let rows: Vec<serde_json::Value> = texts
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 120);
    assert_eq!(rows[13]["text"], "Article 1 says thing number 1 here.");
    assert_eq!(
        (rows[13]["article"].as_i64(), rows[13]["chunk"].as_i64()),
        (Some(101), Some(1))
    );
    assert_eq!(rows[13]["doc"], "docs.jsonl:doc1");
    assert!(sibling(&out, "build.json").exists());
    assert_eq!(r.npz_sha256, recur_core::fsx::sha256_file(&out).unwrap());
    assert_eq!(
        r.texts_sha256,
        recur_core::fsx::sha256_bytes(texts.as_bytes())
    );
    assert!(
        !d.path().join("c.npz.parts").exists(),
        "parts are removed when done"
    );
    // Ten articles from i64::MAX - 9 fit; from one more, the last would
    // wrap to a negative index, and nothing is written.
    let top = BuildOptions {
        first_article: i64::MAX - 9,
        ..opts(16)
    };
    let edge = d.path().join("edge.npz");
    build(
        std::slice::from_ref(&input),
        &edge,
        &fake(None),
        &top,
        &SILENT,
    )
    .unwrap();
    let w = read_windows(&edge, 5).unwrap();
    assert_eq!(w.articles.as_ref().unwrap()[69], i64::MAX);
    let over = BuildOptions {
        first_article: i64::MAX - 8,
        ..opts(16)
    };
    let past = d.path().join("past.npz");
    let e = build(&[input], &past, &fake(None), &over, &SILENT)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("--first-article") && e.contains("10 articles"),
        "{e}"
    );
    assert!(!past.exists());
}

#[test]
fn a_stopped_build_resumes_without_loss_or_repeats() {
    let d = tempfile::tempdir().unwrap();
    let input = docs(d.path());
    let clean = d.path().join("clean.npz");
    build(
        std::slice::from_ref(&input),
        &clean,
        &fake(None),
        &opts(16),
        &SILENT,
    )
    .unwrap();

    // 120 chunks in parts of 16 = 8 parts; the first run dies after 3.
    let out = d.path().join("c.npz");
    let e = build(
        std::slice::from_ref(&input),
        &out,
        &fake(Some(3)),
        &opts(16),
        &SILENT,
    )
    .unwrap_err();
    assert!(e.to_string().contains("killed"));
    assert!(!out.exists());
    let again = fake(None);
    let r = build(&[input], &out, &again, &opts(16), &SILENT).unwrap();
    assert_eq!(r.resumed_chunks, 48);
    assert_eq!(
        again.calls.get(),
        5,
        "only the 5 missing parts are embedded"
    );
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&clean).unwrap());
}

/// A reporter that asks to stop after `n` parts are embedded.
struct StopAfter(std::sync::atomic::AtomicU64, u64);

impl recur_core::progress::Progress for StopAfter {
    fn advance(&self, n: u64, _: &str) {
        self.0.fetch_add(n, std::sync::atomic::Ordering::SeqCst);
    }
    fn stop_requested(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::SeqCst) >= self.1
    }
}

/// A stop asked through the reporter (Ctrl-C in Python) ends the build
/// after the part in hand, and a later build resumes from it: it was
/// never asked, and ran to its end.
#[test]
fn a_build_asked_to_stop_stops_after_its_part_and_resumes() {
    let d = tempfile::tempdir().unwrap();
    let input = docs(d.path());
    let out = d.path().join("c.npz");
    let stop = StopAfter(Default::default(), 32);
    let first = fake(None);
    let e = build(std::slice::from_ref(&input), &out, &first, &opts(16), &stop).unwrap_err();
    assert!(recur_core::progress::is_interrupted(&e), "{e}");
    assert_eq!(first.calls.get(), 2);
    assert!(!out.exists());
    let again = fake(None);
    let r = build(&[input], &out, &again, &opts(16), &SILENT).unwrap();
    assert_eq!((r.resumed_chunks, again.calls.get()), (32, 6));
}

#[test]
fn changed_inputs_start_afresh_and_nothing_kept_is_an_error() {
    let d = tempfile::tempdir().unwrap();
    let input = docs(d.path());
    let out = d.path().join("c.npz");
    build(
        std::slice::from_ref(&input),
        &out,
        &fake(Some(2)),
        &opts(16),
        &SILENT,
    )
    .unwrap_err();
    // The documents change before the second run: no stale part is used.
    let text = std::fs::read_to_string(&input)
        .unwrap()
        .replace("thing", "item");
    std::fs::write(&input, text).unwrap();
    let again = fake(None);
    let r = build(
        std::slice::from_ref(&input),
        &out,
        &again,
        &opts(16),
        &SILENT,
    )
    .unwrap();
    assert_eq!((r.resumed_chunks, again.calls.get()), (0, 8));

    let o = BuildOptions {
        min_chunks: 50,
        ..opts(16)
    };
    let e = build(&[input], &out, &fake(None), &o, &SILENT)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("at least 50 chunks") && e.contains("docs.jsonl: 13 documents -> 0 articles"),
        "{e}"
    );
}

#[test]
fn made_up_ids_are_unique_per_file_and_titles_across_files() {
    let d = tempfile::tempdir().unwrap();
    let doc = |a: &str| -> String {
        (0..7)
            .map(|s| format!("News item {a} reports event number {s}."))
            .collect::<Vec<_>>()
            .join(" ")
    };
    // Two line-per-document files: their `line 1` ids do not collide.
    let (a, b) = (d.path().join("a.cor"), d.path().join("b.cor"));
    std::fs::write(&a, format!("{}\n{}\n", doc("a1"), doc("a2"))).unwrap();
    std::fs::write(&b, format!("{}\n", doc("b1"))).unwrap();
    // A titled document repeated in a second file is kept once.
    let (j1, j2) = (d.path().join("one.jsonl"), d.path().join("two.jsonl"));
    std::fs::write(
        &j1,
        serde_json::json!({"id": "Paris", "text": doc("p")}).to_string(),
    )
    .unwrap();
    std::fs::write(
        &j2,
        serde_json::json!({"id": "Paris", "text": doc("q")}).to_string(),
    )
    .unwrap();
    let out = d.path().join("c.npz");
    let r = build(&[a, b, j1, j2], &out, &fake(None), &opts(16), &SILENT).unwrap();
    let kept: Vec<usize> = r.inputs.iter().map(|i| i.articles).collect();
    assert_eq!(kept, [2, 1, 1, 0]);
    assert_eq!(r.inputs[3].duplicates, 1);
}

#[test]
fn a_sentence_past_the_chunk_length_is_counted_where_cut_and_kept_with_split_long() {
    let d = tempfile::tempdir().unwrap();
    // One 40-clause sentence (about 1,700 characters: no full stop inside
    // the quote) among seven short ones.
    let long: Vec<String> = (0..40)
        .map(|i| format!("clause number {i} about topic {} goes on", i % 7))
        .collect();
    let mut text: String = (0..7)
        .map(|i| format!("Short sentence number {i} is here. "))
        .collect();
    text += &format!("He said \"{}\" and left.", long.join(", "));
    let p = d.path().join("one.jsonl");
    std::fs::write(
        &p,
        serde_json::json!({"id": "a", "text": text}).to_string() + "\n",
    )
    .unwrap();
    let total = text.split("He said").nth(1).unwrap().chars().count() + "He said".len();
    let r = build(
        std::slice::from_ref(&p),
        &d.path().join("cut.npz"),
        &fake(None),
        &opts(16),
        &SILENT,
    )
    .unwrap();
    let i = &r.inputs[0];
    assert_eq!((r.chunks, i.cut_sentences), (8, 1));
    // What was lost is what the 500-character chunk did not hold.
    let texts = std::fs::read_to_string(sibling(&d.path().join("cut.npz"), "texts.jsonl")).unwrap();
    let last: serde_json::Value = serde_json::from_str(texts.lines().last().unwrap()).unwrap();
    let kept = last["text"].as_str().unwrap().chars().count();
    assert!(
        kept <= 500 && i.cut_chars + kept < total && i.cut_chars + kept + 2 >= total,
        "{kept} {} {total}",
        i.cut_chars
    );
    assert!(
        i.summary()
            .contains("1 sentence(s) over the chunk length lost"),
        "{}",
        i.summary()
    );
    let o = BuildOptions {
        split_long: true,
        ..opts(16)
    };
    let r = build(&[p], &d.path().join("all.npz"), &fake(None), &o, &SILENT).unwrap();
    assert_eq!((r.inputs[0].cut_sentences, r.inputs[0].cut_chars), (0, 0));
    assert!(r.chunks >= 8 + 2 && r.split_long, "{}", r.chunks);
}

/// A dump's document count holds the pages skipped as redirects, other
/// namespaces and disambiguation pages too, so the articles and the skips
/// add up to it (it counted the rest only: "99 documents -> 96 articles
/// (skipped: 1 empty, 100 redirects, 7 disambiguation pages, 2 ...)").
#[test]
fn the_documents_of_a_dump_are_its_articles_and_skips() {
    let d = tempfile::tempdir().unwrap();
    let text: String = (0..8)
        .map(|k| format!("The letter is used in {k} words and names on day {k}. "))
        .collect();
    let xml = format!(
        r#"<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/">
  <page><title>Alpha</title><ns>0</ns><revision><text>{}</text></revision></page>
  <page><title>Beta</title><ns>0</ns><redirect title="Alpha" /><revision><text>#REDIRECT [[Alpha]]</text></revision></page>
  <page><title>Talk:Alpha</title><ns>1</ns><revision><text>Chat about the letter.</text></revision></page>
  <page><title>Gamma (disambiguation)</title><ns>0</ns><revision><text>Gamma may mean many things.</text></revision></page>
  <page><title>Delta</title><ns>0</ns><revision><text>Short.</text></revision></page>
</mediawiki>"#,
        text
    );
    let input = d.path().join("dump.xml");
    std::fs::write(&input, xml).unwrap();
    let out = d.path().join("c.npz");
    let r = build(&[input], &out, &fake(None), &opts(16), &SILENT).unwrap();
    let i = &r.inputs[0];
    let s = &i.skipped;
    let parts = i.articles
        + s.empty
        + s.redirects
        + s.other_namespaces
        + s.disambiguation
        + i.duplicates
        + i.too_short
        + i.over_limit;
    assert_eq!(
        (i.documents, parts, i.articles),
        (5, 5, 1),
        "{}",
        i.summary()
    );
    assert!(
        i.summary().contains("5 documents -> 1 articles"),
        "{}",
        i.summary()
    );
}

/// An output that is a folder or a device is refused before any text is
/// embedded (a folder was found out after the whole embedding; a device
/// had the corpus's other files written beside it, into /dev).
#[test]
fn an_output_that_is_not_a_file_is_refused_before_the_work() {
    let d = tempfile::tempdir().unwrap();
    let input = docs(d.path());
    let folder = d.path().join("adir.npz");
    std::fs::create_dir(&folder).unwrap();
    let enc = fake(None);
    // The build of `input` into `out`, which must fail: its error.
    let refused = |input: &Path, out: &Path| {
        build(&[input.to_path_buf()], out, &enc, &opts(16), &SILENT)
            .unwrap_err()
            .to_string()
    };
    let e = refused(&input, &folder);
    assert!(
        e.contains("adir.npz is a folder: --out names the .npz file"),
        "{e}"
    );
    assert_eq!(enc.calls.get(), 0);
    // Another corpus's texts file as --out (the archive went over it).
    let texts = d.path().join("other.texts.jsonl");
    std::fs::write(&texts, "{}\n").unwrap();
    let e = refused(&input, &texts);
    assert!(e.contains("a corpus's .texts.jsonl name"), "{e}");
    // Inputs of no document are said to be empty, not too short.
    let empty = d.path().join("empty.jsonl");
    std::fs::write(&empty, "").unwrap();
    let e = refused(&empty, &d.path().join("e.npz"));
    assert!(
        e.contains("hold no document") && e.contains("0 documents"),
        "{e}"
    );
    assert_eq!(std::fs::read_to_string(&texts).unwrap(), "{}\n");
    assert_eq!(enc.calls.get(), 0);
    let e = refused(&input, Path::new("/dev/null"));
    assert!(e.contains("/dev/null is not a regular file"), "{e}");
    assert!(!Path::new("/dev/null.parts").exists() && !Path::new("/dev/.null.lock").exists());
    let texts = d.path().join("c1.texts.jsonl");
    std::fs::create_dir(&texts).unwrap();
    let e = refused(&input, &d.path().join("c1.npz"));
    assert!(e.contains("c1.texts.jsonl is a folder"), "{e}");
    assert_eq!(enc.calls.get(), 0);
}

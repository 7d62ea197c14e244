//! `recur corpus build`: documents -> sentence chunks -> embeddings -> the
//! chunks `.npz` of SYSTEM.md (`vectors`, `article_indices`,
//! `chunk_indices`), the chunk texts in `NAME.texts.jsonl` beside it (for
//! the retrieval decoder and for reading what a window holds), and what
//! was kept and skipped in `NAME.build.json`.
//!
//! Embedding is the slow part, so it is saved as it goes: every
//! [`PART`] chunks land in `NAME.npz.parts/part-NNNNN.npy`. A build that is
//! stopped and run again with the same inputs, rules and encoder takes
//! the finished parts as they are and goes on from the first missing one;
//! any change to those makes a fingerprint differ and starts afresh. The
//! finished files are written atomically and the parts removed.

use crate::chunk::{chunks_counted, ChunkRules};
use crate::sources::{self, Format};
use crate::SentenceEncoder;
use recur_core::fsx::{write_atomic, write_json};
use recur_core::progress::{Progress, Units};
use recur_core::{Error, Result};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Chunks per saved part of a build in progress.
pub const PART: usize = 1024;

/// What turns chunks into vectors. [`SentenceEncoder`] is the one recur
/// uses; the trait keeps the build testable with a stand-in that fails
/// part-way, as a killed run would.
pub trait Embed {
    fn dim(&self) -> usize;
    /// Everything that decides the vectors (the model, its limits), for
    /// telling whether saved parts of an earlier run are still valid.
    fn identity(&self) -> String;
    /// Where the model came from, for the build report.
    fn source(&self) -> PathBuf;
    fn embed(&self, texts: &[&str], batch: usize) -> Result<Vec<f32>>;
}

impl Embed for SentenceEncoder {
    fn dim(&self) -> usize {
        self.dim
    }
    /// The contents of every file that decides the vectors: weights,
    /// tokenizer, configs and sentence-transformers modules (hashing the
    /// 90 MB of MiniLM takes a fraction of a second).
    fn identity(&self) -> String {
        let mut h = Sha256::new();
        h.update(format!("{}|{}|", self.dim, self.max_len).as_bytes());
        let mut files = Vec::new();
        let mut stack = vec![self.dir.clone()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                let p = e.path();
                // Folders as they are (a link to one could loop), files
                // through links (a Hugging Face snapshot links its blobs),
                // and only regular ones: a pipe would be waited on and
                // /dev/zero read without end.
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(p);
                } else if std::fs::metadata(&p).is_ok_and(|m| m.is_file())
                    && p.extension().is_some_and(|x| {
                        x == "json" || x == "safetensors" || x == "bin" || x == "txt"
                    })
                {
                    files.push(p);
                }
            }
        }
        files.sort();
        for f in files {
            h.update(
                f.strip_prefix(&self.dir)
                    .unwrap_or(&f)
                    .to_string_lossy()
                    .as_bytes(),
            );
            if let Ok(mut file) = std::fs::File::open(&f) {
                let _ = std::io::copy(&mut file, &mut h);
            }
        }
        recur_core::fsx::hex(&h.finalize())
    }
    fn source(&self) -> PathBuf {
        self.dir.clone()
    }
    fn embed(&self, texts: &[&str], batch: usize) -> Result<Vec<f32>> {
        self.encode(texts, batch)
    }
}

#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub rules: ChunkRules,
    /// Documents with fewer chunks are left out.
    pub min_chunks: usize,
    /// Stop adding documents once this many chunks are in.
    pub max_chunks: Option<usize>,
    /// Index of the first article.
    pub first_article: i64,
    /// Sentences per forward pass.
    pub batch: usize,
    /// Force every input's format.
    pub format: Option<Format>,
    /// Chunks per saved part (what a restart can lose at most).
    pub part: usize,
    /// A sentence over `rules.max_chars` goes on in further chunks instead
    /// of losing its end (the original's rule, the default, which the
    /// bundled corpus keeps so its figures stay comparable).
    pub split_long: bool,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            rules: ChunkRules::default(),
            min_chunks: 6,
            max_chunks: None,
            first_article: 0,
            batch: crate::encoder::DEFAULT_BATCH,
            format: None,
            part: PART,
            split_long: false,
        }
    }
}

/// A document that made it into the corpus, with its chunks.
#[derive(Debug, Clone)]
pub struct Article {
    /// `file-name:document-id`.
    pub key: String,
    pub chunks: Vec<String>,
}

/// Per input file: documents read, skipped by reason, and kept.
#[derive(Debug, Clone, Serialize)]
pub struct InputReport {
    pub path: PathBuf,
    pub documents: usize,
    #[serde(flatten)]
    pub skipped: sources::Skipped,
    /// Same id as a document before it (in this or an earlier file).
    pub duplicates: usize,
    /// Fewer than `min_chunks` chunks.
    pub too_short: usize,
    /// Not read because `max_chunks` was reached.
    pub over_limit: usize,
    pub articles: usize,
    pub chunks: usize,
    /// Sentences of the articles kept that were over `max_chars`, and the
    /// characters past the cut they lost (with `split_long`, only ends
    /// shorter than a chunk's minimum).
    pub cut_sentences: usize,
    pub cut_chars: usize,
}

impl InputReport {
    /// One line: documents read, kept, and skipped by reason.
    pub fn summary(&self) -> String {
        let s = &self.skipped;
        let skipped: Vec<String> = [
            (s.empty, "empty"),
            (s.redirects, "redirects"),
            (s.other_namespaces, "not articles"),
            (s.disambiguation, "disambiguation pages"),
            (self.duplicates, "duplicate ids"),
            (self.too_short, "too few chunks"),
            (self.over_limit, "over the chunk limit"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
        format!(
            "{}: {} documents -> {} articles, {} chunks{}{}",
            self.path.display(),
            self.documents,
            self.articles,
            self.chunks,
            if skipped.is_empty() {
                String::new()
            } else {
                format!(" (skipped: {})", skipped.join(", "))
            },
            if self.cut_sentences == 0 {
                String::new()
            } else {
                format!(
                    "; {} sentence(s) over the chunk length lost {} characters past the cut (--split-long keeps them, but for an end shorter than a chunk)",
                    self.cut_sentences, self.cut_chars
                )
            }
        )
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct BuildReport {
    pub out: PathBuf,
    pub inputs: Vec<InputReport>,
    pub articles: usize,
    pub chunks: usize,
    pub first_article: i64,
    pub min_chunks: usize,
    pub rules: ChunkRules,
    pub split_long: bool,
    pub encoder: PathBuf,
    /// SHA-256 of the encoder's files ([`Embed::identity`]): `recur serve`
    /// refuses a bank that another encoder of the same dimension built,
    /// whose neighbours would be meaningless.
    pub encoder_identity: String,
    pub dim: usize,
    /// Chunks taken from an earlier, interrupted run.
    pub resumed_chunks: usize,
    pub embed_seconds: f64,
    pub sentences_per_second: f64,
    /// SHA-256 of the `.npz` and the `.texts.jsonl` written with this
    /// report: the three files are written one after another, and a build
    /// stopped between two left a bank whose texts were another build's
    /// (`recur serve` checks them).
    pub npz_sha256: String,
    pub texts_sha256: String,
}

/// A line per input, then the file written and the speed.
impl std::fmt::Display for BuildReport {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        for i in &self.inputs {
            writeln!(f, "{}", i.summary())?;
        }
        writeln!(
            f,
            "{}: {} articles, {} chunks of dimension {}, texts in {}; {:.0} sentences/s",
            self.out.display(),
            self.articles,
            self.chunks,
            self.dim,
            sibling(&self.out, "texts.jsonl").display(),
            self.sentences_per_second
        )
    }
}

/// Reads and chunks every input; the same inputs and options always give
/// the same articles in the same order.
pub fn plan(inputs: &[PathBuf], opts: &BuildOptions) -> Result<(Vec<Article>, Vec<InputReport>)> {
    let mut seen = HashSet::new();
    let (mut articles, mut reports, mut total) = (Vec::new(), Vec::new(), 0usize);
    for path in inputs {
        let (docs, skipped) = sources::read(path, opts.format)?;
        let name = path
            .file_name()
            .map_or(String::new(), |n| n.to_string_lossy().to_string());
        let mut r = InputReport {
            path: path.clone(),
            // Every document the file holds, so that the skips and the
            // articles add up to it (redirects and the rest were left out).
            documents: docs.len()
                + skipped.empty
                + skipped.redirects
                + skipped.other_namespaces
                + skipped.disambiguation,
            skipped,
            duplicates: 0,
            too_short: 0,
            over_limit: 0,
            articles: 0,
            chunks: 0,
            cut_sentences: 0,
            cut_chars: 0,
        };
        for d in docs {
            if opts.max_chunks.is_some_and(|m| total >= m) {
                r.over_limit += 1;
                continue;
            }
            // Made-up ids (`line 7`) are unique only within their file.
            // A document too short to keep leaves its id to a later one.
            let key = if d.named {
                d.id.clone()
            } else {
                format!("{}\u{0}{}", path.display(), d.id)
            };
            if seen.contains(&key) {
                r.duplicates += 1;
                continue;
            }
            let (c, cut) = chunks_counted(&d.text, opts.rules, opts.split_long);
            if c.len() < opts.min_chunks.max(1) {
                r.too_short += 1;
                continue;
            }
            seen.insert(key);
            r.cut_sentences += cut.sentences;
            r.cut_chars += cut.chars;
            r.articles += 1;
            r.chunks += c.len();
            total += c.len();
            articles.push(Article {
                key: format!("{name}:{}", d.id),
                chunks: c,
            });
        }
        reports.push(r);
    }
    Ok((articles, reports))
}

fn parts_dir(out: &Path) -> PathBuf {
    let mut s = out.as_os_str().to_owned();
    s.push(".parts");
    PathBuf::from(s)
}

/// `corpus.npz` -> `corpus.<suffix>` beside it.
pub fn sibling(out: &Path, suffix: &str) -> PathBuf {
    let stem = out
        .file_stem()
        .map_or("corpus".into(), |s| s.to_string_lossy().to_string());
    out.with_file_name(format!("{stem}.{suffix}"))
}

/// What decides the embeddings: the encoder, the part size and every
/// chunk text.
fn fingerprint(enc: &dyn Embed, part: usize, batch: usize, texts: &[&str]) -> String {
    let mut h = Sha256::new();
    // The batch size changes padding, and so the last bits of the vectors.
    h.update(format!("{}|{part}|{batch}|", enc.identity()).as_bytes());
    for t in texts {
        h.update(t.as_bytes());
        h.update([0u8]);
    }
    recur_core::fsx::hex(&h.finalize())
}

/// Builds the corpus into `out` (and its `.texts.jsonl` and `.build.json`).
///
/// ```no_run
/// # fn main() -> recur_core::Result<()> {
/// use recur_text::{corpus, SentenceEncoder};
/// let enc = SentenceEncoder::load("models/all-MiniLM-L6-v2".as_ref(), &candle_core::Device::Cpu)?;
/// let inputs = vec!["articles.jsonl".into()];
/// let opts = corpus::BuildOptions::default();
/// let r = corpus::build(&inputs, "chunks.npz".as_ref(), &enc, &opts, &recur_core::progress::SILENT)?;
/// print!("{r}");
/// # Ok(())
/// # }
/// ```
pub fn build(
    inputs: &[PathBuf],
    out: &Path,
    enc: &dyn Embed,
    opts: &BuildOptions,
    progress: &dyn Progress,
) -> Result<BuildReport> {
    // The output (and its .texts.jsonl and .build.json) must not replace
    // an input, nor land in a model directory.
    let siblings = [
        out.to_path_buf(),
        sibling(out, "texts.jsonl"),
        sibling(out, "build.json"),
    ];
    let ins: Vec<&Path> = inputs.iter().map(PathBuf::as_path).collect();
    let outs: Vec<&Path> = siblings.iter().map(PathBuf::as_path).collect();
    recur_core::fsx::check_io(&ins, &[], &outs)?;
    // Its build record names it in JSON, which holds text only (the
    // embedding ran, then the record failed, its files apart).
    if out.to_str().is_none() {
        return Err(Error::Msg(recur_core::fsx::not_utf8(out)));
    }
    // The name of another corpus's texts or record: the archive went over
    // it (and that corpus's bank stopped loading).
    let name = out.file_name().map(|n| n.to_string_lossy().to_lowercase());
    if let Some(side) = name.as_deref().and_then(|n| {
        ["texts.jsonl", "build.json"]
            .into_iter()
            .find(|s| n.ends_with(&format!(".{s}")))
    }) {
        return Err(Error::Msg(format!(
            "{}: --out names the .npz file to write, and this is a corpus's .{side} name (it \
             would be written over with an archive): give NAME.npz",
            out.display()
        )));
    }
    // A corpus is three files and a parts folder side by side: a device
    // as the output (`--out /dev/null`) littered /dev with the others, and
    // a folder (or one of the files beside it) was found out only after
    // the whole embedding.
    for f in &siblings {
        if let Some(m) = std::fs::metadata(f).ok().filter(|m| !m.is_file()) {
            let what = if m.is_dir() {
                "a folder"
            } else {
                "not a regular file (a device or a pipe)"
            };
            return Err(Error::Msg(format!(
                "{} is {what}: --out names the .npz file to write (its .texts.jsonl and \
                 .build.json go beside it)",
                f.display()
            )));
        }
    }
    // One build at a time writes these files and the parts folder: two
    // deleted each other's parts and left last-writer-wins outputs.
    let _hold = recur_core::dirwrite::hold_outputs(out)?;
    let (articles, reports) = plan(inputs, opts)?;
    if articles.is_empty() {
        let why: Vec<String> = reports.iter().map(InputReport::summary).collect();
        // Inputs of no document at all are not "too short" ones.
        let headline = if reports.iter().all(|r| r.documents == 0) {
            "the inputs hold no document (empty files?)".to_string()
        } else {
            format!(
                "no document was kept (each needs at least {} chunks)",
                opts.min_chunks.max(1)
            )
        };
        return Err(Error::Msg(format!(
            "{headline}, so there is nothing to build:\n  {}",
            why.join("\n  ")
        )));
    }
    // The articles are numbered from first_article on: the last number
    // must fit (past i64's end they wrapped to negative ones).
    if i64::try_from(articles.len() - 1)
        .ok()
        .and_then(|k| opts.first_article.checked_add(k))
        .is_none()
    {
        return Err(Error::Msg(format!(
            "--first-article {} numbers {} articles past the largest index, {}: give a \
             smaller first index",
            opts.first_article,
            articles.len(),
            i64::MAX
        )));
    }
    let texts: Vec<&str> = articles
        .iter()
        .flat_map(|a| a.chunks.iter().map(String::as_str))
        .collect();
    let n = texts.len();
    let (dim, part) = (enc.dim(), opts.part.max(1));
    let parts = parts_dir(out);
    // Only recur's own files are ever removed from it: a folder of that
    // name holding others (it was deleted whole) is refused.
    refuse_foreign_parts(&parts)?;
    let fp = fingerprint(enc, part, opts.batch, &texts);
    let manifest = parts.join("fingerprint");
    let same = std::fs::read_to_string(&manifest).is_ok_and(|s| s.trim() == fp);
    if !same {
        if parts.exists() {
            progress.note(&format!(
                "{}: inputs, encoder or batch size changed since the interrupted build; starting afresh",
                parts.display()
            ));
            remove_parts(&parts)?;
        }
        std::fs::create_dir_all(&parts).map_err(|e| Error::io(&parts, e))?;
        write_atomic(&manifest, fp.as_bytes())?;
    }
    let mut vectors: Vec<f32> = Vec::with_capacity(n * dim);
    let n_parts = n.div_ceil(part);
    let mut first_missing = 0;
    for k in 0..n_parts {
        let p = parts.join(format!("part-{k:05}.npy"));
        let rows = part.min(n - k * part);
        let Ok(t) = candle_core::Tensor::read_npy(&p) else {
            break;
        };
        match t.flatten_all().and_then(|t| t.to_vec1::<f32>()) {
            Ok(v) if v.len() == rows * dim => vectors.extend(v),
            _ => break,
        }
        first_missing = k + 1;
    }
    let resumed = vectors.len() / dim;
    if resumed > 0 {
        progress.note(&format!(
            "resuming: {resumed} of {n} chunks were embedded by an earlier run"
        ));
    }
    progress.start("embedding chunks", n as u64, Units::Items);
    progress.advance(resumed as u64, "");
    let start = Instant::now();
    for k in first_missing..n_parts {
        let range = k * part..(k * part + part).min(n);
        let v = enc.embed(&texts[range.clone()], opts.batch)?;
        recur_data::npz::write_npy(
            &parts.join(format!("part-{k:05}.npy")),
            &v,
            &[range.len(), dim],
        )?;
        vectors.extend(v);
        progress.advance(range.len() as u64, "");
        // Between parts, each saved: a later build resumes after it.
        if progress.stop_requested() {
            progress.finish();
            return Err(recur_core::progress::interrupted());
        }
    }
    progress.finish();
    let secs = start.elapsed().as_secs_f64();
    let (mut art, mut chk) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let mut lines = String::new();
    for (i, a) in articles.iter().enumerate() {
        let id = opts.first_article + i as i64;
        for (j, t) in a.chunks.iter().enumerate() {
            art.push(id);
            chk.push(j as i64);
            let line = serde_json::json!({"article": id, "chunk": j, "doc": a.key, "text": t});
            lines.push_str(&line.to_string());
            lines.push('\n');
        }
    }
    recur_data::npz::write_chunks(out, &vectors, dim, &art, &chk)?;
    write_atomic(&sibling(out, "texts.jsonl"), lines.as_bytes())?;
    let report = BuildReport {
        out: out.to_path_buf(),
        inputs: reports,
        articles: articles.len(),
        chunks: n,
        first_article: opts.first_article,
        min_chunks: opts.min_chunks,
        rules: opts.rules,
        split_long: opts.split_long,
        encoder: enc.source(),
        encoder_identity: enc.identity(),
        dim,
        resumed_chunks: resumed,
        embed_seconds: secs,
        sentences_per_second: (n - resumed) as f64 / secs.max(1e-9),
        npz_sha256: recur_core::fsx::sha256_file(out)?,
        texts_sha256: recur_core::fsx::sha256_bytes(lines.as_bytes()),
    };
    write_json(&sibling(out, "build.json"), &report)?;
    remove_parts(&parts)?;
    Ok(report)
}

/// Whether `name` is a file an embedding build writes in its parts folder:
/// the fingerprint, a part, or the temporary file of an atomic write.
fn is_part_file(name: &str) -> bool {
    name == "fingerprint"
        || name.starts_with(".tmp")
        || (name.starts_with('.') && name.contains(".recur-"))
        || name
            .strip_prefix("part-")
            .and_then(|n| n.strip_suffix(".npy"))
            .is_some_and(|k| !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()))
}

/// Refuses a parts folder that holds files a build did not write.
fn refuse_foreign_parts(parts: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(parts) else {
        return Ok(());
    };
    let mut foreign: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| !is_part_file(n))
        .collect();
    if foreign.is_empty() {
        return Ok(());
    }
    foreign.sort();
    Err(Error::Msg(format!(
        "{} holds files an embedding build did not write ({}): it is where this build keeps \
         its parts; move them out, or choose another --out",
        parts.display(),
        foreign.join(", ")
    )))
}

/// Removes a build's files from its parts folder, then the folder (a link
/// of that name: the link alone).
fn remove_parts(parts: &Path) -> Result<()> {
    if parts.is_symlink() {
        return std::fs::remove_file(parts).map_err(|e| Error::io(parts, e));
    }
    refuse_foreign_parts(parts)?;
    if let Ok(entries) = std::fs::read_dir(parts) {
        for e in entries.flatten() {
            if is_part_file(&e.file_name().to_string_lossy()) {
                std::fs::remove_file(e.path()).map_err(|err| Error::io(e.path(), err))?;
            }
        }
    }
    match std::fs::remove_dir(parts) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(parts, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ids across files: a document too short to keep leaves its id to a
    /// later one; speeches are named by their place in their file, so two
    /// files of speeches with the same groups are both kept; a JSON-lines
    /// document with a null or empty id is named by its title, else its
    /// line.
    #[test]
    fn ids_keep_one_document_each_and_only_kept_documents_claim_them() {
        let d = tempfile::tempdir().unwrap();
        let long = "One sentence here. Two sentences here. Three sentences here. \
                    Four sentences here. Five sentences here. Six sentences here.";
        let write = |name: &str, body: String| {
            let p = d.path().join(name);
            std::fs::write(&p, body).unwrap();
            p
        };
        let one = write(
            "one.jsonl",
            "{\"id\": \"short\", \"text\": \"Too short here.\"}\n".into(),
        );
        let two = write(
            "two.jsonl",
            format!(
                "{{\"id\": \"short\", \"text\": \"{long}\"}}\n\
                 {{\"id\": \"\", \"text\": \"{long} Seven.\"}}\n\
                 {{\"id\": \"\", \"text\": \"{long} Eight.\"}}\n\
                 {{\"id\": null, \"title\": \"Titled\", \"text\": \"{long} Nine.\"}}\n"
            ),
        );
        let speeches = |name: &str, extra: &str| {
            write(
                name,
                format!("[{{\"name\": \"a\", \"speeches\": [\"{long} {extra}\"]}}]"),
            )
        };
        let (s1, s2) = (speeches("s1.json", "Alpha."), speeches("s2.json", "Beta."));
        let (articles, reports) = plan(&[one, two, s1, s2], &BuildOptions::default()).unwrap();
        let keys: Vec<&str> = articles.iter().map(|a| a.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "two.jsonl:short",
                "two.jsonl:line 2",
                "two.jsonl:line 3",
                "two.jsonl:Titled",
                "s1.json:a:0",
                "s2.json:a:0"
            ]
        );
        assert_eq!((reports[0].too_short, reports[1].duplicates), (1, 0));
    }

    /// A build removes only what it wrote in `OUT.npz.parts` (the whole
    /// folder went, a user's file in it too), and refuses a folder of that
    /// name that holds other files; a link of that name goes alone.
    #[test]
    fn only_a_builds_own_part_files_are_removed() {
        let d = tempfile::tempdir().unwrap();
        let parts = parts_dir(&d.path().join("x.npz"));
        std::fs::create_dir(&parts).unwrap();
        for f in [
            "fingerprint",
            "part-00000.npy",
            "part-00001.npy",
            ".tmpAb12",
        ] {
            std::fs::write(parts.join(f), b"x").unwrap();
        }
        refuse_foreign_parts(&parts).unwrap();
        remove_parts(&parts).unwrap();
        assert!(!parts.exists());
        std::fs::create_dir(&parts).unwrap();
        std::fs::write(parts.join("part-00000.npy"), b"x").unwrap();
        std::fs::write(parts.join("mine.txt"), b"precious").unwrap();
        let e = refuse_foreign_parts(&parts).unwrap_err().to_string();
        assert!(e.contains("mine.txt") && e.contains("did not write"), "{e}");
        assert!(remove_parts(&parts).is_err());
        assert!(parts.join("mine.txt").exists() && parts.join("part-00000.npy").exists());
        let elsewhere = d.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        std::fs::write(elsewhere.join("kept.txt"), b"k").unwrap();
        let link = parts_dir(&d.path().join("y.npz"));
        std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
        remove_parts(&link).unwrap();
        assert!(!link.exists() && elsewhere.join("kept.txt").exists());
    }
}

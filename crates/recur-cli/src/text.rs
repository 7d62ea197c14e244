//! `recur models`, `recur embed` and `recur corpus`: argument handling and
//! output for text in and out; the work is in recur_text.

use crate::{CorpusCmd, ModelsCmd};
use anyhow::{Context, Result};
use candle_core::Device;
use recur_text::corpus::{self, BuildOptions};
use recur_text::fetch::{self, MODELS};
use recur_text::SentenceEncoder;
use std::io::Write;
use std::path::PathBuf;

/// Loads `--encoder NAME|DIR`, fetching a known model on first use.
pub fn encoder(spec: &str, dev: &Device, progress: bool) -> Result<SentenceEncoder> {
    let dir = fetch::resolve_encoder(spec, true, crate::bars::reporter(progress))?;
    Ok(SentenceEncoder::load(&dir, dev)?)
}

pub fn models(cmd: ModelsCmd, progress: bool) -> Result<()> {
    match cmd {
        ModelsCmd::Fetch { name, force } => {
            let m = fetch::known(&name).with_context(|| {
                let names: Vec<&str> = MODELS.iter().map(|m| m.name).collect();
                format!(
                    "`{name}` is not a model recur knows ({}); any sentence-transformers folder works with --encoder DIR",
                    names.join(", ")
                )
            })?;
            let dir = fetch::fetch_model(m, force, crate::bars::reporter(progress))?;
            outln!(
                "{} ({}-D, {}) is in {}",
                m.name,
                m.dim,
                m.licence,
                dir.display()
            );
            Ok(())
        }
        ModelsCmd::List => {
            outln!("cache: {}", fetch::recur_home().join("models").display());
            for m in MODELS {
                let state = if fetch::is_fetched(m) {
                    format!("fetched, {}", fetch::cache_dir(m).display())
                } else {
                    "not fetched".into()
                };
                outln!("{:<18} {:>4}-D  {:<10}  {state}", m.name, m.dim, m.licence);
            }
            Ok(())
        }
    }
}

/// `recur embed`: texts from the arguments or standard input (one per
/// line) to JSON lines on standard output, or a float32 `.npy`.
pub fn embed(
    encoder_spec: &str,
    texts: Vec<String>,
    output: Option<PathBuf>,
    batch: usize,
    dev: &Device,
    progress: bool,
) -> Result<()> {
    if let Some(out) = &output {
        // Never into the encoder's folder (its model.safetensors), nor into
        // a model directory.
        let folder = std::path::Path::new(encoder_spec);
        if folder.is_dir() {
            recur_core::fsx::refuse_inside(folder, out)?;
        }
        recur_core::fsx::refuse_into_model_dir(out)?;
        // Nor over the file the texts come from on standard input
        // (`recur embed --output in.txt < in.txt` replaced the texts).
        if texts.is_empty() && stdin_is(out) {
            anyhow::bail!(
                "the output {} is the file standard input reads the texts from: write it elsewhere",
                out.display()
            );
        }
        note_format(out, &["npy"], "a NumPy .npy array");
    }
    let texts = if texts.is_empty() {
        recur_text::encoder::read_texts(std::io::stdin().lock(), "standard input")?
    } else {
        texts
    };
    recur_text::encoder::check_texts(&texts)?;
    let enc = encoder(encoder_spec, dev, progress)?;
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let vecs = enc.encode(&refs, batch)?;
    match output {
        Some(path) => {
            recur_data::npz::write_npy(&path, &vecs, &[texts.len(), enc.dim])?;
            errln!(
                "{} embeddings of dimension {} written to {}",
                texts.len(),
                enc.dim,
                crate::shown(&path)
            );
        }
        None => {
            // Flushed here: the buffer's own flush on drop ignores an error,
            // and a full disk behind `> out.jsonl` exited 0 with half a line.
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            let written = texts
                .iter()
                .zip(vecs.chunks_exact(enc.dim))
                .try_for_each(|(t, v)| {
                    let line = serde_json::json!({ "text": t, "embedding": v });
                    writeln!(out, "{line}")
                })
                .and_then(|_| out.flush());
            written.map_err(|e| anyhow::anyhow!("standard output: {e}"))?;
        }
    }
    Ok(())
}

pub fn corpus(cmd: CorpusCmd, dev: &Device, progress: bool) -> Result<()> {
    match cmd {
        CorpusCmd::Fetch { dest } => {
            let dest = dest.unwrap_or_else(fetch::sources_dir);
            let files = fetch::fetch_sources(&dest, crate::bars::reporter(progress))?;
            for (f, s) in files.iter().zip(fetch::CORPUS_SOURCES) {
                outln!("{}\n    {}", f.display(), s.about);
            }
            outln!(
                "Wikipedia text is CC BY-SA (attribute Wikipedia's contributors when you share what you build from it)."
            );
            Ok(())
        }
        CorpusCmd::Build {
            input,
            out,
            format,
            encoder: spec,
            min_chunks,
            max_chunks,
            first_article,
            batch_size,
            split_long,
        } => {
            let enc = encoder(&spec, dev, progress)?;
            let opts = BuildOptions {
                min_chunks,
                max_chunks,
                first_article,
                batch: batch_size,
                format,
                split_long,
                ..Default::default()
            };
            note_format(&out, &["npz"], "a NumPy .npz archive");
            let r = corpus::build(&input, &out, &enc, &opts, crate::bars::reporter(progress))?;
            out!("{r}");
            Ok(())
        }
    }
}

/// Whether standard input reads the file at `path` (the same device and
/// inode); false where that cannot be told.
fn stdin_is(path: &std::path::Path) -> bool {
    let stdin = std::path::Path::new("/dev/stdin");
    std::fs::metadata(stdin).is_ok_and(|m| m.is_file()) && recur_core::fsx::same_inode(stdin, path)
}

/// Says so on standard error when an output's name does not end in one of
/// `exts` (any case): the file will hold `what` all the same.
pub fn note_format(path: &std::path::Path, exts: &[&str], what: &str) {
    if !named_as(path, exts) && !recur_core::fsx::is_stdout(path) {
        errln!(
            "note: {} will hold {what}, whatever its name says",
            path.display()
        );
    }
}

/// Whether `path` ends in one of `exts`, in any case.
fn named_as(path: &std::path::Path, exts: &[&str]) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| exts.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

#[cfg(test)]
mod tests {
    use super::named_as;
    use std::path::Path;

    #[test]
    fn an_output_is_named_for_its_format_in_any_case() {
        let tables = recur_data::output::TABLE_EXTENSIONS;
        assert!(named_as(Path::new("a.CSV"), tables) && named_as(Path::new("p.pq"), tables));
        assert!(!named_as(Path::new("a.json"), tables) && !named_as(Path::new("a"), tables));
        assert!(named_as(Path::new("v.NPY"), &["npy"]));
    }
}

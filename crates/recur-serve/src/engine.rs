//! The compute side of the service, apart from HTTP (as in
//! text-embeddings-inference): the loaded models, and the one thread that
//! runs them. Requests arrive as [`Job`]s on a bounded queue; the thread
//! takes the jobs waiting (up to `max_batch`, and up to [`BATCH_CHARS`]
//! of chat text: the oldest, then every later one that fits, so a short
//! request passes long ones that fill a batch) and runs them together, so
//! requests that arrive together
//! share one encoder pass, one LVM pass per model and one matrix product
//! over the bank. Every stage is timed for
//! the batch, and each request reports the times of the batch it ran in.
//!
//! Sentence embeddings are kept in an LRU cache keyed by the text: a chat
//! client sends its earlier messages again with every turn, and only the
//! new one needs the encoder.

use crate::api::{ApiError, LatencyBreakdown, NeighbourOut};
use crate::bank::{said_key, Bank};
use crate::config::ServeConfig;
use crate::metrics::Metrics;
use candle_core::{Device, Tensor};
use lru::LruCache;
use recur_core::{Error, Result};
use recur_deploy::{Prediction, Predictor, Series};
use recur_models::Lvm;
use recur_text::SentenceEncoder;
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};

pub type Reply<T> = oneshot::Sender<std::result::Result<T, ApiError>>;

/// A request for the models.
pub enum Job {
    Chat {
        texts: Vec<String>,
        model: usize,
        top_k: usize,
        /// Leave `texts` out of the answer and the neighbours.
        exclude_context: bool,
        queued: Instant,
        reply: Reply<ChatAnswer>,
    },
    Infer {
        /// `[n, D]` row-major, `n >= 1`.
        context: Vec<f32>,
        model: usize,
        queued: Instant,
        reply: Reply<InferAnswer>,
    },
    Classify {
        /// Per window, its rows before smoothing and scaling, `[rows, F]`
        /// row-major, oldest first; each is scored at its last row. For a
        /// whole-series model, each is one series `[T, F]`, scored whole.
        series: Vec<Vec<f64>>,
        queued: Instant,
        reply: Reply<ClassifyAnswer>,
    },
    /// A real forward pass of every loaded model.
    Health { reply: Reply<()> },
}

/// Characters of chat text one batch takes at most (a job larger than
/// that runs alone). Without a bound, 64 requests of 10,000 characters
/// each made one batch of some 40 s of encoding: each of them timed out at
/// 10 s but was computed to the end, and a plain request behind them
/// waited for all of it. A batch of typical turns (64 x 3 messages of a
/// few hundred characters) stays under it.
pub const BATCH_CHARS: usize = 65_536;

/// A request of at most this many characters of text (a chat turn of a
/// few messages; every request without text) is short: when short and
/// long requests wait together, every other batch takes the short ones
/// alone, so a short request waits for the batch in progress, not also
/// for a batch of long ones of its own (2.6 s at p50 behind eight clients
/// of 5 x 2,000-character messages).
pub const SHORT_CHARS: usize = 2_000;

impl Job {
    /// The characters of text the job asks to encode (0 but for chats).
    fn chars(&self) -> usize {
        match self {
            Job::Chat { texts, .. } => texts.iter().map(|t| t.chars().count()).sum(),
            _ => 0,
        }
    }

    fn is_abandoned(&self) -> bool {
        match self {
            Job::Chat { reply, .. } => reply.is_closed(),
            Job::Infer { reply, .. } => reply.is_closed(),
            Job::Classify { reply, .. } => reply.is_closed(),
            Job::Health { reply } => reply.is_closed(),
        }
    }
}

/// The engine thread's queue and look-ahead window. When the thread
/// leaves (the server shut down, or a batch panicked), the queue is closed,
/// so later requests are told at once, and what it held stops counting as
/// waiting: without that, a thread that died with a full window left the
/// server refusing every request as busy, for good.
struct Held {
    rx: mpsc::Receiver<Job>,
    pending: VecDeque<Job>,
    metrics: Arc<Metrics>,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.rx.close();
        let mut n = self.pending.len();
        // Until None, not until empty: a send that had taken its permit
        // before the close still arrives (the engine's thread is outside
        // the runtime, so blocking here is allowed).
        while self.rx.blocking_recv().is_some() {
            n += 1;
        }
        self.metrics
            .waiting
            .fetch_sub(n, std::sync::atomic::Ordering::SeqCst);
    }
}

pub struct ChatAnswer {
    pub response: String,
    pub confidence: f32,
    pub neighbours: Vec<NeighbourOut>,
    pub ctx_fill_mode: &'static str,
    pub breakdown: LatencyBreakdown,
    pub sentences: usize,
    pub batch_size: usize,
}

pub struct InferAnswer {
    pub predicted: Vec<f32>,
    pub ctx_fill_mode: &'static str,
    pub lvm_ms: f64,
}

pub struct ClassifyAnswer {
    pub predictions: Vec<Prediction>,
    pub ms: f64,
}

/// What `/info` shows and the handlers check requests against; fixed once
/// the models are loaded.
#[derive(Debug, Clone, Serialize)]
pub struct Info {
    pub version: &'static str,
    pub device: String,
    /// The models' products: `f32`, or `bf16` and the units that run it
    /// (`bf16 (AVX512-BF16)`, `bf16 (f32 units)` where the CPU has none).
    pub precision: String,
    pub default_model: String,
    pub models: Vec<ModelInfo>,
    /// The encoder and the bank, loaded only when LVMs are served.
    pub encoder: Option<EncoderInfo>,
    pub bank: Option<BankInfo>,
    pub classifier: Option<ClassifierInfo>,
    pub limits: crate::config::Limits,
    pub top_k: usize,
    /// `decoder.exclude_context`: a request's default.
    pub exclude_context: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ModelInfo {
    pub name: String,
    pub kind: String,
    pub path: String,
    pub context: usize,
    pub dim: usize,
    pub d_model: usize,
    pub num_layers: usize,
    pub params: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct EncoderInfo {
    pub path: String,
    pub kind: String,
    pub dim: usize,
    pub max_tokens: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct BankInfo {
    pub sentences: usize,
    /// Rows of the files left out as repeats of an earlier text.
    pub repeats: usize,
    pub dim: usize,
    pub search: String,
    pub files: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClassifierInfo {
    pub path: String,
    pub features: Vec<String>,
    pub sequence_length: usize,
    /// The fewest rows a window must send: the LSTM's window or the trees'
    /// lags, plus the smoothing's warm-up.
    pub min_rows: usize,
    /// The model whose calibrated probability is `probability`.
    pub deployed: String,
    pub threshold: f64,
    pub has_trees: bool,
    /// The config's time column, echoed per window when rows send it.
    pub time_column: Option<String>,
    /// The training scaler, to refuse values the models cannot read.
    #[serde(skip)]
    pub scaler: recur_data::Scaler,
    /// The training rows' distributions (`reference.json`), for drift.
    #[serde(skip)]
    pub reference: Option<Arc<recur_data::drift::Reference>>,
    #[serde(skip)]
    pub drift_thresholds: recur_core::config::DriftThresholds,
    /// Whether `/metrics` reports drift of the rows `/v1/classify` has seen.
    pub drift_monitored: bool,
    /// The smoothing's span and warm-up, to keep rows for drift as the
    /// model reads them.
    #[serde(skip)]
    pub ewma_span: usize,
    #[serde(skip)]
    pub warmup_rows: usize,
    /// `rows` (windows of a time series, sent as `window`/`windows`) or
    /// `sequences` (whole series, sent as `sequence`/`sequences`).
    pub layout: recur_core::config::Layout,
    /// The classes, in the order of `class_probabilities` (more than two).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub classes: Vec<String>,
    /// The one length a whole-series model takes (`None`: any).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fixed_length: Option<usize>,
}

/// The loaded models; owned by the compute thread.
pub struct Engine {
    encoder: Option<SentenceEncoder>,
    /// The encoder's output width (0 without LVMs).
    dim: usize,
    models: Vec<Lvm>,
    classifier: Option<Predictor>,
    bank: Option<Bank>,
    cache: LruCache<String, Arc<[f32]>>,
    dev: Device,
    max_batch: usize,
    /// Queued jobs held to choose batches from ([`lookahead`]).
    lookahead: usize,
}

fn dev_name(dev: &Device) -> String {
    match dev {
        Device::Cpu => "cpu".into(),
        Device::Cuda(_) => "cuda".into(),
        Device::Metal(_) => "metal".into(),
    }
}

/// Refuses a bank that another encoder built, where its `.build.json`
/// records the encoder's identity (banks built before it was recorded are
/// taken on their dimension alone): a bank of the same dimension from
/// another encoder loads, and every neighbour it gives is meaningless.
fn same_encoder(
    banks: &[std::path::PathBuf],
    encoder: &SentenceEncoder,
    dir: &std::path::Path,
) -> Result<()> {
    use recur_text::corpus::Embed;
    let mut own = None;
    for npz in banks {
        let (report, Some(v)) = crate::bank::build_record(npz) else {
            continue;
        };
        let Some(want) = v["encoder_identity"].as_str() else {
            continue;
        };
        let own = own.get_or_insert_with(|| encoder.identity());
        if want != own.as_str() {
            return Err(Error::Config {
                at: "bank".into(),
                msg: format!(
                    "{} was built with another encoder ({}, as {} records) than the one served ({}): \
                     its neighbours would not match the questions; build the bank with this encoder \
                     (`recur corpus build --encoder ...`) or set `encoder:` to the one that built it",
                    npz.display(),
                    v["encoder"].as_str().unwrap_or("unnamed"),
                    report.display(),
                    dir.display()
                ),
            });
        }
    }
    Ok(())
}

impl Engine {
    /// Loads everything the config names and checks that the dimensions
    /// agree: encoder = bank = every model's input.
    pub fn load(cfg: &ServeConfig, dev: &Device) -> Result<(Engine, Info)> {
        // The encoder and the bank serve the LVMs; a classifier alone needs neither.
        let (encoder, bank, enc_dir) = if cfg.models.is_empty() {
            (None, None, None)
        } else {
            let enc_dir = recur_text::fetch::resolve_encoder(
                &cfg.encoder,
                false,
                &recur_core::progress::SILENT,
            )?;
            let encoder = SentenceEncoder::load(&enc_dir, dev)?;
            // A search asks for top_k and the request's own sentences.
            let max_k = cfg.limits.max_top_k + 64;
            let bank = Bank::load(&cfg.bank, cfg.decoder.exact_max, max_k)?;
            if bank.dim != encoder.dim {
                return Err(Error::Config {
                    at: "bank".into(),
                    msg: format!(
                        "the bank holds {}-D vectors but the encoder {} makes {}-D ones; build the bank with that encoder",
                        bank.dim,
                        enc_dir.display(),
                        encoder.dim
                    ),
                });
            }
            same_encoder(&cfg.bank, &encoder, &enc_dir)?;
            (Some(encoder), Some(bank), Some(enc_dir))
        };
        let dim = encoder.as_ref().map_or(0, |e| e.dim);
        let mut models = Vec::new();
        let mut infos = Vec::new();
        for m in &cfg.models {
            // What a crashed write left aside (of it, or of the directory
            // it sits in) is put back first.
            recur_core::dirwrite::repair(&m.path);
            if !m.path.exists() {
                return Err(Error::data(
                    m.path.display().to_string(),
                    format!(
                        "model {:?}: no such directory (`recur demo` trains runs/demo/lvm; `recur lvm train` any other)",
                        m.name
                    ),
                ));
            }
            let lvm = recur_deploy::model_dir::load_lvm(&m.path, dev)?;
            if lvm.arch.input_dim != dim {
                return Err(Error::Config {
                    at: format!("models.{}", m.name),
                    msg: format!(
                        "{} takes {}-D vectors but the encoder makes {}-D ones",
                        m.path.display(),
                        lvm.arch.input_dim,
                        dim
                    ),
                });
            }
            infos.push(ModelInfo {
                name: m.name.clone(),
                kind: lvm.arch.kind.to_string(),
                path: m.path.display().to_string(),
                context: lvm.arch.context,
                dim: lvm.arch.input_dim,
                d_model: lvm.arch.d_model,
                num_layers: lvm.arch.num_layers,
                params: lvm.n_params(),
            });
            models.push(lvm);
        }
        let classifier = match &cfg.classifier {
            Some(p) => {
                // An LVM named as the classifier: where it goes in this
                // file, not the commands that score it elsewhere.
                if recur_deploy::model_dir::holds_lvm(p) {
                    return Err(Error::Config {
                        at: "classifier".into(),
                        msg: format!(
                            "{} holds a Job B model (an LVM), not a classifier: list it under \
                             `models:` (`- {{name: NAME, path: {}}}`), and give `classifier:` a \
                             folder `recur train` wrote",
                            p.display(),
                            p.display()
                        ),
                    });
                }
                Some(Predictor::load(p, dev)?)
            }
            None => None,
        };
        // A reference over other features (an edited directory) is ignored.
        let classifier_reference = match (&cfg.classifier, &classifier) {
            (Some(_), Some(c)) => recur_data::drift::Reference::read(&c.folder)?.and_then(|r| {
                let names: Vec<&String> = r.features.iter().map(|f| &f.feature).collect();
                let want: Vec<&String> = c.features().iter().collect();
                (names == want).then(|| Arc::new(r))
            }),
            _ => None,
        };
        let info = Info {
            version: env!("CARGO_PKG_VERSION"),
            device: dev_name(dev),
            precision: if cfg.precision == "bf16" {
                let units = recur_kernels::precision::bf16_units().unwrap_or("f32 units");
                format!("bf16 ({units})")
            } else {
                "f32".into()
            },
            default_model: cfg.default_model_name().to_string(),
            models: infos,
            encoder: match (&encoder, &enc_dir) {
                (Some(e), Some(d)) => Some(EncoderInfo {
                    path: d.display().to_string(),
                    kind: e.kind.to_string(),
                    dim: e.dim,
                    max_tokens: e.max_len,
                }),
                _ => None,
            },
            bank: bank.as_ref().map(|bank| BankInfo {
                sentences: bank.len(),
                repeats: bank.repeats,
                dim: bank.dim,
                search: bank.method().to_string(),
                files: bank
                    .sources
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect(),
            }),
            classifier: classifier.as_ref().map(|c| ClassifierInfo {
                path: cfg
                    .classifier
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
                features: c.features().to_vec(),
                sequence_length: c.sequence_length(),
                min_rows: c.min_rows(),
                deployed: c.deployed().to_string(),
                threshold: c.threshold(),
                has_trees: c.trees.is_some(),
                time_column: c.dir.config.data.time_column.clone(),
                scaler: c.dir.scaler.clone(),
                reference: classifier_reference.clone(),
                drift_thresholds: c.dir.config.drift.clone(),
                drift_monitored: classifier_reference.is_some(),
                ewma_span: c.ewma_span(),
                warmup_rows: c.warmup_rows(),
                layout: c.dir.config.data.layout,
                classes: c.classes().to_vec(),
                fixed_length: c.fixed_length(),
            }),
            limits: cfg.limits.clone(),
            top_k: cfg.decoder.top_k,
            exclude_context: cfg.decoder.exclude_context,
        };
        let cap = NonZeroUsize::new(cfg.limits.cache_entries.max(1)).expect("at least 1");
        Ok((
            Engine {
                encoder,
                dim,
                models,
                classifier,
                bank,
                cache: LruCache::new(cap),
                dev: dev.clone(),
                max_batch: cfg.limits.max_batch,
                lookahead: lookahead(cfg.limits.queue_capacity, cfg.limits.max_batch),
            },
            info,
        ))
    }

    /// A real forward pass of the encoder (past the cache), every LVM and
    /// the classifier; each output must be finite.
    pub fn health_check(&self) -> Result<()> {
        if let (Some(enc), Some(bank)) = (&self.encoder, &self.bank) {
            let v = enc.encode(&["recur health check"], 1)?;
            finite(&v, "the encoder")?;
            for m in &self.models {
                let c = m.arch.context;
                let x = Tensor::from_slice(&v.repeat(c), (1, c, self.dim), &self.dev)?;
                let y: Vec<f32> = m.predict(&x)?.flatten_all()?.to_vec1()?;
                finite(&y, &format!("the {} model", m.arch.kind))?;
                // A model whose output overflows before it is normalised
                // (weights far too large) answers nothing: not ready.
                if recur_models::lvm::not_unit_row(&y, self.dim).is_some() {
                    return Err(Error::Msg(format!(
                        "the {} model gives no unit vector for an encoded sentence: its output overflowed float32 before it was normalised (are its weights far larger than trained ones?)",
                        m.arch.kind
                    )));
                }
                bank.nearest(&y, 1)?;
            }
        }
        if let Some(c) = self.classifier.as_ref().filter(|c| c.whole_series()) {
            // A series of the training means, as long as the training ones.
            let values: Vec<f64> = (0..c.sequence_length())
                .flat_map(|_| c.dir.scaler.mean.iter().copied())
                .collect();
            let p = self.classify_series(&[&values])?;
            if p.len() != 1 {
                return Err(Error::Msg("the classifier scored no series".into()));
            }
        } else if let Some(c) = &self.classifier {
            // The training rows' means: a series every model scores.
            let n = c.min_rows();
            let values: Vec<f64> = (0..n)
                .flat_map(|_| c.dir.scaler.mean.iter().copied())
                .collect();
            let p = c.score(&[(
                Series {
                    values,
                    labels: Vec::new(),
                },
                vec![n - 1],
            )])?;
            let ok = p
                .first()
                .and_then(|v| v.first())
                .and_then(|x| x.probability)
                .is_some_and(f64::is_finite);
            if !ok {
                return Err(Error::Msg(
                    "the classifier produced no finite probability".into(),
                ));
            }
        }
        Ok(())
    }

    /// Runs queued jobs until the queue closes (the server shut down).
    pub fn run(mut self, rx: mpsc::Receiver<Job>, metrics: Arc<Metrics>) {
        // Jobs taken off the queue and not yet run, oldest first: a window
        // of them, so that a short request can join the next batch past
        // long ones that fill it.
        let mut held = Held {
            rx,
            pending: VecDeque::new(),
            metrics: metrics.clone(),
        };
        let Held { rx, pending, .. } = &mut held;
        let window = self.lookahead;
        let mut short_turn = true;
        loop {
            if pending.is_empty() {
                match rx.blocking_recv() {
                    Some(j) => pending.push_back(j),
                    None => break,
                }
            }
            while pending.len() < window {
                match rx.try_recv() {
                    Ok(j) => pending.push_back(j),
                    Err(_) => break,
                }
            }
            let before = pending.len();
            pending.retain(|j| !j.is_abandoned());
            let jobs = next_batch(
                pending,
                self.max_batch,
                BATCH_CHARS,
                Job::chars,
                &mut short_turn,
            );
            // Dropped (abandoned) and taken into the batch: no longer waiting.
            metrics
                .waiting
                .fetch_sub(before - pending.len(), std::sync::atomic::Ordering::SeqCst);
            metrics.queue_depth.set((rx.len() + pending.len()) as i64);
            if !jobs.is_empty() {
                metrics.batch_size.observe(jobs.len() as f64);
                self.batch(jobs, &metrics);
            }
        }
    }

    fn batch(&mut self, jobs: Vec<Job>, metrics: &Metrics) {
        let (mut chats, mut infers, mut classifies) = (Vec::new(), Vec::new(), Vec::new());
        for j in jobs {
            match j {
                Job::Chat { .. } => chats.push(j),
                Job::Infer { .. } => infers.push(j),
                Job::Classify { .. } => classifies.push(j),
                Job::Health { reply } => {
                    let r = self
                        .health_check()
                        .map_err(|e| ApiError::unavailable("unhealthy", e.to_string()));
                    let _ = reply.send(r);
                }
            }
        }
        if !chats.is_empty() {
            self.chats(chats, metrics);
        }
        if !infers.is_empty() {
            self.infers(infers, metrics);
        }
        if !classifies.is_empty() {
            self.classifies(classifies, metrics);
        }
    }

    /// Embeddings of `texts`, from the cache where it has them.
    fn embed(&mut self, texts: &[&str], metrics: &Metrics) -> Result<Vec<Arc<[f32]>>> {
        let mut fresh: HashMap<&str, Option<Arc<[f32]>>> = HashMap::new();
        for &t in texts {
            if !fresh.contains_key(t) {
                let hit = self.cache.get(t).cloned();
                fresh.insert(t, hit);
            }
        }
        let missing: Vec<&str> = {
            let mut m: Vec<&str> = fresh
                .iter()
                .filter(|(_, v)| v.is_none())
                .map(|(k, _)| *k)
                .collect();
            m.sort_unstable();
            m
        };
        metrics.cache_misses.inc_by(missing.len() as u64);
        metrics
            .cache_hits
            .inc_by((texts.len() - missing.len().min(texts.len())) as u64);
        if !missing.is_empty() {
            let enc = self.encoder.as_ref().ok_or_else(no_lvm)?;
            let v = enc.encode(&missing, 32)?;
            for (t, row) in missing.iter().zip(v.chunks(self.dim)) {
                let row: Arc<[f32]> = Arc::from(row);
                self.cache.put(t.to_string(), row.clone());
                fresh.insert(t, Some(row));
            }
            metrics.cache_entries.set(self.cache.len() as i64);
        }
        Ok(texts
            .iter()
            .map(|t| fresh[t].clone().expect("every text embedded"))
            .collect())
    }

    fn chats(&mut self, jobs: Vec<Job>, metrics: &Metrics) {
        let start = Instant::now();
        let n = jobs.len();
        let queue_ms: Vec<f64> = jobs
            .iter()
            .map(|j| match j {
                Job::Chat { queued, .. } => ms_between(*queued, start),
                _ => 0.0,
            })
            .collect();
        let outcome = self.chat_batch(&jobs, metrics);
        for ((j, q), r) in jobs.into_iter().zip(queue_ms).zip(outcome) {
            metrics.stage("queue", q);
            if let Job::Chat { reply, .. } = j {
                let _ = reply.send(r.map(|mut a| {
                    a.breakdown.queue_ms = q;
                    a.batch_size = n;
                    a
                }));
            }
        }
    }

    fn chat_batch(
        &mut self,
        jobs: &[Job],
        metrics: &Metrics,
    ) -> Vec<std::result::Result<ChatAnswer, ApiError>> {
        match self.try_chat_batch(jobs, metrics) {
            Ok(v) => v.into_iter().map(Ok).collect(),
            Err(e) => {
                say!(
                    "recur serve: error: a chat batch failed: {}",
                    recur_core::terminal::inline(&e.to_string())
                );
                jobs.iter()
                    .map(|_| Err(ApiError::internal(format!("the models failed: {e}"))))
                    .collect()
            }
        }
    }

    fn try_chat_batch(&mut self, jobs: &[Job], metrics: &Metrics) -> Result<Vec<ChatAnswer>> {
        let chats: Vec<(&Vec<String>, usize, usize)> = jobs
            .iter()
            .filter_map(|j| match j {
                Job::Chat {
                    texts,
                    model,
                    top_k,
                    ..
                } => Some((texts, *model, *top_k)),
                _ => None,
            })
            .collect();
        // Each request's own sentences, where they are to be left out.
        let said: Vec<Option<std::collections::HashSet<String>>> = jobs
            .iter()
            .filter_map(|j| match j {
                Job::Chat {
                    texts,
                    exclude_context,
                    ..
                } => Some(exclude_context.then(|| said_keys(texts))),
                _ => None,
            })
            .collect();
        // Encoding: only the last C sentences of each request matter.
        let t = Instant::now();
        let kept: Vec<&[String]> = chats
            .iter()
            .map(|(texts, m, _)| {
                let c = self.models[*m].arch.context;
                &texts[texts.len().saturating_sub(c)..]
            })
            .collect();
        let all: Vec<&str> = kept
            .iter()
            .flat_map(|k| k.iter().map(String::as_str))
            .collect();
        let vectors = self.embed(&all, metrics)?;
        let encoding_ms = ms_since(t);
        // Context build: pad by repeating the earliest, per model.
        let t = Instant::now();
        let dim = self.dim;
        let mut offset = 0;
        let mut contexts: Vec<Vec<f32>> = Vec::with_capacity(chats.len());
        let mut modes = Vec::with_capacity(chats.len());
        for ((texts, m, _), k) in chats.iter().zip(&kept) {
            let c = self.models[*m].arch.context;
            let rows: Vec<&[f32]> = vectors[offset..offset + k.len()]
                .iter()
                .map(|r| &r[..])
                .collect();
            offset += k.len();
            contexts.push(pad_context(&rows, c, dim));
            modes.push(fill_mode(texts.len(), c));
        }
        let context_build_ms = ms_since(t);
        // LVM inference: one pass per model over its requests.
        let t = Instant::now();
        let models: Vec<usize> = chats.iter().map(|(_, m, _)| *m).collect();
        let preds = self.predict_grouped(&models, &contexts)?;
        let lvm_inference_ms = ms_since(t);
        // Decoding: one product of every prediction against the bank.
        let t = Instant::now();
        // Enough to fill top_k after the request's own sentences are taken
        // out: each said key matches the rows the bank counted for it (one
        // text, or the same words punctuated otherwise).
        let bank = self.bank.as_ref().ok_or_else(no_lvm)?;
        let k_max = chats
            .iter()
            .zip(&said)
            .map(|((_, _, k), s)| search_size(bank, *k, s.as_ref()))
            .max()
            .unwrap_or(1);
        let flat: Vec<f32> = preds.concat();
        let found = bank.nearest(&flat, k_max)?;
        let decoding_ms = ms_since(t);
        for (stage, ms) in [
            ("encoding", encoding_ms),
            ("context_build", context_build_ms),
            ("lvm_inference", lvm_inference_ms),
            ("decoding", decoding_ms),
        ] {
            metrics.stage(stage, ms);
        }
        Ok(chats
            .iter()
            .zip(found)
            .zip(modes)
            .zip(&said)
            .map(|((((texts, _, k), nb), mode), said)| {
                let nb = leave_out_said(nb, said.as_ref(), *k);
                let best = nb.first().cloned();
                ChatAnswer {
                    response: best.as_ref().map(|b| b.text.clone()).unwrap_or_default(),
                    confidence: best.map(|b| b.cosine).unwrap_or(0.0),
                    neighbours: nb
                        .into_iter()
                        .map(|n| NeighbourOut {
                            text: n.text,
                            cosine: n.cosine,
                        })
                        .collect(),
                    ctx_fill_mode: mode,
                    breakdown: LatencyBreakdown {
                        encoding_ms,
                        context_build_ms,
                        lvm_inference_ms,
                        decoding_ms,
                        queue_ms: 0.0,
                    },
                    sentences: texts.len(),
                    batch_size: 0,
                }
            })
            .collect())
    }

    /// Predictions for `[C, D]` contexts, each through its model; requests
    /// for one model share a pass.
    fn predict_grouped(&self, models: &[usize], contexts: &[Vec<f32>]) -> Result<Vec<Vec<f32>>> {
        let dim = self.dim;
        let mut out = vec![Vec::new(); contexts.len()];
        for (mi, m) in self.models.iter().enumerate() {
            let idx: Vec<usize> = (0..models.len()).filter(|&i| models[i] == mi).collect();
            if idx.is_empty() {
                continue;
            }
            let c = m.arch.context;
            let x: Vec<f32> = idx
                .iter()
                .flat_map(|&i| contexts[i].iter().copied())
                .collect();
            let x = Tensor::from_vec(x, (idx.len(), c, dim), &self.dev)?;
            let y: Vec<f32> = m.predict(&x)?.flatten_all()?.to_vec1()?;
            finite(&y, &format!("the {} model", m.arch.kind))?;
            if recur_models::lvm::not_unit_row(&y, m.arch.input_dim).is_some() {
                return Err(Error::Msg(format!(
                    "the {} model's output is no unit vector: it was zero (a context of constant or zero vectors?) or overflowed float32 before it was normalised",
                    m.arch.kind
                )));
            }
            for (row, &i) in y.chunks(dim).zip(&idx) {
                out[i] = row.to_vec();
            }
        }
        Ok(out)
    }

    fn infers(&mut self, jobs: Vec<Job>, metrics: &Metrics) {
        let dim = self.dim;
        let t = Instant::now();
        let mut models = Vec::new();
        let mut contexts = Vec::new();
        let mut modes = Vec::new();
        for j in &jobs {
            if let Job::Infer {
                context,
                model,
                queued,
                ..
            } = j
            {
                metrics.stage("queue", ms_between(*queued, t));
                let c = self.models[*model].arch.context;
                let n = context.len() / dim;
                let rows: Vec<&[f32]> = context.chunks(dim).collect();
                models.push(*model);
                contexts.push(pad_context(&rows, c, dim));
                modes.push(fill_mode(n, c));
            }
        }
        // One pass for the batch; if it fails (an input that overflows the
        // model), each request on its own, so only that one is refused.
        let results: Vec<std::result::Result<Vec<f32>, ApiError>> =
            match self.predict_grouped(&models, &contexts) {
                Ok(preds) => preds.into_iter().map(Ok).collect(),
                Err(_) => models
                    .iter()
                    .zip(&contexts)
                    .map(|(m, c)| {
                        self.predict_grouped(&[*m], std::slice::from_ref(c))
                            .map(|mut p| p.remove(0))
                            .map_err(|e| {
                                ApiError::invalid(
                                    "not_scorable",
                                    format!("the model cannot score this context: {e}; are its values within the range of the training vectors?"),
                                )
                            })
                    })
                    .collect(),
            };
        let lvm_ms = ms_since(t);
        metrics.stage("lvm_inference", lvm_ms);
        let replies = jobs.into_iter().filter_map(|j| match j {
            Job::Infer { reply, .. } => Some(reply),
            _ => None,
        });
        for ((reply, r), mode) in replies.zip(results).zip(modes) {
            let _ = reply.send(r.map(|predicted| InferAnswer {
                predicted,
                ctx_fill_mode: mode,
                lvm_ms,
            }));
        }
    }

    fn classifies(&mut self, jobs: Vec<Job>, metrics: &Metrics) {
        let t = Instant::now();
        let all: Vec<&Vec<Vec<f64>>> = jobs
            .iter()
            .filter_map(|j| match j {
                Job::Classify { series, .. } => Some(series),
                _ => None,
            })
            .collect();
        // One pass for the batch; if it fails, each request on its own, so
        // that one bad request never fails the others.
        let results: Vec<std::result::Result<Vec<Prediction>, ApiError>> =
            match self.classify_series(&all.iter().flat_map(|s| s.iter()).collect::<Vec<_>>()) {
                Ok(p) => {
                    let mut it = p.into_iter();
                    all.iter()
                        .map(|s| Ok(it.by_ref().take(s.len()).collect()))
                        .collect()
                }
                Err(_) => all
                    .iter()
                    .map(|s| {
                        self.classify_series(&s.iter().collect::<Vec<_>>())
                            .map_err(|e| {
                                ApiError::invalid(
                                    "not_scorable",
                                    format!("the classifier cannot score this request: {e}"),
                                )
                            })
                    })
                    .collect(),
            };
        let ms = ms_since(t);
        metrics.stage("classify", ms);
        let classify_jobs = jobs.into_iter().filter_map(|j| match j {
            Job::Classify { reply, queued, .. } => Some((reply, queued)),
            _ => None,
        });
        for ((reply, queued), r) in classify_jobs.zip(results) {
            metrics.stage("queue", ms_between(queued, t));
            let _ = reply.send(r.map(|predictions| ClassifyAnswer { predictions, ms }));
        }
    }

    /// Each window scored at its last row (for a whole-series model, each
    /// series whole), in one pass of every model.
    fn classify_series(&self, series: &[&Vec<f64>]) -> Result<Vec<Prediction>> {
        let c = self
            .classifier
            .as_ref()
            .ok_or_else(|| Error::Msg("no classifier is loaded".into()))?;
        let f = c.features().len().max(1);
        let preds = if c.whole_series() {
            // Whole series, batched by length inside (never padded), so a
            // series gets the same probabilities alone or with others.
            let s = recur_data::ucr::Sequences::from_arrays(
                "the request",
                series.iter().map(|v| v.to_vec()).collect(),
                f,
                vec![String::new(); series.len()],
            )?;
            c.score_series(&s)?
        } else {
            let input: Vec<(Series, Vec<usize>)> = series
                .iter()
                .map(|values| {
                    let n = values.len() / f;
                    (
                        Series {
                            values: values.to_vec(),
                            labels: Vec::new(),
                        },
                        vec![n.saturating_sub(1)],
                    )
                })
                .collect();
            c.score(&input)?.into_iter().flatten().collect()
        };
        if let Some(p) = preds
            .iter()
            .find(|p| !p.probability.is_some_and(f64::is_finite))
        {
            return Err(Error::Msg(format!(
                "the model produced no finite probability ({} {}): a value is too large for it",
                if c.whole_series() { "series" } else { "row" },
                p.row
            )));
        }
        Ok(preds)
    }
}

fn no_lvm() -> Error {
    Error::Msg("this server has no LVM (no `models:` in the serve config)".into())
}

fn finite(v: &[f32], what: &str) -> Result<()> {
    if v.iter().all(|x| x.is_finite()) {
        Ok(())
    } else {
        Err(Error::Msg(format!("{what} produced NaN or infinity")))
    }
}

/// The context of `c` vectors a model reads from `rows` (oldest first):
/// the last `c`, with the earliest repeated in front when there are fewer.
fn pad_context(rows: &[&[f32]], c: usize, dim: usize) -> Vec<f32> {
    let keep = &rows[rows.len().saturating_sub(c)..];
    let mut ctx = Vec::with_capacity(c * dim);
    for _ in keep.len()..c {
        ctx.extend_from_slice(keep[0]);
    }
    for r in keep {
        ctx.extend_from_slice(r);
    }
    ctx
}

fn fill_mode(n: usize, c: usize) -> &'static str {
    match n.cmp(&c) {
        std::cmp::Ordering::Less => "padded",
        std::cmp::Ordering::Equal => "full",
        std::cmp::Ordering::Greater => "truncated",
    }
}

fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

fn ms_between(a: Instant, b: Instant) -> f64 {
    b.saturating_duration_since(a).as_secs_f64() * 1000.0
}

/// How many queued jobs the engine holds to choose each batch from;
/// `limits.queue_capacity` bounds those and the queue together.
pub fn lookahead(queue_capacity: usize, max_batch: usize) -> usize {
    (4 * max_batch).min(queue_capacity / 2).max(1)
}

/// The next batch from `pending` (oldest first): the oldest job always,
/// then, in order, every job that still fits in `max_batch` jobs and
/// `budget` characters; the rest stay, in order. So the oldest job never
/// waits behind a newer one, and a short request waits for one batch,
/// not for every long one queued before it.
fn take_batch<T>(
    pending: &mut VecDeque<T>,
    max_batch: usize,
    budget: usize,
    chars: impl Fn(&T) -> usize,
) -> Vec<T> {
    let mut jobs = Vec::new();
    let mut used = 0;
    let mut rest = VecDeque::with_capacity(pending.len());
    for j in pending.drain(..) {
        let n = chars(&j);
        if jobs.len() < max_batch && (jobs.is_empty() || used + n <= budget) {
            used += n;
            jobs.push(j);
        } else {
            rest.push_back(j);
        }
    }
    *pending = rest;
    jobs
}

/// The next batch: with short jobs (at most [`SHORT_CHARS`]) and long ones
/// waiting together, the short ones alone (in order, up to `max_batch`)
/// on every other turn; else [`take_batch`]. Taking turns keeps the
/// oldest long job from waiting behind a stream of short ones for more
/// than one short batch.
fn next_batch<T>(
    pending: &mut VecDeque<T>,
    max_batch: usize,
    budget: usize,
    chars: impl Fn(&T) -> usize,
    short_turn: &mut bool,
) -> Vec<T> {
    let short = |j: &T| chars(j) <= SHORT_CHARS;
    let mixed = pending.iter().any(short) && pending.iter().any(|j| !short(j));
    if *short_turn && mixed {
        *short_turn = false;
        let mut jobs = Vec::new();
        let mut rest = VecDeque::with_capacity(pending.len());
        for j in pending.drain(..) {
            if jobs.len() < max_batch && short(&j) {
                jobs.push(j);
            } else {
                rest.push_back(j);
            }
        }
        *pending = rest;
        return jobs;
    }
    *short_turn = true;
    take_batch(pending, max_batch, budget, chars)
}

/// What a request said, as the exclusion compares it: each message whole
/// and each sentence in it (the segmenter that splits a `paragraph`), as
/// [`said_key`]s. A message of two sentences had its second answered back.
fn said_keys(texts: &[String]) -> std::collections::HashSet<String> {
    let rules = recur_text::chunk::ChunkRules {
        min_chars: 1,
        max_chars: 1 << 20,
    };
    texts
        .iter()
        .flat_map(|t| {
            std::iter::once(said_key(t)).chain(
                recur_text::chunk::pieces(t, rules)
                    .into_iter()
                    .map(|p| said_key(&p)),
            )
        })
        .collect()
}

/// How many neighbours to ask the bank for so that `k` are left once the
/// rows of the request's own sentences (`said`) are taken out: `k` plus
/// every row the bank has of each said key.
fn search_size(bank: &Bank, k: usize, said: Option<&std::collections::HashSet<String>>) -> usize {
    k + said.map_or(0, |s| s.iter().map(|key| bank.rows_said(key)).sum())
}

/// The first `k` of `found` (best first), none of the request's own
/// sentences where `said` holds them (as [`said_key`]s): an LVM's
/// prediction lies nearest its own context. The search asked for `k` plus
/// every row the bank has of each said key, so `k` are left whenever the
/// bank has them; when the request's sentences are all it found (a bank of
/// little else), the best of them.
fn leave_out_said(
    found: Vec<crate::bank::Neighbour>,
    said: Option<&std::collections::HashSet<String>>,
    k: usize,
) -> Vec<crate::bank::Neighbour> {
    let keep: Vec<bool> = match said {
        Some(s) => found
            .iter()
            .map(|n| !s.contains(&said_key(&n.text)))
            .collect(),
        None => vec![true; found.len()],
    };
    let all = !keep.contains(&true);
    found
        .into_iter()
        .zip(keep)
        .filter(|(_, kept)| *kept || all)
        .map(|(n, _)| n)
        .take(k)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{leave_out_said, next_batch, search_size, take_batch, Held, Job, Metrics};

    /// The request's own sentences are left out when asked, compared by
    /// their words in any case and spacing, whole or as one sentence of a
    /// longer message; at most `k`; the best of them when they are all the
    /// bank found.
    #[test]
    fn answers_leave_out_what_was_said_when_asked() {
        let n = |text: &str, index| crate::bank::Neighbour {
            text: text.into(),
            cosine: 1.0 - index as f32 / 10.0,
            index,
        };
        let found = || {
            vec![
                n("Hello there.", 0),
                n("Good evening.", 1),
                n("It rained.", 2),
                n("The end.", 3),
            ]
        };
        // Punctuated otherwise too ("It rained!" was answered "It
        // rained.").
        let said =
            super::said_keys(&[" hello  THERE ".to_string(), "Fine. It rained!".to_string()]);
        let got = |said: Option<&std::collections::HashSet<String>>, k| -> Vec<usize> {
            leave_out_said(found(), said, k)
                .iter()
                .map(|n| n.index)
                .collect()
        };
        assert_eq!(got(None, 10), vec![0, 1, 2, 3]);
        assert_eq!(got(Some(&said), 10), vec![1, 3]);
        assert_eq!(got(Some(&said), 1), vec![1]);
        let only = || vec![n("Hello there.", 0), n("It rained.", 2)];
        let all_said: Vec<usize> = leave_out_said(only(), Some(&said), 5)
            .iter()
            .map(|n| n.index)
            .collect();
        assert_eq!(all_said, vec![0, 2]);
    }

    /// A bank that holds the user's sentence punctuated many ways (all
    /// nearer the prediction than anything else) still answers with other
    /// sentences: the search looks past every such row. It asked for
    /// `k` plus one row per said sentence, found only the variants, and
    /// answered the user with their own words.
    #[test]
    fn a_sentence_the_bank_holds_punctuated_many_ways_is_still_left_out() {
        let said = "The weather turned bad and it rained all day long";
        let mut texts: Vec<String> = [".", "!", "?", "...", "!!", "?!"]
            .iter()
            .map(|end| format!("{said}{end}"))
            .collect();
        texts.push("The weather turned bad; and it rained all day long.".into());
        let variants = texts.len();
        texts.extend((0..10).map(|i| format!("Another sentence number {i}.")));
        let dim = 4;
        let mut v = Vec::new();
        for i in 0..texts.len() {
            // The variants nearest [1, 0, 0, 0], the others further.
            let far = if i < variants {
                0.01
            } else {
                0.5 + i as f32 * 0.1
            };
            v.extend([1.0, far * (i as f32 + 1.0) * 0.01, far, 0.0]);
        }
        for exact_max in [1000, 5] {
            let bank = crate::bank::Bank::from_vectors(
                v.clone(),
                dim,
                texts.clone(),
                vec![],
                exact_max,
                64,
            )
            .unwrap();
            let keys = super::said_keys(&[format!("{said}.")]);
            let k = 3;
            let n = search_size(&bank, k, Some(&keys));
            assert!(n >= k + variants, "{n}");
            let found = bank.nearest(&[1.0, 0.0, 0.0, 0.0], n).unwrap().remove(0);
            let kept = leave_out_said(found, Some(&keys), k);
            let texts: Vec<&str> = kept.iter().map(|n| n.text.as_str()).collect();
            assert_eq!(texts.len(), k, "{texts:?}");
            assert!(texts.iter().all(|t| t.starts_with("Another")), "{texts:?}");
        }
    }
    use std::sync::atomic::Ordering::SeqCst;
    use std::sync::Arc;
    use tokio::sync::{mpsc, oneshot};

    /// When the engine thread leaves (a panic in a batch, or shutdown),
    /// the jobs it held stop counting as waiting and the queue closes: the
    /// server was left refusing every request as busy, for good.
    #[test]
    fn jobs_held_by_a_thread_that_leaves_stop_counting_as_waiting() {
        let metrics = Arc::new(Metrics::new());
        let (tx, rx) = mpsc::channel(4);
        let health = || Job::Health {
            reply: oneshot::channel().0,
        };
        for _ in 0..2 {
            tx.try_send(health()).unwrap();
        }
        metrics.waiting.store(3, SeqCst);
        let held = Held {
            rx,
            pending: [health()].into(),
            metrics: metrics.clone(),
        };
        drop(held);
        assert_eq!(metrics.waiting.load(SeqCst), 0);
        assert!(matches!(
            tx.try_send(health()),
            Err(mpsc::error::TrySendError::Closed(_))
        ));
    }

    /// Short jobs waiting with long ones go alone every other batch; the
    /// turns alternate so the oldest long job goes next.
    #[test]
    fn short_jobs_take_turns_with_long_ones() {
        let mut q: VecDeque<usize> = [10_000, 10_000, 50, 10_000, 300, 10_000].into();
        let mut turn = true;
        let mut next = |q: &mut VecDeque<usize>| next_batch(q, 64, 25_000, |n| *n, &mut turn);
        assert_eq!(next(&mut q), [50, 300]);
        assert_eq!(next(&mut q), [10_000, 10_000]);
        q.extend([20, 30]);
        assert_eq!(next(&mut q), [20, 30]);
        assert_eq!(next(&mut q), [10_000, 10_000]);
        // Short jobs alone (or long ones alone) are one batch as before.
        q.extend([1, 2, 3]);
        assert_eq!(next(&mut q), [1, 2, 3]);
        assert!(q.is_empty());
    }
    use std::collections::VecDeque;

    /// The oldest job always goes; later ones join while they fit, a short
    /// one past long ones that do not; the rest keep their order.
    #[test]
    fn a_batch_takes_the_oldest_then_what_fits_in_order() {
        let mut q: VecDeque<usize> = [9_000, 30_000, 30_000, 40, 30_000, 10, 7].into();
        let b = take_batch(&mut q, 64, 65_536, |n| *n);
        assert_eq!(b, [9_000, 30_000, 40, 10, 7]);
        assert_eq!(q, [30_000, 30_000]);
        // One job over the budget alone still goes (it would never fit).
        let mut q: VecDeque<usize> = [100_000, 5].into();
        assert_eq!(take_batch(&mut q, 64, 65_536, |n| *n), [100_000]);
        assert_eq!(take_batch(&mut q, 64, 65_536, |n| *n), [5]);
        assert!(q.is_empty());
        // At most max_batch jobs.
        let mut q: VecDeque<usize> = (0..10).collect();
        assert_eq!(take_batch(&mut q, 4, 65_536, |_| 0), [0, 1, 2, 3]);
        assert_eq!(q.len(), 6);
    }

    use super::*;

    #[test]
    fn contexts_are_padded_with_the_earliest_or_cut_to_the_last() {
        let (a, b, c): (&[f32], &[f32], &[f32]) = (&[1.0, 1.5], &[2.0, 2.5], &[3.0, 3.5]);
        assert_eq!(
            pad_context(&[a, b], 3, 2),
            vec![1.0, 1.5, 1.0, 1.5, 2.0, 2.5]
        );
        assert_eq!(pad_context(&[a, b, c], 2, 2), vec![2.0, 2.5, 3.0, 3.5]);
        assert_eq!(pad_context(&[a, b], 2, 2), vec![1.0, 1.5, 2.0, 2.5]);
        assert_eq!(
            (fill_mode(1, 3), fill_mode(3, 3), fill_mode(4, 3)),
            ("padded", "full", "truncated")
        );
    }
}

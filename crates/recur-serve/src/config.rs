//! `recur serve --config FILE`: what to load and the limits to enforce.
//! Every field has a default, so an empty file (or no file) serves what
//! `recur demo` trained: the LSTM LVM in `runs/demo/lvm`, the classifier
//! in `runs/demo`, MiniLM and the bundled corpus as the sentence bank.
//! Paths in a file are relative to that file; defaults to the working
//! folder.

use recur_core::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServeConfig {
    pub host: String,
    pub port: u16,
    /// A known encoder name (`recur models list`) or a sentence-transformers folder.
    pub encoder: String,
    /// Chunk files (`.npz` with a `.texts.jsonl` beside each) whose
    /// sentences the retrieval decoder answers with.
    pub bank: Vec<PathBuf>,
    /// LVM model directories, by the name a request gives in `model`.
    pub models: Vec<NamedModel>,
    /// The model `/chat` and `/v1/infer` use when a request names none
    /// (default: the first).
    pub default_model: Option<String>,
    /// A Job A model directory for `/v1/classify` (optional).
    pub classifier: Option<PathBuf>,
    pub limits: Limits,
    pub decoder: DecoderConfig,
    /// `f32` (the default) or `bf16`: the products of the LVMs and the
    /// classifier (not the encoder's) with bf16 operands and f32 sums
    /// (`recur_kernels::precision`).
    pub precision: String,
    /// Names the `Host` header may give besides the loopback ones
    /// (`localhost`, `127.0.0.1`, `[::1]`), such as `recur.internal`,
    /// without scheme or port. A server on a loopback address answers only
    /// those and the loopback names (a web page whose name was rebound to
    /// 127.0.0.1 sends its own name); one on another address answers any
    /// name unless this lists some, then those and the loopback names.
    pub allowed_hosts: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedModel {
    pub name: String,
    pub path: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest request body; more is refused with 413.
    pub max_body_bytes: usize,
    /// Most messages in one `/chat` request.
    pub max_messages: usize,
    /// Longest message, in characters.
    pub max_text_chars: usize,
    /// Longest `/chat` paragraph, in characters.
    pub max_paragraph_chars: usize,
    /// Largest `top_k` a request may ask for.
    pub max_top_k: usize,
    /// Most windows in one `/v1/classify` request.
    pub max_windows: usize,
    /// Requests waiting for the model; more are refused with 503.
    pub queue_capacity: usize,
    /// Most requests run through the models together.
    pub max_batch: usize,
    /// A request not answered in this time gets 503.
    pub request_timeout_ms: u64,
    /// Sentence embeddings kept for reuse (a conversation sends its
    /// earlier messages again with every turn).
    pub cache_entries: usize,
    /// How often the readiness check (a real forward pass of every model)
    /// runs; `/health` answers from the latest one.
    pub health_check_interval_ms: u64,
    /// Open connections. At the limit a new connection takes the slot of
    /// the one idle longest; when every one is busy, a few spare ones
    /// answer only `/health` and `/live`, and past those a connection is
    /// closed at once.
    pub max_connections: usize,
    /// A request's headers must arrive within this; an idle keep-alive
    /// connection is closed after it.
    pub header_timeout_ms: u64,
    /// A request's body must arrive within this (408).
    pub body_timeout_ms: u64,
    /// A response the client reads none of for this long closes the
    /// connection (a client that pipelines requests and never reads the
    /// answers would otherwise hold its slot for ever).
    pub write_timeout_ms: u64,
    /// After SIGTERM or Ctrl-C, requests in flight may take this long;
    /// then the server closes. A second signal stops it at once.
    pub shutdown_grace_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            // Room for `max_windows` windows of a classifier such as the
            // demo's (32 rows of 9 features as JSON, about 5.5 KB each): a
            // 256 KiB body held fewer than 50, under a limit of 256.
            max_body_bytes: 2 * 1024 * 1024,
            max_messages: 5,
            max_text_chars: 2000,
            max_paragraph_chars: 10_000,
            max_top_k: 50,
            max_windows: 256,
            queue_capacity: 1024,
            max_batch: 64,
            request_timeout_ms: 10_000,
            cache_entries: 20_000,
            health_check_interval_ms: 30_000,
            max_connections: 1024,
            header_timeout_ms: 10_000,
            body_timeout_ms: 10_000,
            write_timeout_ms: 10_000,
            shutdown_grace_ms: 10_000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DecoderConfig {
    /// Neighbours returned when a request gives no `top_k`.
    pub top_k: usize,
    /// Banks up to this many sentences are searched exactly (one matrix
    /// product); larger ones through an HNSW index.
    pub exact_max: usize,
    /// Leave the request's own sentences out of the answer and the
    /// neighbours. An LVM's prediction lies near its context (the demo's
    /// nearest bank sentence is a context sentence in 93% of validation
    /// windows), so with its messages in the bank a chat answered with
    /// one of them, mostly the earliest, which the padding repeats.
    pub exclude_context: bool,
}

impl Default for DecoderConfig {
    fn default() -> Self {
        DecoderConfig {
            top_k: 5,
            exact_max: 1_000_000,
            exclude_context: true,
        }
    }
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            host: "127.0.0.1".into(),
            port: 8080,
            encoder: "all-MiniLM-L6-v2".into(),
            bank: vec![
                PathBuf::from("runs/corpus/wiki.npz"),
                PathBuf::from("runs/corpus/ood.npz"),
            ],
            models: vec![NamedModel {
                name: "lstm".into(),
                path: PathBuf::from("runs/demo/lvm"),
            }],
            default_model: None,
            classifier: Some(PathBuf::from("runs/demo")),
            limits: Limits::default(),
            decoder: DecoderConfig::default(),
            precision: "f32".into(),
            allowed_hosts: Vec::new(),
        }
    }
}

impl recur_core::config_file::ConfigPaths for ServeConfig {
    fn paths_mut(&mut self) -> Vec<&mut PathBuf> {
        let models = self.models.iter_mut().map(|m| &mut m.path);
        self.bank
            .iter_mut()
            .chain(models)
            .chain(self.classifier.as_mut())
            .collect()
    }
}

impl ServeConfig {
    /// What `recur serve` serves without a config file: what `recur demo`
    /// trained (its LVM, bank and, when it is there, its classifier).
    /// Refuses when the demo has not run, saying what to do.
    pub fn demo_defaults() -> Result<ServeConfig> {
        let weights = recur_deploy::model_dir::WEIGHTS;
        let mut c = ServeConfig::default();
        let lvm = &c.models[0].path;
        if !lvm.join(weights).exists() {
            return Err(Error::Msg(format!(
                "no --config, and {} holds no model: run `recur demo` first (it trains the models `recur serve` serves by default), or give --config FILE",
                lvm.display()
            )));
        }
        if c.classifier
            .as_ref()
            .is_some_and(|p| !p.join(weights).exists())
        {
            c.classifier = None;
        }
        Ok(c)
    }

    /// What `recur serve` runs: the config of `file`, or the demo's
    /// defaults without one, with `host` and `port` over it.
    pub fn resolve(file: Option<&Path>, host: Option<String>, port: Option<u16>) -> Result<Self> {
        let mut cfg = match file {
            Some(f) => ServeConfig::from_file(f)?,
            None => ServeConfig::demo_defaults()?,
        };
        if let Some(h) = host {
            cfg.host = h;
        }
        if let Some(p) = port {
            cfg.port = p;
        }
        Ok(cfg)
    }

    /// Reads a YAML file; relative paths in it are taken from its folder.
    pub fn from_file(path: &Path) -> Result<ServeConfig> {
        let (mut cfg, text) = recur_core::config_file::read::<ServeConfig>(path)?;
        // A file that names only LVMs serves only LVMs, and one that names
        // only a classifier serves only it: the demo's models fill in only
        // when a file names neither.
        let keys: Vec<String> = serde_yaml_ng::from_str::<serde_yaml_ng::Mapping>(&text)
            .map(|m| {
                m.keys()
                    .filter_map(|k| k.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let names = |k: &str| keys.iter().any(|x| x == k);
        // The demo's paths a file does not name stay relative to the
        // working folder, as without a file (they were joined to the
        // file's folder: `conf/runs/corpus/wiki.npz`).
        let d = ServeConfig::default();
        if !names("bank") {
            cfg.bank = d.bank;
        }
        if !names("models") {
            cfg.models = d.models;
        }
        if !names("classifier") {
            cfg.classifier = d.classifier;
        }
        if names("classifier") && !names("models") {
            cfg.models.clear();
            if !names("bank") {
                cfg.bank.clear();
            }
        }
        if names("models") && !names("classifier") {
            cfg.classifier = None;
        }
        // The encoder is a name (fetched) or a folder: a folder beside
        // the file is taken relative to it.
        let base = path.parent().unwrap_or(Path::new("."));
        let enc = Path::new(&cfg.encoder);
        if enc.is_relative() && base.join(enc).is_dir() {
            cfg.encoder = base.join(enc).display().to_string();
        }
        cfg.validate(&path.display().to_string())?;
        Ok(cfg)
    }

    /// Refuses settings that cannot work, naming the key.
    pub fn validate(&self, at: &str) -> Result<()> {
        let bad = |key: &str, msg: &str| {
            Err(Error::Config {
                at: format!("{at}: {key}"),
                msg: msg.into(),
            })
        };
        if self.models.is_empty() && self.classifier.is_none() {
            return bad(
                "models",
                "give at least one LVM model directory, or a `classifier:`",
            );
        }
        for h in &self.allowed_hosts {
            if let Err(msg) = crate::hosts::allowed_name(h) {
                return bad("allowed_hosts", &msg);
            }
        }
        // Checked with the rest, before the server says it is listening
        // (and before `bench serve` starts a child that would fail on it).
        if let Err(msg) = self
            .precision
            .parse::<recur_kernels::precision::Precision>()
        {
            return bad("precision", &msg);
        }
        let mut seen = std::collections::HashSet::new();
        for m in &self.models {
            if !seen.insert(&m.name) {
                return bad("models", &format!("the name {:?} is used twice", m.name));
            }
        }
        if let Some(d) = &self.default_model {
            if !seen.contains(d) {
                return bad("default_model", &format!("{d:?} is not one of the models"));
            }
        }
        if self.bank.is_empty() && !self.models.is_empty() {
            return bad("bank", "give at least one chunk file with its .texts.jsonl");
        }
        let l = &self.limits;
        for (key, v) in [
            ("limits.max_body_bytes", l.max_body_bytes),
            ("limits.max_messages", l.max_messages),
            ("limits.max_text_chars", l.max_text_chars),
            ("limits.max_paragraph_chars", l.max_paragraph_chars),
            ("limits.max_top_k", l.max_top_k),
            ("limits.max_windows", l.max_windows),
            ("limits.queue_capacity", l.queue_capacity),
            ("limits.max_batch", l.max_batch),
            ("limits.request_timeout_ms", l.request_timeout_ms as usize),
            (
                "limits.health_check_interval_ms",
                l.health_check_interval_ms as usize,
            ),
            ("decoder.top_k", self.decoder.top_k),
            // 0 ran as 1 while /info said 0.
            ("limits.cache_entries", l.cache_entries),
        ] {
            if v == 0 {
                return bad(key, "must be at least 1");
            }
        }
        // Upper bounds, so that a typo cannot ask for all the memory.
        for (key, v, max) in [
            ("limits.max_body_bytes", l.max_body_bytes as u64, 1 << 30),
            ("limits.max_messages", l.max_messages as u64, 1000),
            ("limits.max_text_chars", l.max_text_chars as u64, 1_000_000),
            (
                "limits.max_paragraph_chars",
                l.max_paragraph_chars as u64,
                10_000_000,
            ),
            ("limits.max_top_k", l.max_top_k as u64, 10_000),
            ("limits.max_windows", l.max_windows as u64, 100_000),
            ("limits.queue_capacity", l.queue_capacity as u64, 1_000_000),
            ("limits.max_batch", l.max_batch as u64, 100_000),
            ("limits.request_timeout_ms", l.request_timeout_ms, 3_600_000),
            ("limits.cache_entries", l.cache_entries as u64, 100_000_000),
            (
                "limits.health_check_interval_ms",
                l.health_check_interval_ms,
                86_400_000,
            ),
            (
                "limits.max_connections",
                l.max_connections as u64,
                1_000_000,
            ),
            ("limits.header_timeout_ms", l.header_timeout_ms, 3_600_000),
            ("limits.body_timeout_ms", l.body_timeout_ms, 3_600_000),
            ("limits.write_timeout_ms", l.write_timeout_ms, 3_600_000),
            ("limits.shutdown_grace_ms", l.shutdown_grace_ms, 3_600_000),
        ] {
            if v > max {
                return bad(key, &format!("{v} is more than the largest allowed, {max}"));
            }
        }
        for (key, v) in [
            ("limits.max_connections", l.max_connections as u64),
            ("limits.header_timeout_ms", l.header_timeout_ms),
            ("limits.body_timeout_ms", l.body_timeout_ms),
            ("limits.write_timeout_ms", l.write_timeout_ms),
        ] {
            if v == 0 {
                return bad(key, "must be at least 1");
            }
        }
        if self.decoder.top_k > l.max_top_k {
            return bad("decoder.top_k", "must not exceed limits.max_top_k");
        }
        Ok(())
    }

    /// The model used when a request names none.
    pub fn default_model_name(&self) -> &str {
        self.default_model
            .as_deref()
            .or(self.models.first().map(|m| m.name.as_str()))
            .unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The default body limit holds the default number of windows of a
    /// classifier such as the demo's, written as a client writes them
    /// (full-precision floats, as json.dumps gives them).
    #[test]
    fn the_default_body_holds_the_default_windows() {
        let l = Limits::default();
        let window: Vec<Vec<f64>> = vec![vec![-1.4756842473305716; 9]; 32];
        let body = serde_json::json!({ "windows": vec![window; l.max_windows] }).to_string();
        assert!(body.len() < l.max_body_bytes, "{} bytes", body.len());
    }

    #[test]
    fn the_documented_config_is_the_default_and_its_paths_are_rebased() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/serve.yaml");
        let c = ServeConfig::from_file(&path).unwrap();
        let d = ServeConfig::default();
        let json = |v: serde_json::Result<String>| v.unwrap();
        assert_eq!(
            json(serde_json::to_string(&c.limits)),
            json(serde_json::to_string(&d.limits))
        );
        assert_eq!(
            json(serde_json::to_string(&c.decoder)),
            json(serde_json::to_string(&d.decoder))
        );
        assert_eq!((c.host.as_str(), c.port), (d.host.as_str(), d.port));
        assert_eq!(c.encoder, d.encoder);
        assert_eq!(c.default_model_name(), "lstm");
        assert!(c.models[0].path.ends_with("../runs/demo/lvm"));
        assert!(c.models[0].path.starts_with(path.parent().unwrap()));
        assert_eq!(c.bank.len(), 2);
        assert!(c.classifier.unwrap().ends_with("../runs/demo"));
    }

    /// What a file leaves out is the demo's, read from the working folder
    /// as without a file; what it names is read from the file's folder.
    #[test]
    fn paths_a_file_does_not_name_stay_the_working_folders() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.yaml");
        std::fs::write(&p, "models:\n  - {name: a, path: m}\n").unwrap();
        let c = ServeConfig::from_file(&p).unwrap();
        assert_eq!(c.bank, ServeConfig::default().bank);
        assert_eq!(c.models[0].path, dir.path().join("m"));
        assert!(c.classifier.is_none());
    }

    #[test]
    fn bad_settings_name_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.yaml");
        for (yaml, key) in [
            ("limits:\n  max_batch: 0\n", "limits.max_batch"),
            (
                "models:\n  - {name: a, path: x}\n  - {name: a, path: y}\n",
                "models",
            ),
            ("default_model: nope\n", "default_model"),
            ("limits:\n  max_batchh: 3\n", "max_batchh"),
            ("decoder:\n  top_k: 99\n", "decoder.top_k"),
            (
                "limits:\n  queue_capacity: 18446744073709551615\n",
                "limits.queue_capacity",
            ),
            ("allowed_hosts: [\"recur.internal:8080\"]\n", "allowed_hosts"),
            ("precision: BF16\n", "precision"),
            ("limits:\n  max_connections: 0\n", "limits.max_connections"),
            ("limits:\n  cache_entries: 0\n", "limits.cache_entries"),
            // A training config is named as one, with what to do instead.
            (
                "data:\n  path: d.csv\nmodel:\n  type: lstm\n",
                "a training config, for `recur train`: serve the model it trains with `classifier: DIR`",
            ),
            (
                "data:\n  train: w.npz\n",
                "a Job B (LVM) config, for `recur lvm train`",
            ),
        ] {
            std::fs::write(&p, yaml).unwrap();
            let e = ServeConfig::from_file(&p).unwrap_err().to_string();
            assert!(e.contains(key) && e.contains("s.yaml"), "{yaml}: {e}");
        }
    }
}

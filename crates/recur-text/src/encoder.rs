//! Sentence encoders run in Rust: a BERT-family model (all-MiniLM-L6-v2,
//! 384-D) or a T5 encoder (GTR-T5-base, 768-D, the original's), loaded from a
//! local folder with `config.json`, `tokenizer.json` and `model.safetensors`
//! as sentence-transformers lays them out; pooling over the attention mask,
//! the optional `Dense` modules of `modules.json`, then L2 normalisation.
//!
//! BERT runs on recur's own CPU forward (`crate::bert`), which packs the
//! sentences of a batch end to end with no padding; T5 on
//! candle-transformers' `T5EncoderModel`. candle's T5 encoder takes no
//! attention mask, so padded positions would be attended to and change
//! every embedding of a padded batch; recur therefore batches T5 inputs by
//! exact token count, so no T5 batch holds padding. Either way each
//! embedding equals the one of the sentence alone. Pooling, the Dense
//! modules and normalisation are plain loops over the token rows.
//!
//! The maximum length is the model's (`sentence_bert_config.json`'s
//! `max_seq_length`, else the position table's size), never the padding and
//! truncation forced into `tokenizer.json` (128 for MiniLM).

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::{bert, t5};
use recur_core::fsx::read_json;
use recur_core::{Error, Result};
use recur_kernels::packed::PackedLinear;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use tokenizers::PostProcessor as _;
use tokenizers::{Tokenizer, TruncationParams};

/// Sentences per forward pass when the caller does not choose.
pub const DEFAULT_BATCH: usize = 32;

enum Backbone {
    Bert(crate::bert::Bert),
    /// `forward` takes `&mut self` (a decoder's cache, unused here).
    T5(Mutex<t5::T5EncoderModel>),
}

/// How token vectors become one sentence vector (sentence-transformers'
/// `Pooling` module).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// The mean over the real (unmasked) tokens.
    Mean,
    /// The first token's vector.
    Cls,
    /// The elementwise maximum over the real tokens.
    Max,
}

/// A sentence-transformers `Dense` module: `act(W x + b)`.
struct Dense {
    linear: PackedLinear,
    tanh: bool,
}

pub struct SentenceEncoder {
    backbone: Backbone,
    tokenizer: Tokenizer,
    pooling: Pooling,
    dense: Vec<Dense>,
    /// Output dimension (after any Dense module).
    pub dim: usize,
    /// Longest input in tokens, special tokens included; longer is cut.
    pub max_len: usize,
    /// `bert` or `t5`.
    pub kind: &'static str,
    /// The folder it was loaded from.
    pub dir: PathBuf,
    device: Device,
}

/// What the encoder is, not its weights.
impl std::fmt::Debug for SentenceEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentenceEncoder")
            .field("kind", &self.kind)
            .field("dim", &self.dim)
            .field("max_len", &self.max_len)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct ModelType {
    model_type: Option<String>,
    architectures: Option<Vec<String>>,
    vocab_size: Option<usize>,
}

#[derive(Deserialize)]
struct StModule {
    path: String,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct PoolingConfig {
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
    #[serde(default)]
    pooling_mode_max_tokens: bool,
    #[serde(default)]
    pooling_mode_mean_sqrt_len_tokens: bool,
}

#[derive(Deserialize)]
struct DenseConfig {
    in_features: usize,
    out_features: usize,
    #[serde(default = "yes")]
    bias: bool,
    #[serde(default)]
    activation_function: String,
}

fn yes() -> bool {
    true
}

fn bad(dir: &Path, msg: impl Into<String>) -> Error {
    Error::data(dir.display().to_string(), msg)
}

/// The weights file of a model folder (or module sub-folder): safetensors,
/// or a PyTorch `pytorch_model.bin` read as tensors only.
fn weights_in(dir: &Path, dev: &Device) -> Result<Option<VarBuilder<'static>>> {
    let st = dir.join("model.safetensors");
    if st.exists() {
        // A pipe or a device would be waited on, or mapped, without end.
        recur_core::fsx::refuse_non_file(&st)?;
        // SAFETY: the file is memory-mapped read-only; recur does not write
        // to model folders while an encoder is loaded.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&st], DType::F32, dev) }
            .map_err(|e| Error::checkpoint(&st, e.to_string()))?;
        return Ok(Some(vb));
    }
    let bin = dir.join("pytorch_model.bin");
    if bin.exists() {
        recur_core::fsx::refuse_non_file(&bin)?;
        let vb = VarBuilder::from_pth(&bin, DType::F32, dev)
            .map_err(|e| Error::checkpoint(&bin, e.to_string()))?;
        return Ok(Some(vb));
    }
    Ok(None)
}

impl SentenceEncoder {
    /// Loads a model folder; every missing file or mismatch is an error
    /// naming the folder and what would be right.
    pub fn load(dir: &Path, dev: &Device) -> Result<SentenceEncoder> {
        if !dir.is_dir() {
            return Err(bad(
                dir,
                "no such folder; give a sentence-transformers model folder (config.json, \
                 tokenizer.json, model.safetensors) or a name `recur models fetch` knows",
            ));
        }
        for f in ["config.json", "tokenizer.json"] {
            if !dir.join(f).exists() {
                return Err(bad(dir, format!("no {f} in the model folder")));
            }
        }
        let cfg_path = dir.join("config.json");
        let cfg_text = recur_core::fsx::read_text(&cfg_path)?;
        let mt: ModelType = serde_json::from_str(&cfg_text)
            .map_err(|e| Error::data(cfg_path.display().to_string(), e.to_string()))?;
        let kind = match mt.model_type.as_deref() {
            Some("bert") => "bert",
            Some("t5") | Some("mt5") => "t5",
            other => {
                let arch = mt.architectures.unwrap_or_default().join(", ");
                return Err(bad(
                    &cfg_path,
                    format!(
                        "model_type {} (architectures [{arch}]) is not an encoder recur runs; \
                         it runs BERT (model_type bert) and T5 (model_type t5) models (RoBERTa's \
                         offset positions are not supported)",
                        other.unwrap_or("(none)")
                    ),
                ));
            }
        };
        let Some(vb) = weights_in(dir, dev)? else {
            return Err(bad(
                dir,
                "no model.safetensors (or pytorch_model.bin) in the model folder: the weights are missing",
            ));
        };
        let tok_path = dir.join("tokenizer.json");
        recur_core::fsx::refuse_non_file(&tok_path)?;
        let mut tokenizer = Tokenizer::from_file(&tok_path)
            .map_err(|e| Error::data(tok_path.display().to_string(), e.to_string()))?;
        let tok_vocab = tokenizer.get_vocab_size(true);
        if let Some(v) = mt.vocab_size {
            if tok_vocab > v {
                return Err(bad(
                    dir,
                    format!(
                        "tokenizer.json has {tok_vocab} tokens but config.json's vocab_size is {v}: \
                         the tokenizer belongs to another model"
                    ),
                ));
            }
        }
        let what = |e: candle_core::Error| {
            Error::checkpoint(
                dir,
                format!("the weights do not fit config.json ({kind}): {e}"),
            )
        };
        let (backbone, hidden, positions) = if kind == "bert" {
            let c: bert::Config = serde_json::from_str(&cfg_text)
                .map_err(|e| Error::data(cfg_path.display().to_string(), e.to_string()))?;
            let m = crate::bert::Bert::load(vb, &c).map_err(what)?;
            (
                Backbone::Bert(m),
                c.hidden_size,
                Some(c.max_position_embeddings),
            )
        } else {
            let c: t5::Config = serde_json::from_str(&cfg_text)
                .map_err(|e| Error::data(cfg_path.display().to_string(), e.to_string()))?;
            let m = t5::T5EncoderModel::load(vb, &c).map_err(what)?;
            (Backbone::T5(Mutex::new(m)), c.d_model, None)
        };
        let (pooling, dense) = Self::modules(dir, hidden, dev)?;
        let dim = dense.last().map_or(hidden, |d: &Dense| d.linear.outputs());
        // The model's own limit: sentence-transformers' max_seq_length,
        // else the position table (BERT); T5's relative positions have no
        // table, and 512 is what it was trained with.
        let st_max = dir.join("sentence_bert_config.json");
        let st_max = if st_max.exists() {
            read_json::<serde_json::Value>(&st_max)?
                .get("max_seq_length")
                .and_then(|v| v.as_u64())
                .map(|v| v as usize)
        } else {
            None
        };
        let max_len = st_max
            .or(positions)
            .unwrap_or(512)
            .min(positions.unwrap_or(usize::MAX));
        let specials = tokenizer
            .get_post_processor()
            .map_or(0, |p| p.added_tokens(false));
        if max_len <= specials {
            return Err(bad(
                dir,
                format!(
                    "the maximum length is {max_len} tokens, not more than the {specials} special \
                     tokens the tokenizer adds; fix max_seq_length in sentence_bert_config.json"
                ),
            ));
        }
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_len,
                ..Default::default()
            }))
            .map_err(|e| Error::data(tok_path.display().to_string(), e.to_string()))?;
        // recur never pads: BERT batches are packed, T5 batches hold one
        // length.
        tokenizer.with_padding(None);
        Ok(SentenceEncoder {
            backbone,
            tokenizer,
            pooling,
            dense,
            dim,
            max_len,
            kind,
            dir: dir.to_path_buf(),
            device: dev.clone(),
        })
    }

    /// Reads `modules.json` (when present) for the pooling mode and any
    /// Dense modules; without it, mean pooling as SYSTEM.md asks.
    fn modules(dir: &Path, hidden: usize, dev: &Device) -> Result<(Pooling, Vec<Dense>)> {
        let mpath = dir.join("modules.json");
        if !mpath.exists() {
            return Ok((Pooling::Mean, Vec::new()));
        }
        let modules: Vec<StModule> = read_json(&mpath)?;
        let (mut pooling, mut dense, mut width) = (Pooling::Mean, Vec::new(), hidden);
        for m in modules {
            let sub = dir.join(&m.path);
            let short = m.kind.rsplit('.').next().unwrap_or(&m.kind);
            match short {
                "Transformer" | "Normalize" => {}
                "Pooling" => {
                    let p = sub.join("config.json");
                    if p.exists() {
                        let c: PoolingConfig = read_json(&p)?;
                        pooling = match (
                            c.pooling_mode_mean_tokens,
                            c.pooling_mode_cls_token,
                            c.pooling_mode_max_tokens,
                            c.pooling_mode_mean_sqrt_len_tokens,
                        ) {
                            (true, false, false, false) => Pooling::Mean,
                            (false, true, false, false) => Pooling::Cls,
                            (false, false, true, false) => Pooling::Max,
                            _ => {
                                return Err(bad(
                                    &p,
                                    "only one of mean, cls or max pooling may be on; \
                                     recur does not run sqrt-length or concatenated pooling",
                                ))
                            }
                        };
                    }
                }
                "Dense" => {
                    let c: DenseConfig = read_json(&sub.join("config.json"))?;
                    let tanh = match c.activation_function.rsplit('.').next() {
                        Some("Tanh") => true,
                        Some("Identity") | Some("") | None => false,
                        Some(a) => {
                            return Err(bad(
                                &sub,
                                format!("Dense activation {a} is not supported (Identity or Tanh)"),
                            ))
                        }
                    };
                    if c.in_features == 0 || c.out_features == 0 {
                        return Err(bad(
                            &sub,
                            format!(
                                "Dense is {} -> {} features; both must be positive",
                                c.in_features, c.out_features
                            ),
                        ));
                    }
                    if c.in_features != width {
                        return Err(bad(
                            &sub,
                            format!(
                                "Dense takes {} features but the layer before gives {width}",
                                c.in_features
                            ),
                        ));
                    }
                    let vb = weights_in(&sub, dev)?
                        .ok_or_else(|| bad(&sub, "the Dense module has no weights file"))?;
                    let miss = |e: candle_core::Error| Error::checkpoint(&sub, e.to_string());
                    let vec = |t: candle_core::Result<Tensor>| {
                        t.and_then(|t| t.flatten_all()?.to_vec1::<f32>())
                            .map_err(miss)
                    };
                    let weight = vec(vb.get((c.out_features, c.in_features), "linear.weight"))?;
                    let bias = if c.bias {
                        Some(vec(vb.get(c.out_features, "linear.bias"))?)
                    } else {
                        None
                    };
                    width = c.out_features;
                    dense.push(Dense {
                        linear: PackedLinear::new(&weight, c.in_features, bias.as_deref()),
                        tanh,
                    });
                }
                other => {
                    return Err(bad(
                        &mpath,
                        format!("module {other} is not one recur runs (Transformer, Pooling, Dense, Normalize)"),
                    ))
                }
            }
        }
        Ok((pooling, dense))
    }

    /// Embeddings of `texts`, `[n, dim]` row-major, unit length, in input
    /// order, `batch` sentences per forward pass.
    ///
    /// ```no_run
    /// # fn main() -> recur_core::Result<()> {
    /// use recur_core::progress::SILENT;
    /// use recur_text::{fetch, SentenceEncoder};
    /// let dir = fetch::resolve_encoder("all-MiniLM-L6-v2", false, &SILENT)?;
    /// let enc = SentenceEncoder::load(&dir, &candle_core::Device::Cpu)?;
    /// let v = enc.encode(&["The cat sat.", "It rained."], 32)?;
    /// assert_eq!(v.len(), 2 * enc.dim);
    /// # Ok(())
    /// # }
    /// ```
    pub fn encode(&self, texts: &[&str], batch: usize) -> Result<Vec<f32>> {
        let mut out = vec![0f32; texts.len() * self.dim];
        if texts.is_empty() {
            return Ok(out);
        }
        let heads: Vec<&str> = texts.iter().map(|t| self.head(t)).collect::<Result<_>>()?;
        let encs = self
            .tokenizer
            .encode_batch(heads, true)
            .map_err(|e| Error::Msg(format!("cannot tokenize: {e}")))?;
        // Sort by length so each batch pads little (BERT) or, for T5,
        // holds one length only.
        let lens: Vec<usize> = encs.iter().map(|e| e.len()).collect();
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| (lens[i], i));
        let batch = batch.max(1);
        let mut start = 0;
        while start < order.len() {
            let mut end = (start + batch).min(order.len());
            if self.kind == "t5" {
                let l = lens[order[start]];
                end = start
                    + order[start..end]
                        .iter()
                        .take_while(|&&i| lens[i] == l)
                        .count();
            }
            let idx = &order[start..end];
            let seqs: Vec<&[u32]> = idx.iter().map(|&i| encs[i].get_ids()).collect();
            let emb = self.forward(&seqs)?;
            for (row, &i) in idx.iter().enumerate() {
                out[i * self.dim..(i + 1) * self.dim]
                    .copy_from_slice(&emb[row * self.dim..(row + 1) * self.dim]);
            }
            start = end;
        }
        Ok(out)
    }

    /// The start of `text` that tokenizes to the same first `max_len`
    /// tokens as the whole: the text itself unless it is long. The
    /// tokenizer works on the whole of what it is given, at about 100
    /// bytes of memory a character (a 30 MB line took 3 GB), for tokens
    /// truncation then drops. Cut at a space, the words before the cut
    /// tokenize as they do in the whole text (both tokenizers split at
    /// spaces first), so a start that still fills `max_len` tokens gives
    /// the same ones; a start that does not is doubled until it does or
    /// is the whole text (one word of megabytes is tokenized whole).
    fn head<'a>(&self, text: &'a str) -> Result<&'a str> {
        let mut cap = self.max_len.saturating_mul(32).max(4096);
        while cap < text.len() {
            let mut at = cap;
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            let Some(space) = text[..at].rfind(splits_words) else {
                return Ok(text);
            };
            let start = &text[..space];
            let e = self
                .tokenizer
                .encode(start, true)
                .map_err(|e| Error::Msg(format!("cannot tokenize: {e}")))?;
            if e.len() >= self.max_len {
                return Ok(start);
            }
            cap = cap.saturating_mul(2);
        }
        Ok(text)
    }

    /// One batch of token sequences (for T5, all of one length) through
    /// the network, pooling, Dense and norm: `[seqs, dim]`.
    fn forward(&self, seqs: &[&[u32]]) -> Result<Vec<f32>> {
        let (hidden, offsets, width) = match &self.backbone {
            Backbone::Bert(m) => {
                let (x, offsets) = m.forward(seqs)?;
                (x, offsets, m.hidden())
            }
            Backbone::T5(m) => {
                let l = seqs.first().map_or(0, |s| s.len());
                let ids: Vec<u32> = seqs.iter().flat_map(|s| s.iter().copied()).collect();
                let ids_t = Tensor::from_vec(ids, (seqs.len(), l), &self.device)?;
                let mut m = m
                    .lock()
                    .map_err(|_| Error::Msg("the T5 encoder panicked earlier".into()))?;
                let out = m.forward(&ids_t)?;
                let width = out.dim(2)?;
                let x = out.flatten_all()?.to_vec1::<f32>()?;
                let offsets = (0..=seqs.len()).map(|s| s * l).collect();
                (x, offsets, width)
            }
        };
        let mut pooled: Vec<f32> = Vec::with_capacity(seqs.len() * width);
        for s in offsets.windows(2) {
            let rows = hidden[s[0] * width..s[1] * width].chunks_exact(width);
            let n = s[1] - s[0];
            match self.pooling {
                Pooling::Mean => {
                    let mut sum = vec![0f32; width];
                    for r in rows {
                        sum.iter_mut().zip(r).for_each(|(a, b)| *a += b);
                    }
                    // sentence-transformers divides by max(count, 1e-9).
                    let n = (n as f32).max(1e-9);
                    pooled.extend(sum.iter().map(|v| v / n));
                }
                Pooling::Cls => pooled.extend_from_slice(&hidden[s[0] * width..][..width]),
                Pooling::Max => {
                    let mut m = vec![f32::NEG_INFINITY; width];
                    for r in rows {
                        m.iter_mut().zip(r).for_each(|(a, b)| *a = a.max(*b));
                    }
                    pooled.extend(m);
                }
            }
        }
        let mut width = width;
        for d in &self.dense {
            let out = d.linear.outputs();
            let mut next = vec![0f32; seqs.len() * out];
            d.linear.forward(&pooled, &mut next, 1);
            if d.tanh {
                next.iter_mut().for_each(|v| *v = v.tanh());
            }
            (pooled, width) = (next, out);
        }
        for row in pooled.chunks_exact_mut(width) {
            let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
            row.iter_mut().for_each(|v| *v /= norm);
        }
        Ok(pooled)
    }
}

/// Whether the tokenizer splits words at `c`: BERT's cleaning deletes the
/// controls among Rust's whitespace (U+0085, VT, FF) before it splits, so
/// `un\u{85}believable` is one word to it, and a long text cut there gave
/// another text's vector.
fn splits_words(c: char) -> bool {
    c.is_whitespace() && (!c.is_control() || matches!(c, '\t' | '\n' | '\r'))
}

/// The texts to embed, one per line of `input` (`name` says where they
/// come from in errors): every line UTF-8 and not blank, within
/// [`MAX_TEXT_LINE`] and [`MAX_TEXT_INPUT`].
pub fn read_texts(mut input: impl std::io::BufRead, name: &str) -> Result<Vec<String>> {
    read_texts_within(&mut input, name, MAX_TEXT_LINE, MAX_TEXT_INPUT)
}

/// The longest line [`read_texts`] takes (the encoder reads the first
/// 256-512 tokens of a text; a line is held whole only while it is read).
pub const MAX_TEXT_LINE: usize = 16 << 20;
/// The most text [`read_texts`] takes in all: `recur embed < /dev/zero`
/// grew without end (one line, no newline) until the allocator aborted.
pub const MAX_TEXT_INPUT: u64 = 1 << 30;

fn read_texts_within(
    input: &mut impl std::io::BufRead,
    name: &str,
    max_line: usize,
    max_input: u64,
) -> Result<Vec<String>> {
    use std::io::{BufRead, Read};
    let mut v = Vec::new();
    let mut total = 0u64;
    for i in 1.. {
        let mut buf = Vec::new();
        let n = input
            .by_ref()
            .take(max_line as u64 + 1)
            .read_until(b'\n', &mut buf)
            .map_err(|e| Error::Msg(format!("{name}: {e}")))?;
        if n == 0 {
            break;
        }
        total += n as u64;
        if buf.last() == Some(&b'\n') {
            buf.pop();
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
        } else if n > max_line {
            return Err(Error::Msg(format!(
                "{name} line {i} is longer than {max_line} bytes: give one text per line (the \
                 encoder reads a text's first few hundred words)"
            )));
        }
        if total > max_input {
            return Err(Error::Msg(format!(
                "{name} holds more than {max_input} bytes of text: encode it in parts"
            )));
        }
        let line = String::from_utf8(buf).map_err(|_| {
            Error::Msg(format!(
                "{name} line {i}: not UTF-8 text; convert it to UTF-8 first (iconv -t UTF-8)"
            ))
        })?;
        if line.trim().is_empty() {
            return Err(Error::Msg(format!(
                "{name} line {i} is empty; give one text per line"
            )));
        }
        v.push(line);
    }
    Ok(v)
}

/// Whether a text holds a character the sentence encoder keeps: BERT's
/// cleaning drops NUL, U+FFFD, control, format and private-use characters
/// (Cc, Cf, Co) and folds whitespace, and its accent stripping drops
/// nonspacing marks (Mn). These are the tables of the `unicode_categories`
/// crate, which the `tokenizers` crate's BERT normaliser reads: a text of
/// only such characters (a right-to-left override, variation selectors, a
/// tag space) reached the model as nothing at all and got a confident
/// answer.
pub fn visible(t: &str) -> bool {
    use unicode_categories::UnicodeCategories;
    t.chars().any(|c| {
        !(c == '\0'
            || c == '\u{FFFD}'
            || c.is_whitespace()
            || c.is_other()
            || c.is_mark_nonspacing())
    })
}

/// Refuses an empty list of texts, a blank one, or one the encoder would
/// see as nothing ([`visible`]).
pub fn check_texts(texts: &[String]) -> Result<()> {
    if let Some(i) = texts.iter().position(|t| t.trim().is_empty()) {
        return Err(Error::Msg(format!(
            "text {} is empty; there is nothing to embed",
            i + 1
        )));
    }
    // Texts of only characters the encoder drops (a zero-width space,
    // controls) were all embedded as the empty sentence.
    if let Some(i) = texts.iter().position(|t| !visible(t)) {
        return Err(Error::Msg(format!(
            "text {} holds only characters the encoder drops (controls, zero-width or format \
             characters, combining marks); there is nothing to embed",
            i + 1
        )));
    }
    if texts.is_empty() {
        return Err(Error::Msg(
            "no texts: give them as arguments or one per line on standard input".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_text_is_cut_only_where_the_tokenizer_splits_words() {
        for c in [' ', '\t', '\n', '\r', '\u{3000}', '\u{a0}', '\u{2028}'] {
            assert!(splits_words(c), "{c:?}");
        }
        for c in ['\u{85}', '\u{b}', '\u{c}', 'a', '\u{200b}'] {
            assert!(!splits_words(c), "{c:?}");
        }
    }

    /// One text per line, `\r\n` too; an empty line, bytes that are not
    /// UTF-8, a line past the bound and an input past the bound are each
    /// refused by line, without reading on (`/dev/zero` has no newline).
    #[test]
    fn texts_are_read_by_line_within_bounds() {
        let read = |b: &[u8], line: usize, all: u64| {
            read_texts_within(&mut std::io::Cursor::new(b.to_vec()), "stdin", line, all)
        };
        assert_eq!(
            read(b"a b\r\nc \nd", 10, 100).unwrap(),
            vec!["a b", "c ", "d"]
        );
        let e = read(b"a\n\nb\n", 10, 100).unwrap_err().to_string();
        assert!(e.contains("stdin line 2 is empty"), "{e}");
        let e = read(b"a\n\xff\n", 10, 100).unwrap_err().to_string();
        assert!(e.contains("stdin line 2: not UTF-8"), "{e}");
        assert_eq!(read(b"0123456789\n", 10, 100).unwrap(), vec!["0123456789"]);
        let e = read(b"a\n0123456789x", 10, 100).unwrap_err().to_string();
        assert!(e.contains("stdin line 2 is longer than 10 bytes"), "{e}");
        let e = read(b"abcd\nefgh\nijkl\n", 10, 12).unwrap_err().to_string();
        assert!(e.contains("more than 12 bytes"), "{e}");
        let mut zeros = std::io::BufReader::new(std::io::Read::take(std::io::repeat(0), 1 << 40));
        let e = read_texts_within(&mut zeros, "z", 1 << 20, 1 << 30)
            .unwrap_err()
            .to_string();
        assert!(e.contains("z line 1 is longer than 1048576 bytes"), "{e}");
    }
}

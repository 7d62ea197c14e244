//! Tiny, randomly initialised sentence encoders written to a folder in the
//! layout of a real one (`config.json`, `tokenizer.json`,
//! `model.safetensors`, sentence-transformers' `modules.json`), so tests and
//! examples run the real loading and encoding code with no download.
//!
//! The weights come from recur's seeded generator, so a seed gives the
//! same model on every machine. The tokenizer files deliberately force
//! padding and truncation as real ones do (MiniLM's forces 128), which the
//! encoder must override with the model's own maximum.

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use candle_transformers::models::{bert, t5};
use recur_core::rng::Rng;
use recur_core::{Error, Result};
use serde_json::{json, Value};
use std::path::Path;

/// Words of the tiny vocabularies; other words fall back to letters.
const WORDS: &[&str] = &[
    "the", "a", "man", "woman", "is", "was", "eating", "food", "piece", "of", "bread", "cat",
    "dog", "sat", "on", "mat", "river", "city", "king", "queen", "war", "music", "rain", "sun",
    "and", "in", "to", "it", "he", "she", "they", "we", "you", "this", "that", "with", "for", "by",
    "from", "at",
];

/// The tiny BERT's model width and its position table.
pub const BERT_HIDDEN: usize = 32;
pub const BERT_POSITIONS: usize = 64;
/// `max_seq_length` the tiny BERT's sentence_bert_config.json gives.
pub const BERT_MAX_SEQ: usize = 48;
pub const T5_D_MODEL: usize = 32;

fn write(dir: &Path, name: &str, v: &Value) -> Result<()> {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    std::fs::write(&p, serde_json::to_string_pretty(v).expect("json")).map_err(|e| Error::io(&p, e))
}

fn added(id: usize, content: &str) -> Value {
    json!({"id": id, "content": content, "single_word": false, "lstrip": false,
           "rstrip": false, "normalized": false, "special": true})
}

/// Sets every variable from the seeded generator (sorted by name, so the
/// order is fixed) and saves the map as safetensors.
fn seeded_save(vm: &VarMap, seed: u64, path: &Path) -> Result<()> {
    let mut rng = Rng::new(seed);
    let data = vm.data().lock().expect("var map lock");
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    for name in names {
        let var = &data[name];
        let n = var.elem_count();
        let rank1_weight = var.rank() == 1 && name.ends_with("weight");
        let vals: Vec<f32> = (0..n)
            .map(|_| {
                let u = rng.uniform(-1.0, 1.0);
                if rank1_weight {
                    1.0 + 0.1 * u
                } else {
                    0.2 * u
                }
            })
            .collect();
        var.set(&Tensor::from_vec(vals, var.shape(), var.device())?)?;
    }
    drop(data);
    vm.save(path)
        .map_err(|e| Error::checkpoint(path, e.to_string()))
}

/// Writes a 2-layer BERT (hidden 32) with a WordPiece tokenizer and mean
/// pooling into `dir`.
pub fn write_bert(dir: &Path, seed: u64) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut vocab = serde_json::Map::new();
    let specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];
    let mut tokens: Vec<String> = specials.iter().map(|s| s.to_string()).collect();
    tokens.extend(WORDS.iter().map(|s| s.to_string()));
    for c in 'a'..='z' {
        tokens.push(c.to_string());
        tokens.push(format!("##{c}"));
    }
    for p in [".", ",", "!", "?", "'"] {
        tokens.push(p.to_string());
    }
    for (i, t) in tokens.iter().enumerate() {
        vocab.insert(t.clone(), json!(i));
    }
    let tok = json!({
        "version": "1.0",
        "truncation": {"max_length": 8, "strategy": "LongestFirst", "stride": 0},
        "padding": {"strategy": {"Fixed": 128}, "direction": "Right", "pad_to_multiple_of": null,
                    "pad_id": 0, "pad_type_id": 0, "pad_token": "[PAD]"},
        "added_tokens": specials.iter().enumerate().map(|(i, s)| added(i, s)).collect::<Vec<_>>(),
        "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true,
                       "strip_accents": null, "lowercase": true},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {"type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                       {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "[SEP]", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}},
                     {"SpecialToken": {"id": "[SEP]", "type_id": 1}}],
            "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [2], "tokens": ["[CLS]"]},
                               "[SEP]": {"id": "[SEP]", "ids": [3], "tokens": ["[SEP]"]}}},
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true},
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                  "max_input_chars_per_word": 100, "vocab": vocab}
    });
    write(dir, "tokenizer.json", &tok)?;
    let config = json!({
        "architectures": ["BertModel"], "model_type": "bert", "vocab_size": tokens.len(),
        "hidden_size": BERT_HIDDEN, "num_hidden_layers": 2, "num_attention_heads": 4,
        "intermediate_size": 64, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1, "max_position_embeddings": BERT_POSITIONS,
        "type_vocab_size": 2, "initializer_range": 0.02, "layer_norm_eps": 1e-12,
        "pad_token_id": 0, "position_embedding_type": "absolute"
    });
    write(dir, "config.json", &config)?;
    write_st_modules(dir, BERT_HIDDEN)?;
    write(
        dir,
        "sentence_bert_config.json",
        &json!({"max_seq_length": BERT_MAX_SEQ, "do_lower_case": false}),
    )?;
    let cfg: bert::Config = serde_json::from_value(config).expect("bert config");
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
    bert::BertModel::load(vb, &cfg)?;
    seeded_save(&vm, seed, &dir.join("model.safetensors"))
}

fn write_st_modules(dir: &Path, width: usize) -> Result<()> {
    write(
        dir,
        "modules.json",
        &json!([
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}
        ]),
    )?;
    write(
        dir,
        "1_Pooling/config.json",
        &json!({"word_embedding_dimension": width, "pooling_mode_cls_token": false,
                "pooling_mode_mean_tokens": true, "pooling_mode_max_tokens": false,
                "pooling_mode_mean_sqrt_len_tokens": false}),
    )
}

/// Writes a 2-layer T5 encoder (d_model 32) with a Unigram tokenizer, mean
/// pooling and, as GTR-T5 has, a Dense layer without bias (32 -> `dense_out`).
pub fn write_t5(dir: &Path, seed: u64, dense_out: usize) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let specials = ["<pad>", "</s>", "<unk>"];
    let mut vocab: Vec<Value> = specials.iter().map(|s| json!([s, 0.0])).collect();
    vocab.push(json!(["\u{2581}", -2.0]));
    for w in WORDS {
        vocab.push(json!([format!("\u{2581}{w}"), -3.0]));
    }
    for c in ('a'..='z').chain(".,!?'".chars()) {
        vocab.push(json!([c.to_string(), -5.0]));
    }
    let n_vocab = vocab.len();
    let meta = json!({"type": "Metaspace", "replacement": "\u{2581}", "prepend_scheme": "always", "split": true});
    let tok = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": specials.iter().enumerate().map(|(i, s)| added(i, s)).collect::<Vec<_>>(),
        "normalizer": null,
        "pre_tokenizer": meta,
        "post_processor": {"type": "TemplateProcessing",
            "single": [{"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}}],
            "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}},
                     {"Sequence": {"id": "B", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}}],
            "special_tokens": {"</s>": {"id": "</s>", "ids": [1], "tokens": ["</s>"]}}},
        "decoder": meta,
        "model": {"type": "Unigram", "unk_id": 2, "vocab": vocab, "byte_fallback": false}
    });
    write(dir, "tokenizer.json", &tok)?;
    let config = json!({
        "architectures": ["T5EncoderModel"], "model_type": "t5", "vocab_size": n_vocab,
        "d_model": T5_D_MODEL, "d_kv": 8, "d_ff": 64, "num_layers": 2, "num_heads": 4,
        "relative_attention_num_buckets": 8, "relative_attention_max_distance": 16,
        "dropout_rate": 0.0, "layer_norm_epsilon": 1e-6, "initializer_factor": 1.0,
        "feed_forward_proj": "relu", "is_encoder_decoder": true, "pad_token_id": 0,
        "eos_token_id": 1, "decoder_start_token_id": 0
    });
    write(dir, "config.json", &config)?;
    write_st_modules(dir, T5_D_MODEL)?;
    let cfg: t5::Config = serde_json::from_value(config).expect("t5 config");
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
    t5::T5EncoderModel::load(vb, &cfg)?;
    seeded_save(&vm, seed, &dir.join("model.safetensors"))?;
    // The Dense module, as sentence-transformers writes it.
    let mut modules: Vec<Value> =
        serde_json::from_str(&recur_core::fsx::read_text(&dir.join("modules.json"))?)
            .expect("modules.json");
    modules.insert(
        2,
        json!({"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"}),
    );
    write(dir, "modules.json", &json!(modules))?;
    write(
        dir,
        "2_Dense/config.json",
        &json!({"in_features": T5_D_MODEL, "out_features": dense_out, "bias": false,
                "activation_function": "torch.nn.modules.linear.Identity"}),
    )?;
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
    vb.pp("linear")
        .get_with_hints((dense_out, T5_D_MODEL), "weight", candle_nn::init::ZERO)?;
    seeded_save(&vm, seed + 1, &dir.join("2_Dense/model.safetensors"))
}

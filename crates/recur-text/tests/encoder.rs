//! The sentence encoders on tiny random BERT and T5 models written by the
//! tests themselves: loading, pooling, batching, the length limit and the
//! errors a user meets.

use candle_core::Device;
use recur_text::tiny;
use recur_text::SentenceEncoder;
use std::path::Path;

const TEXTS: &[&str] = &[
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The cat sat on the mat",
    "rain",
    "She was in the city with the king and the queen of the river, and they sat on it.",
];

fn cos(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Every text encoded in one padded batch equals it encoded alone, and the
/// vectors have unit length: padding is masked (BERT) or never made (T5).
fn check_batches(enc: &SentenceEncoder) {
    let all = enc.encode(TEXTS, 8).unwrap();
    assert_eq!(all.len(), TEXTS.len() * enc.dim);
    for (i, t) in TEXTS.iter().enumerate() {
        let one = enc.encode(&[t], 1).unwrap();
        let row = &all[i * enc.dim..(i + 1) * enc.dim];
        assert!(
            max_diff(row, &one) < 1e-5,
            "{t}: batch {row:?} vs alone {one:?}"
        );
        assert!((cos(row, row) - 1.0).abs() < 1e-5);
    }
    // Different sentences give different vectors; the same one the same.
    let (a, b) = (&all[..enc.dim], &all[enc.dim..2 * enc.dim]);
    assert!(cos(a, b) < 0.9999);
    assert_eq!(enc.encode(TEXTS, 8).unwrap(), all);
}

/// A text of megabytes gives the vector of its start: the same tokens, so
/// the same bits (only the start is tokenized, not the megabytes the
/// truncation then dropped).
fn check_long_text(enc: &SentenceEncoder) {
    let mut long = String::new();
    while long.len() < 3_000_000 {
        long += TEXTS.join(" ").as_str();
        long.push(' ');
    }
    let start = &long[..long[..2_000].rfind(' ').unwrap()];
    let (a, b) = (
        enc.encode(&[&long], 1).unwrap(),
        enc.encode(&[start], 1).unwrap(),
    );
    assert_eq!(a, b);
    // With no space to cut at, the text is taken whole, as before.
    let word = "x".repeat(200_000);
    assert_eq!(enc.encode(&[&word], 1).unwrap().len(), enc.dim);
}

#[test]
fn bert_pools_over_the_mask_and_batches_exactly() {
    let d = tempfile::tempdir().unwrap();
    tiny::write_bert(d.path(), 7).unwrap();
    let enc = SentenceEncoder::load(d.path(), &Device::Cpu).unwrap();
    assert_eq!((enc.kind, enc.dim), ("bert", tiny::BERT_HIDDEN));
    check_batches(&enc);
    check_long_text(&enc);
    // Batch size does not change anything either.
    assert!(
        max_diff(
            &enc.encode(TEXTS, 2).unwrap(),
            &enc.encode(TEXTS, 5).unwrap()
        ) < 1e-5
    );
}

/// recur's own BERT forward (packed, no padding) against
/// candle-transformers' `BertModel` on a padded, masked batch, pooled and
/// normalised the way sentence-transformers does: the two must agree.
#[test]
fn bert_forward_equals_candles_padded_and_masked_model() {
    use candle_core::{DType, Tensor};
    use candle_transformers::models::bert;
    let d = tempfile::tempdir().unwrap();
    tiny::write_bert(d.path(), 3).unwrap();
    let enc = SentenceEncoder::load(d.path(), &Device::Cpu).unwrap();
    let got = enc.encode(TEXTS, 8).unwrap();

    let mut tok = tokenizers::Tokenizer::from_file(d.path().join("tokenizer.json")).unwrap();
    tok.with_truncation(Some(tokenizers::TruncationParams {
        max_length: tiny::BERT_MAX_SEQ,
        ..Default::default()
    }))
    .unwrap();
    tok.with_padding(Some(tokenizers::PaddingParams::default()));
    let encs = tok.encode_batch(TEXTS.to_vec(), true).unwrap();
    let (b, l) = (encs.len(), encs[0].len());
    assert!(
        encs.iter().any(|e| e.get_attention_mask().contains(&0)),
        "some padding"
    );
    let flat = |f: fn(&tokenizers::Encoding) -> &[u32]| -> Vec<u32> {
        encs.iter().flat_map(|e| f(e).to_vec()).collect()
    };
    let ids = Tensor::from_vec(flat(|e| e.get_ids()), (b, l), &Device::Cpu).unwrap();
    let mask = Tensor::from_vec(flat(|e| e.get_attention_mask()), (b, l), &Device::Cpu).unwrap();
    let cfg: bert::Config =
        serde_json::from_str(&std::fs::read_to_string(d.path().join("config.json")).unwrap())
            .unwrap();
    let st = d.path().join("model.safetensors");
    // SAFETY: the file is not written while mapped.
    let vb = unsafe {
        candle_nn::VarBuilder::from_mmaped_safetensors(&[&st], DType::F32, &Device::Cpu).unwrap()
    };
    let model = bert::BertModel::load(vb, &cfg).unwrap();
    let hidden = model
        .forward(&ids, &ids.zeros_like().unwrap(), Some(&mask))
        .unwrap();
    let m = mask.to_dtype(DType::F32).unwrap().unsqueeze(2).unwrap();
    let pooled = hidden
        .broadcast_mul(&m)
        .unwrap()
        .sum(1)
        .unwrap()
        .broadcast_div(&m.sum(1).unwrap())
        .unwrap();
    let norm = pooled
        .sqr()
        .unwrap()
        .sum_keepdim(1)
        .unwrap()
        .sqrt()
        .unwrap();
    let want: Vec<f32> = pooled
        .broadcast_div(&norm)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let worst = max_diff(&got, &want);
    assert!(
        worst < 1e-5,
        "max abs difference from candle's BertModel {worst:e}"
    );
}

#[test]
fn the_models_length_limit_replaces_the_tokenizers_forced_one() {
    let d = tempfile::tempdir().unwrap();
    tiny::write_bert(d.path(), 7).unwrap();
    let enc = SentenceEncoder::load(d.path(), &Device::Cpu).unwrap();
    // tokenizer.json forces truncation at 8 tokens; the model says 48.
    assert_eq!(enc.max_len, tiny::BERT_MAX_SEQ);
    let short = "the man was eating food in the city";
    let long = format!("{short} with the king and the queen");
    let v = enc.encode(&[short, &long], 4).unwrap();
    assert!(
        cos(&v[..enc.dim], &v[enc.dim..]) < 0.9999,
        "the words after token 8 were cut off"
    );
    // Past the model's limit, text is cut: these two differ only after it.
    let words = "the ".repeat(60);
    let v = enc
        .encode(&[&format!("{words} cat"), &format!("{words} dog")], 4)
        .unwrap();
    assert!(max_diff(&v[..enc.dim], &v[enc.dim..]) < 1e-6);
}

#[test]
fn t5_with_a_dense_module_batches_exactly() {
    let d = tempfile::tempdir().unwrap();
    tiny::write_t5(d.path(), 11, 24).unwrap();
    let enc = SentenceEncoder::load(d.path(), &Device::Cpu).unwrap();
    assert_eq!((enc.kind, enc.dim), ("t5", 24));
    check_batches(&enc);
    check_long_text(&enc);
    // A Dense module with no outputs is refused, not a crash.
    let cfg = d.path().join("2_Dense/config.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg).unwrap()).unwrap();
    v["out_features"] = serde_json::json!(0);
    std::fs::write(&cfg, v.to_string()).unwrap();
    let e = err(d.path());
    assert!(e.contains("both must be positive"), "{e}");
}

fn err(dir: &Path) -> String {
    match SentenceEncoder::load(dir, &Device::Cpu) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_model_folders_are_clear_errors() {
    let d = tempfile::tempdir().unwrap();
    let m = d.path().join("m");
    tiny::write_bert(&m, 1).unwrap();

    let e = err(&d.path().join("nowhere"));
    assert!(e.contains("no such folder"), "{e}");

    std::fs::rename(m.join("model.safetensors"), d.path().join("w")).unwrap();
    let e = err(&m);
    assert!(
        e.contains("no model.safetensors") && e.contains("weights are missing"),
        "{e}"
    );
    std::fs::rename(d.path().join("w"), m.join("model.safetensors")).unwrap();

    // A tokenizer of another model: more tokens than the embedding table.
    let cfg_path = m.join("config.json");
    let cfg = std::fs::read_to_string(&cfg_path).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&cfg).unwrap();
    v["vocab_size"] = serde_json::json!(10);
    std::fs::write(&cfg_path, v.to_string()).unwrap();
    let e = err(&m);
    assert!(
        e.contains("vocab_size is 10") && e.contains("another model"),
        "{e}"
    );

    // Weights that do not fit the config: a wider model than the tensors.
    v["vocab_size"] =
        serde_json::from_str::<serde_json::Value>(&cfg).unwrap()["vocab_size"].clone();
    v["hidden_size"] = serde_json::json!(64);
    std::fs::write(&cfg_path, v.to_string()).unwrap();
    let e = err(&m);
    assert!(e.contains("do not fit config.json"), "{e}");
    // A crafted config with an empty layer is refused, not a crash.
    v["hidden_size"] = serde_json::json!(tiny::BERT_HIDDEN);
    v["intermediate_size"] = serde_json::json!(0);
    std::fs::write(&cfg_path, v.to_string()).unwrap();
    let e = err(&m);
    assert!(e.contains("intermediate_size is 0"), "{e}");
    v["intermediate_size"] = serde_json::json!(64);

    v["model_type"] = serde_json::json!("gpt2");
    std::fs::write(&cfg_path, v.to_string()).unwrap();
    let e = err(&m);
    assert!(
        e.contains("model_type gpt2") && e.contains("BERT (model_type bert)"),
        "{e}"
    );

    // A named pipe for the weights or the tokenizer is refused, not
    // waited on for a writer (embed hung).
    v["model_type"] = serde_json::json!("bert");
    std::fs::write(&cfg_path, v.to_string()).unwrap();
    for f in ["model.safetensors", "tokenizer.json"] {
        std::fs::rename(m.join(f), d.path().join("aside")).unwrap();
        let made = std::process::Command::new("mkfifo")
            .arg(m.join(f))
            .status()
            .unwrap();
        assert!(made.success());
        let e = err(&m);
        assert!(e.contains(f) && e.contains("not a regular file"), "{e}");
        std::fs::remove_file(m.join(f)).unwrap();
        std::fs::rename(d.path().join("aside"), m.join(f)).unwrap();
    }

    std::fs::remove_file(m.join("tokenizer.json")).unwrap();
    let e = err(&m);
    assert!(e.contains("no tokenizer.json"), "{e}");
}

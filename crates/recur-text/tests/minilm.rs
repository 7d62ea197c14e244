//! Parity with Python: the real all-MiniLM-L6-v2 run by recur gives the
//! embeddings sentence-transformers gives (fixture from
//! scripts/make_encoder_fixtures.py) and the model card's 0.7553.
//!
//! The model is 90 MB and not committed: `.ci/run` fetches it with
//! `recur models fetch all-MiniLM-L6-v2` before the tests. Where it is
//! absent (a plain `cargo test` offline) this test says so and passes;
//! `RECUR_REQUIRE_MINILM=1` makes its absence a failure, as CI sets it.

use candle_core::Device;
use recur_text::{fetch, SentenceEncoder};

#[test]
fn minilm_matches_sentence_transformers() {
    let dir = std::env::var_os("RECUR_MINILM")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| fetch::cache_dir(fetch::known("all-MiniLM-L6-v2").unwrap()));
    if !dir.join("model.safetensors").exists() {
        assert!(
            std::env::var_os("RECUR_REQUIRE_MINILM").is_none(),
            "RECUR_REQUIRE_MINILM is set but {} holds no model",
            dir.display()
        );
        eprintln!(
            "skipped: no all-MiniLM-L6-v2 in {} (run `recur models fetch all-MiniLM-L6-v2`)",
            dir.display()
        );
        return;
    }
    let fx: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/minilm_reference.json")).unwrap();
    let sentences: Vec<&str> = fx["sentences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    let want: Vec<f32> = fx["embeddings"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
        })
        .collect();
    let enc = SentenceEncoder::load(&dir, &Device::Cpu).unwrap();
    assert_eq!((enc.dim, enc.max_len), (384, 256));
    for batch in [1, 5, 32] {
        let got = enc.encode(&sentences, batch).unwrap();
        assert_eq!((got.len(), want.len()), (12 * 384, 12 * 384));
        let worst = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        // The issue asks 1e-4; recur measures about 2e-7.
        assert!(worst < 1e-5, "batch {batch}: max abs difference {worst:e}");
        eprintln!("batch {batch}: max abs difference from sentence-transformers {worst:.2e}");
    }
    let v = enc.encode(&sentences[..2], 2).unwrap();
    let cos: f32 = v[..384].iter().zip(&v[384..]).map(|(a, b)| a * b).sum();
    assert!((cos - 0.7553).abs() < 1e-3, "cos = {cos}");
}

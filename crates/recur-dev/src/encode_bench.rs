//! `recur bench encode`: sentence-encoding throughput and batch-1 latency
//! on the sentences given, with the protocol of
//! `benches/torch_encode_bench.py` (sentence-transformers), step for step:
//! one warm-up pass over the first batches, then every sentence encoded
//! in batches of `batch` (length-sorted inside the encoder, as
//! sentence-transformers sorts), repeated until `min_seconds` have passed;
//! then 200 batch-1 calls after 10 warm-ups, on distinct sentences where
//! the file has 210 or more (`distinct_b1` says how many).

use recur_core::stats::percentile;
use recur_core::Result;
use recur_text::SentenceEncoder;
use serde::Serialize;
use std::time::Instant;

#[derive(Debug, Clone, Serialize)]
pub struct EncodeBench {
    pub encoder: String,
    pub sentences: usize,
    pub batch: usize,
    pub threads: usize,
    pub passes: usize,
    pub sentences_per_s: f64,
    pub lat_b1_p50_ms: f64,
    pub lat_b1_p95_ms: f64,
    pub lat_b1_mean_ms: f64,
    /// Distinct sentences among the 210 batch-1 calls.
    pub distinct_b1: usize,
}

impl std::fmt::Display for EncodeBench {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let r = self;
        writeln!(
            f,
            "{} sentences, batch {}, {} threads: {:.1} sentences/s ({} passes); batch-1 latency p50 {:.2} ms, p95 {:.2} ms, mean {:.2} ms",
            r.sentences, r.batch, r.threads, r.sentences_per_s, r.passes, r.lat_b1_p50_ms, r.lat_b1_p95_ms, r.lat_b1_mean_ms
        )?;
        if r.distinct_b1 < 210 {
            writeln!(
                f,
                "note: the file has {} sentences, so the 210 batch-1 calls repeat some",
                r.distinct_b1
            )?;
        }
        Ok(())
    }
}

/// The sentences of `path`, one per non-empty line; refuses a file with
/// none.
pub fn read_sentences(path: &std::path::Path) -> Result<Vec<String>> {
    let text = recur_text::sources::read_utf8(path)?;
    let texts: Vec<String> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(String::from)
        .collect();
    if texts.is_empty() {
        return Err(recur_core::Error::Msg(format!(
            "{}: no sentences",
            path.display()
        )));
    }
    Ok(texts)
}

/// Times `enc` on `texts` (see the module comment for the protocol).
pub fn run(
    enc: &SentenceEncoder,
    texts: &[String],
    batch: usize,
    threads: usize,
    min_seconds: f64,
) -> Result<EncodeBench> {
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    let texts = texts.as_slice();
    enc.encode(&texts[..texts.len().min(2 * batch)], batch)?;
    let t0 = Instant::now();
    let mut passes = 0;
    while passes == 0 || t0.elapsed().as_secs_f64() < min_seconds {
        enc.encode(texts, batch)?;
        passes += 1;
    }
    let secs = t0.elapsed().as_secs_f64();
    let mut lat = Vec::with_capacity(200);
    for i in 0..210 {
        let t = texts[i % texts.len()];
        let s = Instant::now();
        enc.encode(&[t], 1)?;
        if i >= 10 {
            lat.push(s.elapsed().as_secs_f64() * 1e3);
        }
    }
    let mean = lat.iter().sum::<f64>() / lat.len() as f64;
    lat.sort_by(f64::total_cmp);
    Ok(EncodeBench {
        encoder: enc.dir.display().to_string(),
        sentences: texts.len(),
        batch,
        threads,
        passes,
        sentences_per_s: (passes * texts.len()) as f64 / secs,
        lat_b1_p50_ms: percentile(&lat, 50.0),
        lat_b1_p95_ms: percentile(&lat, 95.0),
        lat_b1_mean_ms: mean,
        distinct_b1: texts.len().min(210),
    })
}

//! A bounded, seeded fuzz of the readers a user's file reaches: the config
//! loader, CSV and Parquet tables, UCR `.ts` files, `.npz` vector windows
//! and PyTorch `.pt` checkpoints (a zip around a pickle, and the pickle
//! alone inside a valid zip). Each valid input
//! is mutated a few hundred times (bytes flipped, inserted, deleted, cut
//! short, spans repeated); every read must give a value or an error, never
//! a panic. The same seed gives the same inputs; a few seconds in all.
//! (The service's JSON bodies have their own in crates/recur-dev/tests/http.rs.)

use recur_core::config::Config;
use recur_core::rng::Rng;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

fn pick(g: &mut Rng, n: usize) -> usize {
    ((g.unit() as f64 * n as f64) as usize).min(n.saturating_sub(1))
}

/// One random edit of `base`, or a few.
fn mutate(g: &mut Rng, base: &[u8]) -> Vec<u8> {
    let mut b = base.to_vec();
    for _ in 0..1 + pick(g, 4) {
        if b.is_empty() {
            b.push(pick(g, 256) as u8);
            continue;
        }
        let at = pick(g, b.len());
        match pick(g, 6) {
            0 => b[at] ^= 1 << pick(g, 8),
            1 => b[at] = [0u8, 0xff, b'9', b'-', b'.', b'"', b'\n', b','][pick(g, 8)],
            2 => {
                b.insert(at, pick(g, 256) as u8);
            }
            3 => {
                b.remove(at);
            }
            4 => b.truncate(at),
            _ => {
                // Repeat a span: long lines, deep nesting, large counts.
                let end = (at + 1 + pick(g, 64)).min(b.len());
                let span = b[at..end].to_vec();
                for _ in 0..pick(g, 50) {
                    b.splice(at..at, span.iter().copied());
                }
            }
        }
    }
    b
}

/// Reads `n` mutations of `base` through `read`; a panic fails the test
/// and keeps the input that caused it.
fn survives(what: &str, seed: u64, base: &[u8], ext: &str, n: usize, read: impl Fn(&Path)) {
    let d = tempfile::tempdir().unwrap();
    // RECUR_FUZZ_SEED explores other inputs by hand; the suite uses 0.
    let offset: u64 = std::env::var("RECUR_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let seed = seed + offset * 1000;
    let mut g = Rng::new(seed);
    let p = d.path().join(format!("input.{ext}"));
    for i in 0..n {
        let bytes = mutate(&mut g, base);
        std::fs::write(&p, &bytes).unwrap();
        if catch_unwind(AssertUnwindSafe(|| read(&p))).is_err() {
            let keep = std::env::temp_dir().join(format!("recur-fuzz-{what}-{i}.{ext}"));
            std::fs::write(&keep, &bytes).unwrap();
            panic!(
                "{what}: mutation {i} of seed {seed} panicked; the input is {}",
                keep.display()
            );
        }
    }
}

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

#[test]
fn configs_tables_series_vectors_and_checkpoints_never_panic_on_mangled_input() {
    let config = std::fs::read(repo("configs/rainfall-ensemble.yaml")).unwrap();
    survives("config", 1, &config, "yaml", 1500, |p| {
        let text = String::from_utf8_lossy(&std::fs::read(p).unwrap()).to_string();
        let _ = Config::from_yaml(&text, "fuzz.yaml");
    });

    let csv: Vec<u8> = std::fs::read_to_string(repo("data/rainfall.csv"))
        .unwrap()
        .lines()
        .take(120)
        .flat_map(|l| format!("{l}\n").into_bytes())
        .collect();
    survives("csv", 2, &csv, "csv", 1000, |p| {
        if let Ok(t) = recur_data::Table::read(p, None) {
            for name in t.names.clone() {
                let _ = t.finite(&name);
            }
        }
    });

    let parquet = std::fs::read(repo(
        "crates/recur-data/tests/fixtures/times_pyarrow.parquet",
    ))
    .unwrap();
    survives("parquet", 3, &parquet, "parquet", 1000, |p| {
        let _ = recur_data::Table::read(p, None);
    });

    let mut ts = String::from(
        "@problemName fuzz\n@timeStamps false\n@univariate true\n@classLabel true up down\n@data\n",
    );
    for i in 0..30 {
        let vals: Vec<String> = (0..12)
            .map(|t| format!("{:.3}", (i * t) as f64 * 0.01))
            .collect();
        ts += &format!(
            "{}:{}\n",
            vals.join(","),
            if i % 2 == 0 { "up" } else { "down" }
        );
    }
    survives("ts", 4, ts.as_bytes(), "ts", 1000, |p| {
        let _ = recur_data::ucr::Sequences::read(p, None, None);
    });

    let d = tempfile::tempdir().unwrap();
    let npz = d.path().join("chunks.npz");
    let (m, dim) = (24, 4);
    let vectors: Vec<f32> = (0..m * dim).map(|i| (i as f32 * 0.37).sin()).collect();
    let articles: Vec<i64> = (0..m as i64).map(|i| i / 8).collect();
    let chunks: Vec<i64> = (0..m as i64).map(|i| i % 8).collect();
    recur_data::npz::write_chunks(&npz, &vectors, dim, &articles, &chunks).unwrap();
    let npz = std::fs::read(&npz).unwrap();
    survives("npz", 5, &npz, "npz", 1000, |p| {
        let _ = recur_data::npz::read_windows(p, 3);
    });

    let pt =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lvm_lstm.pt"))
            .unwrap();
    survives("pt", 6, &pt, "pt", 1000, |p| {
        let _ = recur_deploy::import::import(p, &candle_core::Device::Cpu);
    });

    // The pickle itself, mutated inside a valid zip (the CRC would stop
    // most mutations of the whole file before the pickle is read).
    let members = {
        use std::io::Read;
        let mut z = zip::ZipArchive::new(std::io::Cursor::new(&pt)).unwrap();
        (0..z.len())
            .map(|i| {
                let mut m = z.by_index(i).unwrap();
                let mut b = Vec::new();
                m.read_to_end(&mut b).unwrap();
                (m.name().unwrap().to_string(), b)
            })
            .collect::<Vec<_>>()
    };
    let pickle = members
        .iter()
        .find(|(n, _)| n.ends_with("data.pkl"))
        .unwrap();
    let zipped = d.path().join("mutated.pt");
    survives("pickle", 7, &pickle.1, "pkl", 1000, |p| {
        use std::io::Write;
        let mutated = std::fs::read(p).unwrap();
        let mut z = zip::ZipWriter::new(std::fs::File::create(&zipped).unwrap());
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        for (n, b) in &members {
            z.start_file(n.as_str(), opts).unwrap();
            z.write_all(if n == &pickle.0 { &mutated } else { b })
                .unwrap();
        }
        z.finish().unwrap();
        let _ = recur_deploy::import::import(&zipped, &candle_core::Device::Cpu);
    });
}

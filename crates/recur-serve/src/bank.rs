//! The retrieval decoder: a bank of sentences and their embeddings, and
//! the nearest ones to a predicted vector; the confidence is that cosine.
//!
//! Banks up to `exact_max` sentences are searched exactly
//! (`recur_kernels::search`: a bf16 pass over the whole bank picks the
//! candidates, f32 scores them; for the bundled 30,000 sentences about a
//! millisecond). Beyond it an HNSW index (`instant-distance`) answers
//! approximately, because a pass over millions of rows per request would
//! dominate the latency.

use instant_distance::{Builder, HnswMap, Search};
use recur_core::{Error, Result};
use recur_kernels::search::UnitRows;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One neighbour of a predicted vector.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Neighbour {
    pub text: String,
    pub cosine: f32,
    /// Row of the bank.
    pub index: usize,
}

pub struct Bank {
    pub dim: usize,
    pub texts: Vec<String>,
    /// The files it was read from.
    pub sources: Vec<PathBuf>,
    /// Rows left out as repeats of an earlier row's text.
    pub repeats: usize,
    /// The [`said_key`]s that more than one row has (the same words
    /// punctuated otherwise), with their row counts: what `/chat` must
    /// look past to leave a request's own sentence out.
    said_rows: std::collections::HashMap<String, usize>,
    search: Index,
}

enum Index {
    Exact(UnitRows),
    Hnsw(Box<HnswMap<Unit, usize>>),
}

/// A unit vector under cosine distance, for the HNSW index.
#[derive(Clone)]
struct Unit(Vec<f32>);

impl instant_distance::Point for Unit {
    fn distance(&self, other: &Self) -> f32 {
        1.0 - recur_kernels::search::score(&self.0, &other.0)
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Scales `v` to unit length (a zero vector stays zero) and returns its
/// squared norm before, which is not finite for a NaN, an infinity or an
/// overflowing vector.
fn normalise(v: &mut [f32]) -> f32 {
    let n2 = dot(v, v);
    let n = n2.sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
    n2
}

/// The `.texts.jsonl` beside a chunk file, as `recur corpus build` writes it.
pub fn texts_path(npz: &Path) -> PathBuf {
    let stem = npz.file_stem().unwrap_or_default().to_string_lossy();
    npz.with_file_name(format!("{stem}.texts.jsonl"))
}

#[derive(Deserialize)]
struct TextLine {
    text: String,
    /// Where the chunk sits, as `recur corpus build` writes it: checked
    /// against the vectors' indices, so that a file out of line with its
    /// vectors is refused rather than answering with other chunks' text.
    /// Any JSON value: another tool's texts file may name its articles by
    /// title; only whole numbers are compared.
    article: Option<serde_json::Value>,
    chunk: Option<serde_json::Value>,
}

/// The `.build.json` `recur corpus build` wrote beside a bank's `.npz`:
/// its path, and its contents where it is there and reads as JSON.
pub(crate) fn build_record(npz: &Path) -> (std::path::PathBuf, Option<serde_json::Value>) {
    let stem = npz.file_stem().unwrap_or_default().to_string_lossy();
    let report = npz.with_file_name(format!("{stem}.build.json"));
    let v = recur_core::fsx::read_json(&report).ok();
    (report, v)
}

/// Refuses a `.npz` and `.texts.jsonl` of different builds, where the
/// `.build.json` beside them records the digests of both (a build stopped
/// between its writes left the new vectors beside the old texts, which a
/// corpus of the same shape would have served as the answers).
fn check_one_build(npz: &Path, texts: &[u8]) -> Result<()> {
    let (report, Some(v)) = build_record(npz) else {
        return Ok(());
    };
    let (Some(want_npz), Some(want_texts)) = (v["npz_sha256"].as_str(), v["texts_sha256"].as_str())
    else {
        return Ok(());
    };
    let have_npz = recur_core::fsx::sha256_file(npz)?;
    // The texts as built, or as a checkout with `core.autocrlf` wrote them
    // (each line ending in CR LF): the same texts, which the lines' JSON
    // reads alike.
    let same_texts = recur_core::fsx::sha256_bytes(texts) == want_texts || {
        let lf: Vec<u8> = texts
            .iter()
            .enumerate()
            .filter(|&(i, &b)| !(b == b'\r' && texts.get(i + 1) == Some(&b'\n')))
            .map(|(_, &b)| b)
            .collect();
        lf.len() < texts.len() && recur_core::fsx::sha256_bytes(&lf) == want_texts
    };
    if have_npz != want_npz || !same_texts {
        return Err(Error::data(
            npz.display().to_string(),
            format!(
                "this file, its .texts.jsonl and {} come from different builds (a \
                 `recur corpus build` stopped part way?): build the corpus again",
                report.display()
            ),
        ));
    }
    Ok(())
}

fn read_file(path: &Path) -> Result<(Vec<f32>, usize, Vec<String>)> {
    let bad = |msg: String| Error::data(path.display().to_string(), msg);
    if !path.exists() {
        return Err(bad(
            "no such bank file; `recur demo` builds runs/corpus/{wiki,ood}.npz, \
             `recur corpus build` any other"
                .into(),
        ));
    }
    let recur_data::npz::ChunkArrays {
        vectors,
        shape,
        articles,
        chunks,
    } = recur_data::npz::read_chunk_arrays(path)?.ok_or_else(|| {
        bad("no `vectors` array: not a chunk file of `recur corpus build`".into())
    })?;
    let [n, d] = shape[..] else {
        return Err(bad(format!(
            "`vectors` has shape {shape:?}; expected [N, D]"
        )));
    };
    if let Some(i) = vectors.iter().position(|v| !v.is_finite()) {
        return Err(bad(format!(
            "`vectors` row {} holds NaN or infinity",
            i / d
        )));
    }
    let tp = texts_path(path);
    let body = recur_core::fsx::read_text_bounded(&tp, recur_core::fsx::MAX_DATA_FILE).map_err(|e| {
        Error::data(
            tp.display().to_string(),
            format!("cannot read the bank's texts ({e}); `recur corpus build` writes it beside the .npz"),
        )
    })?;
    check_one_build(path, body.as_bytes())?;
    let mut texts = Vec::with_capacity(n);
    for (k, line) in body
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let t: TextLine = serde_json::from_str(line).map_err(|e| {
            Error::data(
                tp.display().to_string(),
                format!("line {}: {e}; expected {{\"text\": ...}}", k + 1),
            )
        })?;
        let i = texts.len();
        for (name, said, held) in [
            (
                "article",
                t.article.as_ref().and_then(|v| v.as_i64()),
                articles.as_ref(),
            ),
            (
                "chunk",
                t.chunk.as_ref().and_then(|v| v.as_i64()),
                chunks.as_ref(),
            ),
        ] {
            if let (Some(said), Some(v)) = (said, held.and_then(|h| h.get(i))) {
                if said != *v {
                    return Err(Error::data(
                        tp.display().to_string(),
                        format!(
                            "line {} is {name} {said}, but vector {i} of {} is {name} {v}: the texts are out of line with the vectors; rebuild the corpus",
                            k + 1,
                            path.display()
                        ),
                    ));
                }
            }
        }
        texts.push(t.text);
    }
    if texts.len() != n {
        return Err(Error::data(
            tp.display().to_string(),
            format!(
                "{} texts for {n} vectors in {}; rebuild the corpus",
                texts.len(),
                path.display()
            ),
        ));
    }
    Ok((vectors, d, texts))
}

/// A sentence as the bank tells repeats apart and `/chat` tells a
/// request's own sentences: its words, lower-cased ("Thank you." and
/// "thank  you." are one sentence to a user, and one vector to an uncased
/// encoder).
pub fn text_key(t: &str) -> String {
    t.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// A sentence as `/chat` compares a request's own with the bank's: its
/// words (letters and digits), lower-cased. Looser than [`text_key`],
/// which keeps punctuation: "Italy was the cradle!" was answered with the
/// bank's "Italy was the cradle." to the user who said it.
pub fn said_key(t: &str) -> String {
    t.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// `vectors` and `texts` with each sentence's first row only (by
/// [`text_key`]), and how many rows went.
fn first_of_each_text(
    vectors: Vec<f32>,
    dim: usize,
    texts: Vec<String>,
) -> (Vec<f32>, Vec<String>, usize) {
    let mut seen = std::collections::HashSet::with_capacity(texts.len());
    let keep: Vec<bool> = texts.iter().map(|t| seen.insert(text_key(t))).collect();
    drop(seen);
    let repeats = keep.iter().filter(|&&k| !k).count();
    if repeats == 0 {
        return (vectors, texts, 0);
    }
    let vectors = vectors
        .chunks(dim)
        .zip(&keep)
        .filter(|(_, &k)| k)
        .flat_map(|(v, _)| v.iter().copied())
        .collect();
    let texts = texts
        .into_iter()
        .zip(&keep)
        .filter(|(_, &k)| k)
        .map(|(t, _)| t)
        .collect();
    (vectors, texts, repeats)
}

impl Bank {
    /// Reads and joins chunk files; all must have one dimension.
    /// `max_k` is the most neighbours a search will ask for.
    pub fn load(paths: &[PathBuf], exact_max: usize, max_k: usize) -> Result<Bank> {
        let (mut all, mut texts, mut dim) = (Vec::new(), Vec::new(), None);
        for p in paths {
            let (v, d, t) = read_file(p)?;
            if let Some(prev) = dim {
                if prev != d {
                    return Err(Error::data(
                        p.display().to_string(),
                        format!("{d}-D vectors; the bank's other files are {prev}-D"),
                    ));
                }
            }
            dim = Some(d);
            all.extend(v);
            texts.extend(t);
        }
        let dim = dim.ok_or_else(|| Error::Msg("the bank has no files".into()))?;
        Bank::from_vectors(all, dim, texts, paths.to_vec(), exact_max, max_k)
    }

    /// A bank from row-major `[N, dim]` vectors (normalised here). A text
    /// met again is kept once, at its first row: the corpora repeat
    /// sentences ("Good evening.", headings), and each copy took a slot of
    /// a `/chat` answer's neighbours.
    pub fn from_vectors(
        mut vectors: Vec<f32>,
        dim: usize,
        texts: Vec<String>,
        sources: Vec<PathBuf>,
        exact_max: usize,
        max_k: usize,
    ) -> Result<Bank> {
        let n = texts.len();
        if n == 0 || vectors.len() != n * dim {
            return Err(Error::Msg(format!(
                "a bank needs at least one sentence and dim values per sentence ({} values for {n} sentences of {dim})",
                vectors.len()
            )));
        }
        if dim == 0 {
            return Err(Error::Msg("bank vectors have dimension 0".into()));
        }
        for (i, v) in vectors.chunks_mut(dim).enumerate() {
            if !normalise(v).is_finite() {
                return Err(Error::Msg(format!(
                    "bank vector {i} (text {:?}) holds a NaN, an infinity or values whose norm overflows f32; \
                     rebuild the bank file from finite embeddings",
                    texts[i].chars().take(60).collect::<String>()
                )));
            }
        }
        // Repeats go after every row is checked, so that an error names
        // the row of the files.
        let (vectors, texts, repeats) = first_of_each_text(vectors, dim, texts);
        let n = texts.len();
        let mut said_rows = std::collections::HashMap::new();
        for t in &texts {
            *said_rows.entry(said_key(t)).or_insert(0usize) += 1;
        }
        said_rows.retain(|_, rows| *rows > 1);
        let search = if n <= exact_max {
            Index::Exact(UnitRows::new(vectors, dim))
        } else {
            let points: Vec<Unit> = vectors.chunks(dim).map(|c| Unit(c.to_vec())).collect();
            drop(vectors);
            // The graph inserts points on every thread of the pool it is
            // built in, so its links (and some answers) varied from one
            // start to the next; on one thread it is the same every start.
            // Its search list bounds the neighbours a search returns (100
            // by default, under a top_k of 150).
            let builder = Builder::default().seed(42).ef_search(max_k.max(100));
            let one = rayon::ThreadPoolBuilder::new()
                .num_threads(1)
                .build()
                .map_err(|e| {
                    Error::Msg(format!("cannot start a thread for the bank's index: {e}"))
                })?;
            let map = one.install(|| builder.build(points, (0..n).collect()));
            Index::Hnsw(Box::new(map))
        };
        Ok(Bank {
            dim,
            texts,
            sources,
            repeats,
            said_rows,
            search,
        })
    }

    /// How many rows a [`said_key`] matches, at most (1 where no two rows
    /// share it, also when none has it).
    pub fn rows_said(&self, key: &str) -> usize {
        self.said_rows.get(key).copied().unwrap_or(1)
    }

    /// The number of texts in the bank.
    pub fn len(&self) -> usize {
        self.texts.len()
    }

    /// Whether the bank holds no text.
    pub fn is_empty(&self) -> bool {
        self.texts.is_empty()
    }

    /// `exact` or `hnsw`.
    pub fn method(&self) -> &'static str {
        match self.search {
            Index::Exact(_) => "exact",
            Index::Hnsw(_) => "hnsw",
        }
    }

    /// The `k` nearest sentences to each of the row-major `[B, dim]`
    /// queries, best first, by cosine.
    pub fn nearest(&self, queries: &[f32], k: usize) -> Result<Vec<Vec<Neighbour>>> {
        if !queries.len().is_multiple_of(self.dim) {
            return Err(Error::Msg(format!(
                "queries of {} values are not rows of the bank's dimension {}",
                queries.len(),
                self.dim
            )));
        }
        let mut queries = queries.to_vec();
        queries.chunks_mut(self.dim).for_each(|q| {
            normalise(q);
        });
        let k = k.min(self.len());
        let found: Vec<Vec<(usize, f32)>> = match &self.search {
            Index::Exact(rows) => rows.nearest(&queries, k, rayon::current_num_threads()),
            Index::Hnsw(map) => queries
                .chunks(self.dim)
                .map(|q| {
                    let mut s = Search::default();
                    map.search(&Unit(q.to_vec()), &mut s)
                        .take(k)
                        .map(|item| (*item.value, 1.0 - item.distance))
                        .collect()
                })
                .collect(),
        };
        Ok(found
            .into_iter()
            .map(|row| {
                row.into_iter()
                    .map(|(index, cosine)| Neighbour {
                        text: self.texts[index].clone(),
                        cosine,
                        index,
                    })
                    .collect()
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bank(n: usize, dim: usize, exact_max: usize) -> (Bank, Vec<f32>) {
        let mut rng = recur_core::rng::Rng::new(7);
        let v: Vec<f32> = (0..n * dim).map(|_| rng.normal()).collect();
        let texts = (0..n).map(|i| format!("sentence {i}")).collect();
        let b = Bank::from_vectors(v.clone(), dim, texts, vec![], exact_max, 10).unwrap();
        (b, v)
    }

    /// A text met again is kept once, at its first row, exact and HNSW
    /// alike: eleven copies of one sentence had filled a top-5 answer
    /// with it.
    #[test]
    fn a_repeated_text_is_kept_once() {
        let dim = 4;
        let mut rng = recur_core::rng::Rng::new(3);
        let mut v: Vec<f32> = (0..30 * dim).map(|_| rng.normal()).collect();
        let mut texts: Vec<String> = (0..30).map(|i| format!("sentence {i}")).collect();
        for i in 0..12 {
            // Ten copies, and two that differ only in case and spacing.
            texts.push(
                ["Good evening.", "good  EVENING.", " Good evening. "]
                    [i % 6 / 5 + (i == 11) as usize]
                    .into(),
            );
            v.extend([1.0, 0.0, 0.0, 0.0]);
        }
        for exact_max in [1000, 5] {
            let b =
                Bank::from_vectors(v.clone(), dim, texts.clone(), vec![], exact_max, 10).unwrap();
            assert_eq!((b.len(), b.repeats), (31, 11));
            let found = b.nearest(&[1.0, 0.0, 0.0, 0.0], 5).unwrap();
            let got: Vec<&str> = found[0].iter().map(|n| n.text.as_str()).collect();
            assert_eq!(got.len(), 5);
            assert_eq!(got[0], "Good evening.");
            assert_eq!(
                got.iter().filter(|t| **t == "Good evening.").count(),
                1,
                "{got:?}"
            );
        }
    }

    /// The HNSW graph is the same at every build, whatever the pool it is
    /// built in (it varied with thread scheduling), and a search returns
    /// up to `max_k` neighbours (it stopped at 100).
    #[test]
    fn the_hnsw_index_repeats_itself_and_returns_up_to_max_k() {
        let (n, dim) = (1500, 8);
        let mut rng = recur_core::rng::Rng::new(9);
        let v: Vec<f32> = (0..n * dim).map(|_| rng.normal()).collect();
        let q: Vec<f32> = (0..20 * dim).map(|_| rng.normal()).collect();
        let texts: Vec<String> = (0..n).map(|i| format!("s{i}")).collect();
        let answers = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let b =
                    Bank::from_vectors(v.clone(), dim, texts.clone(), vec![], 100, 200).unwrap();
                assert_eq!(b.method(), "hnsw");
                let found = b.nearest(&q, 150).unwrap();
                found
                    .iter()
                    .map(|f| {
                        f.iter()
                            .map(|x| (x.index, x.cosine.to_bits()))
                            .collect::<Vec<_>>()
                    })
                    .collect::<Vec<_>>()
            })
        };
        let first = answers(2);
        assert!(first.iter().all(|f| f.len() == 150));
        for threads in [2, 1, 2] {
            assert!(answers(threads) == first, "{threads} threads");
        }
    }

    #[test]
    fn non_finite_vectors_and_dimension_zero_are_refused() {
        for bad in [f32::NAN, f32::INFINITY, 1e30] {
            let mut v = vec![0.5f32; 3 * 4];
            v[5] = bad;
            let texts = (0..3).map(|i| format!("s{i}")).collect();
            let e = Bank::from_vectors(v, 4, texts, vec![], 10, 10)
                .err()
                .unwrap();
            assert!(e.to_string().contains("bank vector 1 (text \"s1\")"), "{e}");
        }
        // A bad row among repeats is named by its row in the file.
        let mut v = vec![0.5f32; 4 * 4];
        v[13] = f32::INFINITY;
        let texts = vec!["Same".to_string(); 4];
        let e = Bank::from_vectors(v, 4, texts, vec![], 10, 10)
            .err()
            .unwrap();
        assert!(e.to_string().contains("bank vector 3"), "{e}");
        let e = Bank::from_vectors(vec![], 0, vec!["a".into()], vec![], 10, 10)
            .err()
            .unwrap();
        assert!(e.to_string().contains("dimension 0"), "{e}");
    }

    /// A texts file out of line with its vectors (the lines rotated by
    /// one) is refused, naming the line; in line, the bank loads.
    #[test]
    fn texts_out_of_line_with_their_vectors_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let npz = d.path().join("b.npz");
        let (art, chk): (Vec<i64>, Vec<i64>) = (vec![0, 0, 1, 1], vec![0, 1, 0, 1]);
        let v: Vec<f32> = (0..8).map(|i| 1.0 + i as f32).collect();
        recur_data::npz::write_chunks(&npz, &v, 2, &art, &chk).unwrap();
        let line = |i: usize| {
            format!(
                "{{\"article\": {}, \"chunk\": {}, \"text\": \"t{i}\"}}\n",
                art[i], chk[i]
            )
        };
        let good: String = (0..4).map(line).collect();
        std::fs::write(texts_path(&npz), &good).unwrap();
        let b = Bank::load(std::slice::from_ref(&npz), 10, 10).unwrap();
        assert_eq!(b.len(), 4);
        // Another tool's names (a title, not a number) are not compared.
        let titled: String = (0..4)
            .map(|i| format!("{{\"article\": \"Title {i}\", \"text\": \"t{i}\"}}\n"))
            .collect();
        std::fs::write(texts_path(&npz), titled).unwrap();
        assert_eq!(
            Bank::load(std::slice::from_ref(&npz), 10, 10)
                .unwrap()
                .len(),
            4
        );
        let rotated: String = [1, 2, 3, 0].into_iter().map(line).collect();
        std::fs::write(texts_path(&npz), rotated).unwrap();
        let e = Bank::load(std::slice::from_ref(&npz), 10, 10)
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("line 1 is chunk 1, but vector 0") && e.contains("out of line"),
            "{e}"
        );
        // Texts in line, but of another build than the .build.json beside
        // them records (a build stopped between its writes).
        std::fs::write(texts_path(&npz), &good).unwrap();
        let report = d.path().join("b.build.json");
        let digests = |texts: &str| {
            serde_json::json!({
                "npz_sha256": recur_core::fsx::sha256_file(&npz).unwrap(),
                "texts_sha256": recur_core::fsx::sha256_bytes(texts.as_bytes()),
            })
            .to_string()
        };
        std::fs::write(&report, digests(&good)).unwrap();
        assert_eq!(
            Bank::load(std::slice::from_ref(&npz), 10, 10)
                .unwrap()
                .len(),
            4
        );
        // The same texts as a git checkout with core.autocrlf writes them.
        std::fs::write(texts_path(&npz), good.replace('\n', "\r\n")).unwrap();
        assert_eq!(
            Bank::load(std::slice::from_ref(&npz), 10, 10)
                .unwrap()
                .len(),
            4
        );
        std::fs::write(texts_path(&npz), &good).unwrap();
        std::fs::write(&report, digests(&good.replace("t0", "x0"))).unwrap();
        let e = Bank::load(std::slice::from_ref(&npz), 10, 10)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("come from different builds"), "{e}");
    }

    #[test]
    fn exact_search_finds_each_row_itself_first_with_cosine_one() {
        let (b, v) = bank(300, 16, 1000);
        assert_eq!(b.method(), "exact");
        let q = &v[37 * 16..39 * 16];
        let r = b.nearest(q, 3).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0][0].index, 37);
        assert_eq!(r[1][0].text, "sentence 38");
        assert!((r[0][0].cosine - 1.0).abs() < 1e-5);
        assert!(r[0][0].cosine >= r[0][1].cosine && r[0][1].cosine >= r[0][2].cosine);
    }

    #[test]
    fn the_hnsw_index_agrees_with_exact_search_on_the_nearest() {
        let (exact, v) = bank(400, 12, 1000);
        let (approx, _) = bank(400, 12, 100);
        assert_eq!(approx.method(), "hnsw");
        let mut rng = recur_core::rng::Rng::new(9);
        let q: Vec<f32> = (0..20 * 12).map(|_| rng.normal()).collect();
        let (e, a) = (
            exact.nearest(&q, 5).unwrap(),
            approx.nearest(&q, 5).unwrap(),
        );
        let agree = e
            .iter()
            .zip(&a)
            .filter(|(x, y)| x[0].index == y[0].index)
            .count();
        assert!(
            agree >= 19,
            "HNSW found the exact nearest for {agree} of 20 queries"
        );
        // Rows are themselves found by both.
        let r = approx.nearest(&v[5 * 12..6 * 12], 1).unwrap();
        assert_eq!(r[0][0].index, 5);
    }
}

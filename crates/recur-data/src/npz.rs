//! Job B's data: sentence-embedding windows from NumPy `.npz` files, in
//! either layout SYSTEM.md gives.
//!
//! - Ready windows: `context_sequences [N, C, D]` and `target_vectors [N, D]`
//!   (an optional `article_indices [N]` says which article each window
//!   comes from, for splitting).
//! - Chunks: `vectors [M, D]`, `article_indices [M]`, `chunk_indices [M]`;
//!   windows are built inside each article, chunks sorted by index, stride
//!   1, target = chunk `i + C`, never across articles.
//!
//! Arrays are read through candle's npz reader, which parses numeric
//! arrays only: object arrays are skipped with a note and never unpickled.
//! candle reads exactly the bytes an array's header asks for, so it never
//! reaches the end of a member where the zip reader checks the CRC-32: each
//! member is first read through once here, as numpy does, so a flipped
//! byte is refused, and an array whose header claims more bytes than its
//! member holds is refused before anything is allocated for it.
//! Splits are by article, so overlapping windows of one article never sit
//! on both sides (bug 5 of the original).

use candle_core::npy::NpzTensors;
use candle_core::{DType, Tensor};
use recur_core::error::{Error, Result};
use recur_core::fsx::write_atomic_with;
use recur_core::rng::Rng;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// Windows of sentence vectors: each window's context and target are rows
/// of one matrix of vectors, named by index. A file's chunks are held once
/// however many windows they are in (each is in up to `context + 1`), and
/// the windows selected from them (training and validation) share them:
/// copied out per window, the contexts and their selections took about
/// 12 times the file's size at training's peak.
#[derive(Debug, Clone)]
pub struct VectorWindows {
    /// `[rows, dim]`, row-major: every vector a window names.
    vectors: Arc<Vec<f32>>,
    /// `[n, context]`: the rows of each window's context, earliest first.
    context_rows: Vec<usize>,
    /// `[n]`: the row of each window's target.
    target_rows: Vec<usize>,
    pub context: usize,
    pub dim: usize,
    /// The article of each window, where the file says.
    pub articles: Option<Vec<i64>>,
    /// How many of each window's context vectors are real, where some are
    /// not (short windows, [`read_windows_min`]): the rest repeat the
    /// earliest real one in front of it, as `/chat` pads. `None`: all are.
    pub real: Option<Vec<usize>>,
    /// What was read and what was skipped, for the user.
    pub notes: Vec<String>,
}

impl VectorWindows {
    /// Windows given whole: `contexts [n, context, dim]` and `targets [n,
    /// dim]`, row-major.
    pub fn from_flat(
        mut contexts: Vec<f32>,
        targets: Vec<f32>,
        context: usize,
        dim: usize,
    ) -> VectorWindows {
        let n = targets.len() / dim.max(1);
        assert_eq!(
            (contexts.len(), targets.len()),
            (n * context * dim, n * dim),
            "from_flat: contexts [n, context, dim] and targets [n, dim]"
        );
        contexts.extend_from_slice(&targets);
        VectorWindows {
            vectors: Arc::new(contexts),
            context_rows: (0..n * context).collect(),
            target_rows: (n * context..n * context + n).collect(),
            context,
            dim,
            articles: None,
            real: None,
            notes: Vec::new(),
        }
    }

    /// The number of windows.
    pub fn len(&self) -> usize {
        self.target_rows.len()
    }

    /// Whether there are no windows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn row(&self, r: usize) -> &[f32] {
        &self.vectors[r * self.dim..(r + 1) * self.dim]
    }

    /// The context vectors of window `i`, earliest first.
    pub fn context_vectors(&self, i: usize) -> impl Iterator<Item = &[f32]> + '_ {
        self.context_rows[i * self.context..(i + 1) * self.context]
            .iter()
            .map(|&r| self.row(r))
    }

    /// Context `i` as `[context * dim]` (a copy).
    pub fn context_of(&self, i: usize) -> Vec<f32> {
        self.gather_contexts(&[i])
    }

    /// The target vector of window `i`.
    pub fn target_of(&self, i: usize) -> &[f32] {
        self.row(self.target_rows[i])
    }

    /// The windows at `idx`, in that order, as `[k, context, dim]`
    /// contexts and `[k, dim]` targets (what a batch is made of).
    pub fn gather(&self, idx: &[usize]) -> (Vec<f32>, Vec<f32>) {
        (
            self.gather_contexts(idx),
            self.gather_targets(idx.iter().copied()),
        )
    }

    /// The contexts of the windows at `idx` as `[k, context, dim]`.
    pub fn gather_contexts(&self, idx: &[usize]) -> Vec<f32> {
        let mut contexts = Vec::with_capacity(idx.len() * self.context * self.dim);
        for &i in idx {
            self.context_vectors(i)
                .for_each(|v| contexts.extend_from_slice(v));
        }
        contexts
    }

    /// Every target, `[n, dim]`.
    pub fn targets(&self) -> Vec<f32> {
        self.gather_targets(0..self.len())
    }

    fn gather_targets(&self, idx: impl ExactSizeIterator<Item = usize>) -> Vec<f32> {
        let mut t = Vec::with_capacity(idx.len() * self.dim);
        idx.for_each(|i| t.extend_from_slice(self.target_of(i)));
        t
    }

    /// The largest magnitude in the windows' contexts (what a model reads).
    pub fn largest_context_value(&self) -> f32 {
        let mut seen = vec![false; self.vectors.len() / self.dim.max(1)];
        let mut m = 0f32;
        for &r in &self.context_rows {
            if !std::mem::replace(&mut seen[r], true) {
                m = self.row(r).iter().fold(m, |m, x| m.max(x.abs()));
            }
        }
        m
    }

    /// The windows at `idx`, in that order (sharing the vectors).
    pub fn select(&self, idx: &[usize]) -> VectorWindows {
        let c = self.context;
        VectorWindows {
            vectors: Arc::clone(&self.vectors),
            context_rows: idx
                .iter()
                .flat_map(|&i| self.context_rows[i * c..(i + 1) * c].iter().copied())
                .collect(),
            target_rows: idx.iter().map(|&i| self.target_rows[i]).collect(),
            context: self.context,
            dim: self.dim,
            articles: self
                .articles
                .as_ref()
                .map(|a| idx.iter().map(|&i| a[i]).collect()),
            real: self
                .real
                .as_ref()
                .map(|r| idx.iter().map(|&i| r[i]).collect()),
            notes: Vec::new(),
        }
    }
}

impl VectorWindows {
    /// Whether window `i` has all its context vectors real.
    pub fn is_full(&self, i: usize) -> bool {
        self.real.as_ref().is_none_or(|r| r[i] == self.context)
    }

    /// Appends the windows of `other` (same context length and width) after
    /// these; where only one side says which context vectors are real, the
    /// other's are all real.
    pub fn extend(&mut self, other: VectorWindows) {
        assert_eq!(
            (self.context, self.dim),
            (other.context, other.dim),
            "extend: windows of another shape"
        );
        let (n, m) = (self.len(), other.len());
        self.articles = match (self.articles.take(), other.articles) {
            (Some(mut a), Some(b)) => {
                a.extend(b);
                Some(a)
            }
            _ => None,
        };
        self.real = match (self.real.take(), other.real) {
            (None, None) => None,
            (a, b) => {
                let mut r = a.unwrap_or_else(|| vec![self.context; n]);
                r.extend(b.unwrap_or_else(|| vec![self.context; m]));
                Some(r)
            }
        };
        // The same vectors (as the training file read again backwards
        // gives), bit for bit: one copy serves both.
        let same = |a: &[f32], b: &[f32]| {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
        };
        if Arc::ptr_eq(&self.vectors, &other.vectors) || same(&self.vectors, &other.vectors) {
            self.context_rows.extend(other.context_rows);
            self.target_rows.extend(other.target_rows);
            return;
        }
        // Other vectors: they go after these, and the windows' rows with them.
        let at = self.vectors.len() / self.dim.max(1);
        let mut v = Vec::with_capacity(self.vectors.len() + other.vectors.len());
        v.extend_from_slice(&self.vectors);
        v.extend_from_slice(&other.vectors);
        self.vectors = Arc::new(v);
        self.context_rows
            .extend(other.context_rows.iter().map(|r| r + at));
        self.target_rows
            .extend(other.target_rows.iter().map(|r| r + at));
    }

    /// The windows whose article is in `keep`, in file order; `None` when
    /// the file gives no article of each window.
    pub fn of_articles(&self, keep: &std::collections::HashSet<i64>) -> Option<VectorWindows> {
        let a = self.articles.as_ref()?;
        let idx: Vec<usize> = (0..self.len()).filter(|&i| keep.contains(&a[i])).collect();
        Some(self.select(&idx))
    }
}

fn npz_err(path: &Path, msg: impl Into<String>) -> Error {
    Error::data(path.display().to_string(), msg)
}

/// The most times the archive's size a member may expand to on
/// decompression, once it is over [`MIN_BOMB`] bytes.
const MAX_RATIO: u64 = 100;
/// The longest `.npy` header read: numpy writes a few hundred bytes (a
/// dtype with many fields more), never megabytes.
const MAX_NPY_HEADER: u64 = 1 << 20;
/// Members up to this size may expand any number of times (an index
/// array of repeated values compresses to almost nothing).
const MIN_BOMB: u64 = 256 << 20;

/// Refuses a zip archive whose members share bytes or names, before any
/// is inflated: entries whose compressed data overlap (a small file of
/// many members inflating one shared block, terabytes from megabytes),
/// and two members of one name (readers disagree on which one counts:
/// numpy and PyTorch take the first, recur took the last).
pub fn check_zip_layout<R: std::io::Read + std::io::Seek>(
    zip: &mut zip::ZipArchive<R>,
) -> std::result::Result<(), String> {
    // The index keeps one entry a name (the last), so duplicates are
    // asked of the archive, not counted here.
    if zip.has_duplicate_names() {
        return Err(
            "two members share a name; readers disagree on which one counts, so the \
                    file is refused: write it again"
                .into(),
        );
    }
    let mut spans = Vec::with_capacity(zip.len());
    for i in 0..zip.len() {
        let m = zip
            .by_index_raw(i)
            .map_err(|e| format!("member {i} cannot be read: {e}"))?;
        let name = m
            .name()
            .map(|n| n.to_string())
            .unwrap_or_else(|_| format!("#{i}"));
        let start = m.header_start();
        let data = m.data_start().unwrap_or(start.saturating_add(30));
        let end = data.saturating_add(m.compressed_size());
        spans.push((start, end, name));
    }
    spans.sort();
    for w in spans.windows(2) {
        if w[0].1 > w[1].0 {
            return Err(format!(
                "members `{}` and `{}` share their bytes (a zip bomb's layout): no writer of \
                 these files makes one, so it is refused",
                w[0].2, w[1].2
            ));
        }
    }
    Ok(())
}

/// Reads every member of the archive through once, which makes the zip
/// reader check its CRC-32, and returns the bytes each holds; refuses a
/// member that expands to more than [`MAX_RATIO`] times the archive's size
/// and over [`MIN_BOMB`] bytes.
fn member_sizes(path: &Path) -> Result<BTreeMap<String, u64>> {
    let file = recur_core::fsx::open_regular(path, recur_core::fsx::MAX_DATA_FILE)?;
    let archive = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| npz_err(path, format!("not a readable .npz (zip) file: {e}")))?;
    check_zip_layout(&mut zip).map_err(|e| npz_err(path, e))?;
    // numpy names an array by its member without `.npy`: `a` and `a.npy`
    // would be one array, read from either member by one reader or another.
    let mut arrays = std::collections::HashSet::new();
    let names: Vec<String> = zip
        .file_names()
        .filter_map(|n| n.ok().map(|n| n.to_string()))
        .collect();
    for n in &names {
        let array = n.strip_suffix(".npy").unwrap_or(n);
        if !arrays.insert(array.to_string()) {
            return Err(npz_err(
                path,
                format!(
                    "two members hold the array `{array}` (with and without .npy); write the file again"
                ),
            ));
        }
    }
    let mut sizes = BTreeMap::new();
    let mut total = 0u64;
    for i in 0..zip.len() {
        let mut member = zip
            .by_index(i)
            .map_err(|e| npz_err(path, format!("member {i} cannot be read: {e}")))?;
        let name = member
            .name()
            .map(|n| n.to_string())
            .unwrap_or_else(|_| format!("#{i}"));
        // No archive of sentence vectors compresses anywhere near this
        // (vectors barely compress; an index array of long runs may, but
        // the vectors beside it keep the archive large): beyond it a small
        // file would expand to gigabytes in memory (a zip bomb).
        let compressed = archive;
        let limit = MIN_BOMB.max(archive.saturating_mul(MAX_RATIO));
        use std::io::Read;
        let damaged = |e: std::io::Error| {
            npz_err(
                path,
                format!("member `{name}` is damaged ({e}); write the file again"),
            )
        };
        // The .npy header's length, read before the array reader trusts it
        // (a version 2 header may claim 4 GB, which it allocated at once).
        let mut head = Vec::with_capacity(12);
        (&mut member)
            .take(12)
            .read_to_end(&mut head)
            .map_err(damaged)?;
        if head.len() == 12 && head.starts_with(b"\x93NUMPY") {
            let len = match head[6] {
                1 => u16::from_le_bytes([head[8], head[9]]) as u64,
                _ => u32::from_le_bytes([head[8], head[9], head[10], head[11]]) as u64,
            };
            if len > MAX_NPY_HEADER {
                return Err(npz_err(
                    path,
                    format!(
                        "member `{name}` declares a .npy header of {len} bytes; numpy writes a \
                         few hundred, so the file is refused (write the arrays with numpy.savez)"
                    ),
                ));
            }
        }
        let held = head.len() as u64
            + std::io::copy(&mut (&mut member).take(limit + 1), &mut std::io::sink())
                .map_err(damaged)?;
        if held > limit {
            return Err(npz_err(
                path,
                format!(
                    "member `{name}` expands to more than {limit} bytes from an archive of \
                     {compressed}, more than {MAX_RATIO} times its size; no archive of vectors \
                     compresses so well, so it is refused (write the arrays with numpy.savez)"
                ),
            ));
        }
        total = total.saturating_add(held);
        if total > limit.saturating_mul(4) {
            return Err(npz_err(
                path,
                format!(
                    "its members expand to more than {} bytes from an archive of {compressed}; \
                     no archive of vectors compresses so well, so it is refused",
                    limit.saturating_mul(4)
                ),
            ));
        }
        sizes.insert(name, held);
    }
    Ok(sizes)
}

/// Reads one array as f32 (or i64 for indices), with its shape.
fn read(npz: &NpzTensors, path: &Path, name: &str) -> Result<Option<Tensor>> {
    npz.get(name)
        .map_err(|e| npz_err(path, format!("array `{name}` cannot be read: {e}")))
}

/// An archive whose members passed their CRC-32 check, with the numeric
/// arrays' shapes and notes on what was skipped.
struct Opened {
    npz: NpzTensors,
    names: Vec<String>,
    numeric: Shapes,
    notes: Vec<String>,
}

/// Opens `path`, checks every member, and refuses it if one of the
/// `required` arrays is present but unreadable (naming it and why).
fn open(path: &Path, required: &[&str]) -> Result<Opened> {
    // Before candle opens it: a named pipe would wait for a writer (and
    // `-` is said not to be standard input).
    recur_core::fsx::refuse_non_file(path)?;
    if !path.exists() {
        return Err(npz_err(path, "no such file".to_string()));
    }
    let npz = NpzTensors::new(path).map_err(|e| {
        npz_err(
            path,
            format!(
                "not a readable .npz file ({e}); write it with numpy.savez or savez_compressed"
            ),
        )
    })?;
    let sizes = member_sizes(path)?;
    let mut names: Vec<String> = npz.names().into_iter().cloned().collect();
    names.sort();
    let mut notes = Vec::new();
    let mut numeric = BTreeMap::new();
    let mut unusable = BTreeMap::new();
    for n in &names {
        match npz.get_shape_and_dtype(n) {
            Ok((shape, dtype)) => {
                // Checked: elem_count's product wrapped for a crafted shape
                // such as (2**62, 5, 384), to 0 bytes needed.
                let need = shape
                    .dims()
                    .iter()
                    .try_fold(dtype.size_in_bytes(), |a, &d| a.checked_mul(d))
                    .unwrap_or(usize::MAX);
                // numpy reads a member without the `.npy` suffix by its
                // name as well.
                let held = sizes
                    .get(&format!("{n}.npy"))
                    .or_else(|| sizes.get(n))
                    .copied()
                    .unwrap_or(0);
                if need as u64 > held {
                    return Err(npz_err(
                        path,
                        format!(
                            "array `{n}` is truncated: its header says {:?} {dtype:?} ({need} bytes) \
                             but its member holds {held} bytes in all",
                            shape.dims()
                        ),
                    ));
                }
                numeric.insert(n.clone(), (shape.dims().to_vec(), dtype));
            }
            Err(e) => {
                notes.push(format!(
                    "skipped array `{n}` (not a numeric array: {e}; object arrays are never unpickled)"
                ));
                let e = e.to_string();
                // candle calls a big-endian descr "little-endian".
                let e = if e.contains("descr >") {
                    format!(
                        "it is big-endian: {}",
                        e.rsplit("descr ").next().unwrap_or("")
                    )
                } else {
                    e
                };
                unusable.insert(n.clone(), e);
            }
        }
    }
    for &n in required {
        if let Some(e) = unusable.get(n) {
            return Err(npz_err(
                path,
                format!(
                    "array `{n}` is in the file but cannot be read ({e}); save it as a \
                     little-endian numeric array (float32 vectors, int64 indices), \
                     C order, with numpy.savez"
                ),
            ));
        }
    }
    Ok(Opened {
        npz,
        names,
        numeric,
        notes,
    })
}

/// A chunks file's arrays as stored (what a search bank reads): the
/// vectors with their shape, and the index arrays where the file has them.
pub struct ChunkArrays {
    pub vectors: Vec<f32>,
    pub shape: Vec<usize>,
    pub articles: Option<Vec<i64>>,
    pub chunks: Option<Vec<i64>>,
}

/// Reads the arrays of a chunks file from one opening of it (each opening
/// reads every member through for its CRC); `None` when the file has no
/// `vectors`.
pub fn read_chunk_arrays(path: &Path) -> Result<Option<ChunkArrays>> {
    let names = ["vectors", "article_indices", "chunk_indices"];
    let o = open(path, &names)?;
    let Some(t) = read(&o.npz, path, names[0])? else {
        return Ok(None);
    };
    let ints = |name: &str| -> Result<Option<Vec<i64>>> {
        read(&o.npz, path, name)?
            .map(|t| i64_data(&t, path, name))
            .transpose()
    };
    Ok(Some(ChunkArrays {
        shape: t.dims().to_vec(),
        vectors: f32_data(&t, path, names[0])?,
        articles: ints(names[1])?,
        chunks: ints(names[2])?,
    }))
}

/// Reads `path` with windows of `context` vectors. Ready windows must have
/// that context length; chunk files are windowed with it.
pub fn read_windows(path: &Path, context: usize) -> Result<VectorWindows> {
    read_windows_min(path, context, None)
}

/// As [`read_windows`], and with `min_context = Some(k)` a chunk file also
/// gives the short windows: each chunk at position `j` in its article, for
/// `k <= j < context`, is the target of the `j` chunks before it, padded to
/// `context` by repeating the earliest (exactly as `/chat` pads a short
/// conversation); [`VectorWindows::real`] keeps `j`. Articles too short for
/// a full window give their short ones. Ready-window files have no short
/// windows to give and are refused with `min_context`.
pub fn read_windows_min(
    path: &Path,
    context: usize,
    min_context: Option<usize>,
) -> Result<VectorWindows> {
    windows_of_file(path, context, min_context, false)
}

/// The windows of a chunks file read backwards, as [`read_windows_min`]
/// gives them forwards: every article's chunks in reverse order, so each
/// chunk is the target of the `context` chunks after it (the nearest last)
/// and the short windows of `min_context` are at the article's end, padded
/// by repeating the last chunk. A training augmentation (`data.reverse`);
/// ready-window files have no order to reverse and are refused.
pub fn read_reversed_windows(
    path: &Path,
    context: usize,
    min_context: Option<usize>,
) -> Result<VectorWindows> {
    windows_of_file(path, context, min_context, true)
}

fn windows_of_file(
    path: &Path,
    context: usize,
    min_context: Option<usize>,
    reverse: bool,
) -> Result<VectorWindows> {
    if context == 0 {
        return Err(npz_err(path, "the context length must be at least 1"));
    }
    if let Some(k) = min_context {
        if k == 0 || k >= context {
            // A setting, not the file: named as the config and the
            // command line give it (it had read as the data file's fault).
            return Err(Error::Msg(format!(
                "min_context {k} (data.min_context, or --min-context) must be from 1 to {} \
                 (below the context length {context})",
                context.saturating_sub(1)
            )));
        }
    }
    let Opened {
        npz,
        names,
        numeric,
        mut notes,
    } = open(
        path,
        &[
            "context_sequences",
            "target_vectors",
            "vectors",
            "article_indices",
            "chunk_indices",
        ],
    )?;
    let has = |n: &str| numeric.contains_key(n);
    if (has("context_sequences") || has("target_vectors")) && has("vectors") {
        return Err(npz_err(
            path,
            "holds both layouts (`context_sequences`/`target_vectors`, ready windows, and \
             `vectors`, chunks): which to read cannot be told; write one of them per file",
        ));
    }
    let mut w =
        if has("context_sequences") && has("target_vectors") {
            if reverse {
                return Err(npz_err(
                    path,
                    "holds ready windows, which cannot be read backwards: data.reverse needs a \
                     chunks file (`vectors`, `article_indices`, `chunk_indices`, as `recur corpus \
                     build` writes)",
                ));
            }
            if min_context.is_some() {
                return Err(npz_err(
                    path,
                    "holds ready windows, which cannot give short ones: min_context needs a \
                     chunks file (`vectors`, `article_indices`, `chunk_indices`, as `recur corpus \
                     build` writes)",
                ));
            }
            ready_windows(&npz, path, context, &numeric)?
        } else if has("vectors") && has("article_indices") && has("chunk_indices") {
            chunk_windows(&npz, path, context, min_context, reverse)?
        } else {
            return Err(npz_err(
                path,
                format!(
                "expected `context_sequences` and `target_vectors` (ready windows) or `vectors`, \
                 `article_indices` and `chunk_indices` (chunks); the file holds {}",
                if names.is_empty() { "no arrays".to_string() } else { names.join(", ") }
            ),
            ));
        };
    if w.is_empty() {
        return Err(npz_err(
            path,
            format!(
                "no windows of {context} context vectors plus a target can be built from its \
                 articles, which are too short for that context (data.context in training; a \
                 trained model's own when scoring, where --min-context takes shorter windows): \
                 give longer articles, or a shorter context"
            ),
        ));
    }
    if let Some((at, v)) = first_bad_value(&w) {
        let what = if v.is_finite() {
            format!(
                "holds {v:e} ({at}); the LVMs take sentence embeddings, values within \
                 ±{MAX_VECTOR_VALUE:e} (unit vectors, within ±1): normalise the vectors"
            )
        } else {
            format!("holds a NaN or infinite value ({at}); every vector must be finite")
        };
        return Err(npz_err(path, what));
    }
    notes.append(&mut w.notes);
    w.notes = notes;
    Ok(w)
}

fn bad_value(v: f32) -> bool {
    !v.is_finite() || v.abs() > MAX_VECTOR_VALUE
}

/// Where the first value out of range is, the contexts in window order
/// before the targets (as they were laid out when each window held a copy
/// of its vectors), and the value; `None` when every vector a window names
/// is in range.
fn first_bad_value(w: &VectorWindows) -> Option<(String, f32)> {
    let d = w.dim.max(1);
    // The rows first: most files have no bad value, and those are read once.
    if !w
        .vectors
        .chunks_exact(d)
        .any(|r| r.iter().any(|&v| bad_value(v)))
    {
        return None;
    }
    for i in 0..w.len() {
        for (j, r) in w.context_vectors(i).enumerate() {
            if let Some(k) = r.iter().position(|&v| bad_value(v)) {
                return Some((format!("window {i}, context vector {j}, element {k}"), r[k]));
            }
        }
    }
    (0..w.len()).find_map(|i| {
        let t = w.target_of(i);
        t.iter()
            .position(|&v| bad_value(v))
            .map(|k| (format!("the target of window {i}, element {k}"), t[k]))
    })
}

/// Refuses windows to be scored (trained on, evaluated) whose target is
/// all zeros, naming the window and its article: a zero vector has no
/// direction, so every prediction scored cosine 0 against it, silently.
/// Prediction reads no target (a file of contexts may hold zeros there),
/// and zero context vectors, a padding, may stay.
pub fn refuse_zero_targets(w: &VectorWindows, path: &Path) -> Result<()> {
    let Some(j) = (0..w.len()).find(|&i| w.target_of(i).iter().all(|&x| x == 0.0)) else {
        return Ok(());
    };
    let article = match &w.articles {
        Some(a) => format!(" (article {})", a[j]),
        None => String::new(),
    };
    Err(npz_err(
        path,
        format!(
            "the target of window {j}{article} is all zeros: a sentence embedding has a \
             direction; drop that chunk or give its embedding"
        ),
    ))
}

/// The largest magnitude a vector's element may have. Sentence embeddings
/// are unit vectors (or near it); values far beyond overflowed float32
/// in the norms (a 1e20 file scored every baseline 0) and made training
/// "diverge" for a reason that was the data's.
pub const MAX_VECTOR_VALUE: f32 = 1e6;

fn f32_data(t: &Tensor, path: &Path, name: &str) -> Result<Vec<f32>> {
    if !t.dtype().is_float() {
        return Err(npz_err(
            path,
            format!("array `{name}` must hold floats, it holds {:?}", t.dtype()),
        ));
    }
    t.to_dtype(DType::F32)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1::<f32>())
        .map_err(|e| npz_err(path, format!("array `{name}`: {e}")))
}

fn i64_data(t: &Tensor, path: &Path, name: &str) -> Result<Vec<i64>> {
    if t.dtype().is_float() {
        return Err(npz_err(
            path,
            format!(
                "array `{name}` must hold integers, it holds {:?}",
                t.dtype()
            ),
        ));
    }
    t.to_dtype(DType::I64)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1::<i64>())
        .map_err(|e| npz_err(path, format!("array `{name}`: {e}")))
}

type Shapes = BTreeMap<String, (Vec<usize>, DType)>;

fn ready_windows(
    npz: &NpzTensors,
    path: &Path,
    context: usize,
    shapes: &Shapes,
) -> Result<VectorWindows> {
    let (cs, _) = &shapes["context_sequences"];
    let (ts, _) = &shapes["target_vectors"];
    let [n, c, d] = cs[..] else {
        return Err(npz_err(
            path,
            format!("`context_sequences` must be [N, C, D], it is {cs:?}"),
        ));
    };
    if ts[..] != [n, d] {
        return Err(npz_err(
            path,
            format!("`target_vectors` must be [{n}, {d}] to match `context_sequences` {cs:?}, it is {ts:?}"),
        ));
    }
    if c != context {
        return Err(npz_err(
            path,
            format!("windows have {c} context vectors; the model is configured for {context}"),
        ));
    }
    let get =
        |name: &str| read(npz, path, name)?.ok_or_else(|| npz_err(path, format!("no `{name}`")));
    let contexts = f32_data(&get("context_sequences")?, path, "context_sequences")?;
    let targets = f32_data(&get("target_vectors")?, path, "target_vectors")?;
    // Named but of another shape, it was ignored, and validation was split
    // off the end of the file, not by article.
    let articles = match shapes.get("article_indices") {
        Some((s, _)) if s[..] == [n] => {
            Some(i64_data(&get("article_indices")?, path, "article_indices")?)
        }
        Some((s, _)) => {
            return Err(npz_err(
                path,
                format!(
                    "`article_indices` must be [{n}], one article per window of \
                     `context_sequences`; it is {s:?}"
                ),
            ))
        }
        None => None,
    };
    let mut notes = vec![format!("{n} ready windows of {c} x {d}")];
    notes.extend(norm_note(&[&contexts, &targets], d));
    let mut w = VectorWindows::from_flat(contexts, targets, context, d);
    w.articles = articles;
    w.notes = notes;
    Ok(w)
}

/// A note when the vectors are not unit length, as sentence embeddings
/// are: the models' outputs are, so MSE figures against them mean little,
/// and inputs of another scale are not what a model trained on embeddings
/// has seen. (Cosine figures are unaffected.)
fn norm_note(parts: &[&[f32]], d: usize) -> Option<String> {
    let (mut lo, mut hi) = (f64::INFINITY, 0f64);
    for v in parts.iter().flat_map(|p| p.chunks_exact(d.max(1))) {
        let n = v.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt();
        // All zeros: padding of a short context, not a vector.
        if n > 0.0 {
            lo = lo.min(n);
            hi = hi.max(n);
        }
    }
    (hi > 0.0 && ((lo - 1.0).abs() > 1e-3 || (hi - 1.0).abs() > 1e-3)).then(|| {
        format!(
            "the vectors are not unit length (norms {lo:.3} to {hi:.3}): the models predict unit \
             vectors, so MSE figures compare unlike scales; normalise them (as sentence \
             encoders do) unless this is meant"
        )
    })
}

fn chunk_windows(
    npz: &NpzTensors,
    path: &Path,
    context: usize,
    min_context: Option<usize>,
    reverse: bool,
) -> Result<VectorWindows> {
    let get =
        |name: &str| read(npz, path, name)?.ok_or_else(|| npz_err(path, format!("no `{name}`")));
    let v = get("vectors")?;
    let (m, d) = v.dims2().map_err(|_| {
        npz_err(
            path,
            format!("`vectors` must be [M, D], it is {:?}", v.dims()),
        )
    })?;
    if d == 0 {
        return Err(npz_err(
            path,
            format!("`vectors` is [{m}, 0]: the vectors need at least one dimension"),
        ));
    }
    let vectors = f32_data(&v, path, "vectors")?;
    let art = i64_data(&get("article_indices")?, path, "article_indices")?;
    let chunk = i64_data(&get("chunk_indices")?, path, "chunk_indices")?;
    for (name, a) in [("article_indices", &art), ("chunk_indices", &chunk)] {
        if a.len() != m {
            return Err(npz_err(
                path,
                format!("`{name}` has {} entries; `vectors` has {m} rows", a.len()),
            ));
        }
    }
    // Rows of each article, in chunk order; articles in order of first appearance.
    let mut by_article: Vec<(i64, Vec<usize>)> = Vec::new();
    let mut slot = std::collections::HashMap::new();
    for (row, &a) in art.iter().enumerate() {
        let s = *slot.entry(a).or_insert_with(|| {
            by_article.push((a, Vec::new()));
            by_article.len() - 1
        });
        by_article[s].1.push(row);
    }
    // Each window names its vectors' rows (reserved at once: the index
    // buffers are never grown by doubling).
    let windows: usize = by_article
        .iter()
        .map(|(_, rows)| {
            let n = rows.len();
            n.saturating_sub(context) + min_context.map_or(0, |k| context.min(n).saturating_sub(k))
        })
        .sum();
    // Eight bytes a context vector: past 8 GiB the file's windows are far
    // beyond what training could hold anyway.
    if windows.saturating_mul(context) > 1 << 30 {
        return Err(npz_err(
            path,
            format!(
                "{windows} windows of {context} context vectors would take {} GiB of row \
                 numbers alone: lower data.context (or min_context)",
                windows.saturating_mul(context) >> 27
            ),
        ));
    }
    let (mut contexts, mut targets, mut articles) = (
        Vec::with_capacity(windows * context),
        Vec::with_capacity(windows),
        Vec::with_capacity(windows),
    );
    let mut real = Vec::with_capacity(windows);
    let mut short = 0;
    // Articles whose chunk indices skip some (the first such gap): their
    // windows join the chunks either side, which the user should know.
    let (mut gapped, mut first_gap) = (0, None);
    for (a, rows) in &mut by_article {
        rows.sort_by_key(|&r| chunk[r]);
        if let Some(p) = rows.windows(2).find(|p| {
            chunk[p[0]]
                .checked_add(1)
                .is_some_and(|next| chunk[p[1]] > next)
        }) {
            gapped += 1;
            first_gap.get_or_insert((*a, chunk[p[0]], chunk[p[1]]));
        }
        if let Some(p) = rows.windows(2).find(|p| chunk[p[0]] == chunk[p[1]]) {
            return Err(npz_err(
                path,
                format!(
                    "article {a} has chunk index {} twice (rows {} and {})",
                    chunk[p[0]], p[0], p[1]
                ),
            ));
        }
        if reverse {
            rows.reverse();
        }
        if let Some(k) = min_context {
            // Targets at positions k..context, each after all the chunks before it.
            for j in k..context.min(rows.len()) {
                contexts.extend(std::iter::repeat_n(rows[0], context - j));
                contexts.extend_from_slice(&rows[..j]);
                targets.push(rows[j]);
                articles.push(*a);
                real.push(j);
            }
        }
        if rows.len() <= context {
            short += 1;
            continue;
        }
        for i in 0..rows.len() - context {
            real.push(context);
            contexts.extend_from_slice(&rows[i..i + context]);
            targets.push(rows[i + context]);
            articles.push(*a);
        }
    }
    debug_assert_eq!(articles.len(), windows);
    let mut notes = vec![format!(
        "{m} chunks of dimension {d} in {} articles -> {} {}windows",
        by_article.len(),
        articles.len(),
        if reverse { "reversed " } else { "" }
    )];
    if min_context.is_some() {
        let n_short = real.iter().filter(|&&j| j < context).count();
        notes.push(format!(
            "{n_short} of them short windows (fewer than {context} real context vectors)"
        ));
    }
    if short > 0 {
        notes.push(format!(
            "{short} articles have {context} chunks or fewer and give no full window"
        ));
    }
    notes.extend(norm_note(&[&vectors], d));
    if let Some((a, from, to)) = first_gap {
        notes.push(format!(
            "{gapped} articles skip chunk indices (article {a}: {from}, then {to}); their \
             windows run across the gaps, as if the chunks were consecutive"
        ));
    }
    Ok(VectorWindows {
        vectors: Arc::new(vectors),
        context_rows: contexts,
        target_rows: targets,
        context,
        dim: d,
        articles: Some(articles),
        real: min_context.map(|_| real),
        notes,
    })
}

/// Writes a float32 `.npy` of `shape`, atomically.
pub fn write_npy(path: &Path, data: &[f32], shape: &[usize]) -> Result<()> {
    let t = Tensor::from_slice(data, shape, &candle_core::Device::Cpu)?;
    write_atomic_with(path, |p| t.write_npy(p))
}

/// Writes the chunks layout (`vectors [M, D]` float32, `article_indices`
/// and `chunk_indices [M]` int64), atomically.
pub fn write_chunks(
    path: &Path,
    vectors: &[f32],
    dim: usize,
    article_indices: &[i64],
    chunk_indices: &[i64],
) -> Result<()> {
    let dev = candle_core::Device::Cpu;
    let m = article_indices.len();
    if vectors.len() != m * dim || chunk_indices.len() != m {
        return Err(npz_err(
            path,
            format!(
                "{} vector values, {m} article indices and {} chunk indices do not make {m} chunks of dimension {dim}",
                vectors.len(),
                chunk_indices.len()
            ),
        ));
    }
    let v = Tensor::from_slice(vectors, (m, dim), &dev)?;
    let a = Tensor::from_slice(article_indices, m, &dev)?;
    let c = Tensor::from_slice(chunk_indices, m, &dev)?;
    write_atomic_with(path, |p| {
        Tensor::write_npz(
            &[
                ("vectors", &v),
                ("article_indices", &a),
                ("chunk_indices", &c),
            ],
            p,
        )
    })
}

/// Splits windows into train and validation by article: a `val_fraction`
/// of the articles, drawn with `seed`, go to validation. With short windows
/// ([`VectorWindows::real`]) the articles are drawn among those with a
/// full window and validation keeps only full windows, so the validation
/// set is the one the same file gives without short windows. Without article
/// ids the last `val_fraction` of the windows (in file order) is held out
/// as one block, and the `context` windows before it are left out of
/// training: a window's target is in the contexts of the `context` windows
/// after it in the same text, so none of those is trained on. Where no
/// article has a full window (or there are no windows), the validation
/// side is empty, for the caller to refuse with its own advice.
pub fn split_by_article(
    w: &VectorWindows,
    val_fraction: f64,
    seed: u64,
) -> (Vec<usize>, Vec<usize>) {
    let n = w.len();
    match &w.articles {
        Some(a) => {
            // Held-out articles are drawn among those with a full window, and
            // only their full windows are validated on, so short windows never
            // change the validation set.
            let mut ids: Vec<i64> = (0..n).filter(|&i| w.is_full(i)).map(|i| a[i]).collect();
            ids.sort_unstable();
            ids.dedup();
            if ids.is_empty() {
                return ((0..n).collect(), Vec::new());
            }
            Rng::stream(seed, 3).shuffle(&mut ids);
            let n_val = ((ids.len() as f64 * val_fraction).round() as usize)
                .clamp(1, ids.len().saturating_sub(1).max(1));
            let val: std::collections::HashSet<i64> = ids[..n_val].iter().copied().collect();
            let train = (0..n).filter(|&i| !val.contains(&a[i])).collect();
            let held = (0..n)
                .filter(|&i| val.contains(&a[i]) && w.is_full(i))
                .collect();
            (train, held)
        }
        None if n == 0 => (Vec::new(), Vec::new()),
        None => {
            let n_val =
                ((n as f64 * val_fraction).round() as usize).clamp(1, n.saturating_sub(1).max(1));
            let end = (n - n_val).saturating_sub(w.context);
            ((0..end).collect(), (n - n_val..n).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use std::io::Write;

    /// An .npz written entry by entry, each entry the .npy bytes candle
    /// writes (or raw bytes), stored or deflated.
    fn write_npz(path: &Path, entries: &[(&str, Vec<u8>)], deflate: bool) {
        let f = std::fs::File::create(path).unwrap();
        let mut z = zip::ZipWriter::new(f);
        let method = if deflate {
            zip::CompressionMethod::Deflated
        } else {
            zip::CompressionMethod::Stored
        };
        let opts = zip::write::SimpleFileOptions::default().compression_method(method);
        for (name, bytes) in entries {
            // A name ending in `/` is written as it is, without `.npy`
            // (numpy reads such members too).
            let member = match name.strip_suffix('/') {
                Some(bare) => bare.to_string(),
                None => format!("{name}.npy"),
            };
            z.start_file(member, opts).unwrap();
            z.write_all(bytes).unwrap();
        }
        z.finish().unwrap();
    }

    fn npy(t: &Tensor) -> Vec<u8> {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.npy");
        t.write_npy(&p).unwrap();
        std::fs::read(p).unwrap()
    }

    /// A numpy object array: candle's reader refuses it.
    fn object_npy() -> Vec<u8> {
        npy_raw("|O", "(2,)", b"\x80\x04\x95pickle-bytes-never-read")
    }

    #[test]
    fn chunks_become_windows_inside_each_article_in_chunk_order() {
        let dev = Device::Cpu;
        // Article 7: chunks 0..4 stored out of order; article 3: chunks 0..2 (too short for
        // one window of 3 + target); article 9: 0..3. Vector value = 10 * article + chunk.
        let rows: Vec<(i64, i64)> = vec![
            (7, 2),
            (3, 0),
            (7, 0),
            (9, 1),
            (7, 3),
            (3, 1),
            (7, 1),
            (9, 0),
            (7, 4),
            (9, 2),
            (3, 2),
            (9, 3),
        ];
        let vectors: Vec<f32> = rows
            .iter()
            .flat_map(|&(a, c)| [(10 * a + c) as f32, 1.0])
            .collect();
        let art: Vec<i64> = rows.iter().map(|r| r.0).collect();
        let chk: Vec<i64> = rows.iter().map(|r| r.1).collect();
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("chunks.npz");
        write_npz(
            &p,
            &[
                (
                    "vectors",
                    npy(&Tensor::from_vec(vectors, (12, 2), &dev).unwrap()),
                ),
                (
                    "article_indices",
                    npy(&Tensor::new(art.as_slice(), &dev).unwrap()),
                ),
                (
                    "chunk_indices",
                    npy(&Tensor::new(chk.as_slice(), &dev).unwrap()),
                ),
                ("titles", object_npy()),
            ],
            true,
        );
        let w = read_windows(&p, 3).unwrap();
        // Article 7: 5 chunks -> 2 windows; article 9: 4 chunks -> 1; article 3: none.
        assert_eq!(w.len(), 3);
        let firsts = |i: usize| -> Vec<f32> { w.context_of(i).chunks(2).map(|v| v[0]).collect() };
        assert_eq!(firsts(0), [70.0, 71.0, 72.0]);
        assert_eq!(w.target_of(0)[0], 73.0);
        assert_eq!(firsts(1), [71.0, 72.0, 73.0]);
        assert_eq!(w.target_of(1)[0], 74.0);
        assert_eq!(firsts(2), [90.0, 91.0, 92.0]);
        assert_eq!(w.target_of(2)[0], 93.0);
        assert_eq!(w.articles.as_deref(), Some(&[7, 7, 9][..]));
        let notes = w.notes.join("\n");
        assert!(
            notes.contains("skipped array `titles`") && notes.contains("never unpickled"),
            "{notes}"
        );
        assert!(
            notes.contains("1 articles have 3 chunks or fewer"),
            "{notes}"
        );
        assert!(w.real.is_none() && w.is_full(0));

        // With min_context 1: every chunk at position 1..3 is also a target of
        // the chunks before it, padded in front with the earliest; article 3
        // (3 chunks, no full window) gives its two short ones.
        let s = read_windows_min(&p, 3, Some(1)).unwrap();
        let firsts = |i: usize| -> Vec<f32> { s.context_of(i).chunks(2).map(|v| v[0]).collect() };
        let target = |i: usize| s.target_of(i)[0];
        assert_eq!(s.len(), 3 + 2 * 3);
        assert_eq!(
            s.articles.as_deref(),
            Some(&[7, 7, 7, 7, 3, 3, 9, 9, 9][..])
        );
        assert_eq!(s.real.as_deref(), Some(&[1, 2, 3, 3, 1, 2, 1, 2, 3][..]));
        assert_eq!((firsts(0), target(0)), (vec![70.0, 70.0, 70.0], 71.0));
        assert_eq!((firsts(1), target(1)), (vec![70.0, 70.0, 71.0], 72.0));
        assert_eq!((firsts(2), target(2)), (vec![70.0, 71.0, 72.0], 73.0));
        assert_eq!((firsts(5), target(5)), (vec![30.0, 30.0, 31.0], 32.0));
        assert!(!s.is_full(4) && s.is_full(3));
        let notes = s.notes.join("\n");
        assert!(notes.contains("6 of them short windows"), "{notes}");
        // min_context 2 drops the one-vector windows.
        let s2 = read_windows_min(&p, 3, Some(2)).unwrap();
        assert_eq!(s2.real.as_deref(), Some(&[2, 3, 3, 2, 2, 3][..]));
        for bad in [0, 3] {
            let e = read_windows_min(&p, 3, Some(bad)).unwrap_err().to_string();
            assert!(
                e.contains("--min-context") && e.contains("must be from 1 to 2"),
                "{e}"
            );
        }

        // Read backwards: each chunk is the target of the 3 after it, the
        // nearest last; short windows sit at the article's end, padded with
        // its last chunk.
        let r = read_reversed_windows(&p, 3, None).unwrap();
        let firsts = |i: usize| -> Vec<f32> { r.context_of(i).chunks(2).map(|v| v[0]).collect() };
        assert_eq!(r.len(), 3);
        assert_eq!(
            (firsts(0), r.target_of(0)[0]),
            (vec![74.0, 73.0, 72.0], 71.0)
        );
        assert_eq!(
            (firsts(1), r.target_of(1)[0]),
            (vec![73.0, 72.0, 71.0], 70.0)
        );
        assert_eq!(
            (firsts(2), r.target_of(2)[0]),
            (vec![93.0, 92.0, 91.0], 90.0)
        );
        assert_eq!(r.articles.as_deref(), Some(&[7, 7, 9][..]));
        assert!(
            r.notes.join("\n").contains("-> 3 reversed windows"),
            "{:?}",
            r.notes
        );
        let rs = read_reversed_windows(&p, 3, Some(1)).unwrap();
        let firsts = |i: usize| -> Vec<f32> { rs.context_of(i).chunks(2).map(|v| v[0]).collect() };
        assert_eq!(rs.len(), 9);
        assert_eq!(rs.real.as_deref(), Some(&[1, 2, 3, 3, 1, 2, 1, 2, 3][..]));
        assert_eq!(
            (firsts(0), rs.target_of(0)[0]),
            (vec![74.0, 74.0, 74.0], 73.0)
        );
        assert_eq!(
            (firsts(5), rs.target_of(5)[0]),
            (vec![32.0, 32.0, 31.0], 30.0)
        );

        // Forward and reversed together: the reversed ones follow, `real`
        // filled in for the side without short windows.
        let mut both = read_windows(&p, 3).unwrap();
        both.extend(rs);
        assert_eq!(both.len(), 12);
        assert_eq!(both.articles.as_ref().unwrap()[3..6], [7, 7, 7]);
        assert_eq!(
            both.real.as_deref(),
            Some(&[3, 3, 3, 1, 2, 3, 3, 1, 2, 1, 2, 3][..])
        );
        assert_eq!(both.target_of(4)[0], 72.0);
    }

    /// A chunk file's windows name its rows: selections and an appended
    /// file's windows hold the same vectors as the file says, and a bad
    /// value is named by the first window that holds it, contexts before
    /// targets, as when every window held a copy; a bad row no window
    /// reads is no error.
    #[test]
    fn windows_name_the_files_rows_and_a_bad_value_by_its_first_window() {
        let dev = Device::Cpu;
        let d = tempfile::tempdir().unwrap();
        // Article 0: chunks 0..6 (value 10 + chunk); article 1: two chunks,
        // too few for a window of 3.
        let write = |name: &str, bad: Option<(usize, usize, f32)>| {
            let mut v: Vec<f32> = (0..8)
                .flat_map(|r| [10.0 + r as f32, -(r as f32)])
                .collect();
            if let Some((row, k, x)) = bad {
                v[row * 2 + k] = x;
            }
            let p = d.path().join(name);
            write_npz(
                &p,
                &[
                    ("vectors", npy(&Tensor::from_vec(v, (8, 2), &dev).unwrap())),
                    (
                        "article_indices",
                        npy(&Tensor::new(&[0i64, 0, 0, 0, 0, 0, 1, 1][..], &dev).unwrap()),
                    ),
                    (
                        "chunk_indices",
                        npy(&Tensor::new(&[0i64, 1, 2, 3, 4, 5, 0, 1][..], &dev).unwrap()),
                    ),
                ],
                false,
            );
            p
        };
        let w = read_windows(&write("ok.npz", None), 3).unwrap();
        assert_eq!(w.len(), 3);
        let s = w.select(&[2, 0]);
        assert_eq!(s.context_of(0), [12.0, -2.0, 13.0, -3.0, 14.0, -4.0]);
        assert_eq!(s.target_of(0), [15.0, -5.0]);
        assert_eq!(s.gather(&[1]), w.gather(&[0]));
        // The same file read again: its vectors are not held twice.
        let mut again = w.clone();
        again.extend(read_windows(&write("again.npz", None), 3).unwrap());
        assert!(Arc::ptr_eq(&again.vectors, &w.vectors) && again.len() == 6);
        assert_eq!(again.gather(&[3, 4, 5]), w.gather(&[0, 1, 2]));
        let mut e = s.clone();
        e.extend(read_windows(&write("other.npz", Some((0, 0, 0.5))), 3).unwrap());
        assert_eq!(e.len(), 5);
        assert_eq!(e.context_of(2), [0.5, 0.0, 11.0, -1.0, 12.0, -2.0]);
        assert_eq!(e.gather(&[0, 1]), s.gather(&[0, 1]));
        assert_eq!(e.targets()[4 * 2..], [15.0, -5.0]);
        assert_eq!(e.largest_context_value(), 14.0);

        let err = |bad| {
            read_windows(&write("bad.npz", Some(bad)), 3)
                .unwrap_err()
                .to_string()
        };
        // Chunk 4 is window 2's last context vector before window 1's target.
        let e = err((4, 0, f32::NAN));
        assert!(e.contains("(window 2, context vector 2, element 0)"), "{e}");
        // Chunk 5 is only ever a target.
        let e = err((5, 1, 1e30));
        assert!(
            e.contains("holds 1e30 (the target of window 2, element 1)"),
            "{e}"
        );
        // Vectors of no dimension are refused by their shape.
        let zero = d.path().join("zero.npz");
        write_npz(
            &zero,
            &[
                (
                    "vectors",
                    npy(&Tensor::zeros((8, 0), DType::F32, &dev).unwrap()),
                ),
                (
                    "article_indices",
                    npy(&Tensor::new(&[0i64; 8][..], &dev).unwrap()),
                ),
                (
                    "chunk_indices",
                    npy(&Tensor::new(&[0i64, 1, 2, 3, 4, 5, 6, 7][..], &dev).unwrap()),
                ),
            ],
            false,
        );
        let e = read_windows(&zero, 3).unwrap_err().to_string();
        assert!(e.contains("`vectors` is [8, 0]"), "{e}");
        // Article 1's rows are in no window.
        assert_eq!(
            read_windows(&write("unread.npz", Some((7, 0, f32::NAN))), 3)
                .unwrap()
                .len(),
            3
        );
    }

    #[test]
    fn ready_windows_cannot_be_read_backwards() {
        let dev = Device::Cpu;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("ready.npz");
        write_npz(
            &p,
            &[
                (
                    "context_sequences",
                    npy(&Tensor::zeros((2, 3, 2), candle_core::DType::F32, &dev).unwrap()),
                ),
                (
                    "target_vectors",
                    npy(&Tensor::ones((2, 2), candle_core::DType::F32, &dev).unwrap()),
                ),
            ],
            false,
        );
        assert_eq!(read_windows(&p, 3).unwrap().len(), 2);
        // `-` is said not to be standard input, not a missing file.
        let e = read_windows(Path::new("-"), 3).unwrap_err().to_string();
        assert!(e.contains("standard input is not read"), "{e}");
        let e = read_reversed_windows(&p, 3, None).unwrap_err().to_string();
        assert!(
            e.contains("ready.npz") && e.contains("data.reverse needs a chunks file"),
            "{e}"
        );
    }

    #[test]
    fn short_windows_never_enter_validation_nor_change_which_articles_it_holds() {
        // 40 articles: even ones long (one short window, then full ones), odd
        // ones short only. Without short windows the same articles are held out.
        let (mut articles, mut real) = (Vec::new(), Vec::new());
        for a in 0..40i64 {
            if a % 2 == 0 {
                articles.extend([a; 4]);
                real.extend([1, 2, 2, 2]);
            } else {
                articles.extend([a; 2]);
                real.extend([1, 1]);
            }
        }
        let n = articles.len();
        let with = VectorWindows {
            articles: Some(articles.clone()),
            real: Some(real.clone()),
            ..VectorWindows::from_flat(vec![0.0; n * 2], vec![0.0; n], 2, 1)
        };
        let full: Vec<usize> = (0..n).filter(|&i| real[i] == 2).collect();
        let without = with.select(&full);
        let without = VectorWindows {
            real: None,
            ..without
        };
        let (tr, va) = split_by_article(&with, 0.2, 7);
        let (_, va0) = split_by_article(&without, 0.2, 7);
        let held = |w: &VectorWindows, idx: &[usize]| -> Vec<i64> {
            idx.iter()
                .map(|&i| w.articles.as_ref().unwrap()[i])
                .collect()
        };
        assert!(va.iter().all(|&i| with.is_full(i)));
        assert_eq!(held(&with, &va), held(&without, &va0));
        assert!(held(&with, &va).iter().all(|a| a % 2 == 0));
        // Every short window of a training article trains; none of a held-out one.
        let val_articles: std::collections::HashSet<i64> = held(&with, &va).into_iter().collect();
        assert_eq!(
            tr.len(),
            (0..n)
                .filter(|&i| !val_articles.contains(&articles[i]))
                .count()
        );
        assert!(tr.iter().any(|&i| !with.is_full(i)));
        // With no full window anywhere there is nothing to validate on: the
        // split says so by an empty side (it indexed an empty list before).
        let short = with.select(&(0..n).filter(|&i| real[i] == 1).collect::<Vec<_>>());
        assert_eq!(
            split_by_article(&short, 0.2, 7),
            ((0..short.len()).collect(), vec![])
        );
        let none = with.select(&[]);
        assert_eq!(split_by_article(&none, 0.2, 7), (vec![], vec![]));
    }

    #[test]
    fn ready_windows_are_checked_against_the_context_and_each_other() {
        let dev = Device::Cpu;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("w.npz");
        let ctx = Tensor::ones((4, 5, 3), DType::F32, &dev).unwrap();
        let tgt = Tensor::ones((4, 3), DType::F32, &dev).unwrap();
        write_npz(
            &p,
            &[
                ("context_sequences", npy(&ctx)),
                ("target_vectors", npy(&tgt)),
            ],
            false,
        );
        let w = read_windows(&p, 5).unwrap();
        assert_eq!((w.len(), w.context, w.dim), (4, 5, 3));
        assert!(w.articles.is_none());
        // Members named without `.npy` read the same.
        let bare = d.path().join("bare.npz");
        write_npz(
            &bare,
            &[
                ("context_sequences/", npy(&ctx)),
                ("target_vectors/", npy(&tgt)),
            ],
            false,
        );
        assert_eq!(read_windows(&bare, 5).unwrap().targets(), w.targets());
        let e = read_windows(&p, 4).unwrap_err().to_string();
        assert!(
            e.contains("w.npz")
                && e.contains("5 context vectors")
                && e.contains("configured for 4"),
            "{e}"
        );
        let bad = Tensor::zeros((4, 2), DType::F32, &dev).unwrap();
        write_npz(
            &p,
            &[
                ("context_sequences", npy(&ctx)),
                ("target_vectors", npy(&bad)),
            ],
            false,
        );
        let e = read_windows(&p, 5).unwrap_err().to_string();
        assert!(e.contains("`target_vectors` must be [4, 3]"), "{e}");
        let nan = Tensor::new(&[[f32::NAN, 0.0, 0.0]; 4], &dev).unwrap();
        write_npz(
            &p,
            &[
                ("context_sequences", npy(&ctx)),
                ("target_vectors", npy(&nan)),
            ],
            false,
        );
        assert!(read_windows(&p, 5).unwrap_err().to_string().contains("NaN"));
        // Values far past an embedding's scale, and a zero target, are
        // refused by window (they scored every baseline 0, silently).
        let huge = (ctx.clone() * 1e20).unwrap();
        write_npz(
            &p,
            &[
                ("context_sequences", npy(&huge)),
                ("target_vectors", npy(&tgt)),
            ],
            false,
        );
        let e = read_windows(&p, 5).unwrap_err().to_string();
        assert!(
            e.contains("holds 1e20 (window 0, context vector 0, element 0)")
                && e.contains("normalise"),
            "{e}"
        );
        let mut some_zero = vec![1f32; 12];
        some_zero[6..9].fill(0.0);
        let zt = Tensor::from_vec(some_zero, (4, 3), &dev).unwrap();
        write_npz(
            &p,
            &[
                ("context_sequences", npy(&ctx)),
                ("target_vectors", npy(&zt)),
            ],
            false,
        );
        // Read to predict, the targets are not looked at.
        let w0 = read_windows(&p, 5).unwrap();
        let e = refuse_zero_targets(&w0, &p).unwrap_err().to_string();
        assert!(e.contains("the target of window 2 is all zeros"), "{e}");
        write_npz(&p, &[("embeddings", npy(&tgt))], false);
        let e = read_windows(&p, 5).unwrap_err().to_string();
        assert!(
            e.contains("expected `context_sequences`") && e.contains("holds embeddings"),
            "{e}"
        );
        std::fs::write(&p, b"not a zip").unwrap();
        assert!(read_windows(&p, 5)
            .unwrap_err()
            .to_string()
            .contains("not a readable .npz"));
    }

    /// An .npy header of `descr` and `shape`, then `data`.
    fn npy_raw(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
        let mut h = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}")
            .into_bytes();
        while !(10 + h.len() + 1).is_multiple_of(64) {
            h.push(b' ');
        }
        h.push(b'\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&(h.len() as u16).to_le_bytes());
        out.extend_from_slice(&h);
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn damaged_truncated_and_unreadable_arrays_are_refused_by_name() {
        let dev = Device::Cpu;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("w.npz");
        let ctx = Tensor::ones((4, 5, 3), DType::F32, &dev).unwrap();
        let tgt = Tensor::ones((4, 3), DType::F32, &dev).unwrap();
        let good = [
            ("context_sequences", npy(&ctx)),
            ("target_vectors", npy(&tgt)),
        ];
        write_npz(&p, &good, false);
        assert_eq!(read_windows(&p, 5).unwrap().len(), 4);
        // One flipped byte inside the stored contexts (1.0 = 00 00 80 3f).
        let mut bytes = std::fs::read(&p).unwrap();
        let at = bytes
            .windows(4)
            .position(|w| w == [0, 0, 0x80, 0x3f])
            .unwrap();
        bytes[at + 2] ^= 0x01;
        std::fs::write(&p, &bytes).unwrap();
        let e = read_windows(&p, 5).unwrap_err().to_string();
        assert!(
            e.contains("w.npz") && e.contains("context_sequences.npy") && e.contains("damaged"),
            "{e}"
        );
        // A header that claims more than its member holds: refused, not allocated.
        write_npz(
            &p,
            &[
                (
                    "context_sequences",
                    npy_raw("<f4", "(400000000, 5, 3)", &[0; 240]),
                ),
                ("target_vectors", npy(&tgt)),
            ],
            false,
        );
        let e = read_windows(&p, 5).unwrap_err().to_string();
        assert!(e.contains("`context_sequences` is truncated"), "{e}");
        // One whose element count overflows (it wrapped to 0 bytes before).
        write_npz(
            &p,
            &[
                (
                    "context_sequences",
                    npy_raw("<f4", "(4611686018427387904, 5, 384)", &[]),
                ),
                ("target_vectors", npy(&tgt)),
            ],
            false,
        );
        let e = read_windows(&p, 5).unwrap_err().to_string();
        assert!(e.contains("`context_sequences` is truncated"), "{e}");
        // A big-endian or object array is named as unreadable, not missing.
        for (descr, why) in [(">f4", "big-endian"), ("|O", "cannot be read")] {
            write_npz(
                &p,
                &[
                    ("context_sequences", npy_raw(descr, "(4, 5, 3)", &[0; 240])),
                    ("target_vectors", npy(&tgt)),
                ],
                false,
            );
            let e = read_windows(&p, 5).unwrap_err().to_string();
            assert!(
                e.contains("`context_sequences` is in the file but cannot be read")
                    && e.contains(why)
                    && !e.contains("expected"),
                "{e}"
            );
        }
    }

    /// A small file whose member expands more than `MAX_RATIO` times to
    /// over `MIN_BOMB` bytes (a zip bomb: 1.5 MB took 12 GB of memory) is
    /// refused by name before any array is built; a named pipe is refused
    /// at once, not waited on.
    #[test]
    fn zip_bombs_and_pipes_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("bomb.npz");
        let rows = (MIN_BOMB as usize) / (384 * 4) + 1;
        {
            let f = std::fs::File::create(&p).unwrap();
            let mut z = zip::ZipWriter::new(f);
            let opts = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Deflated)
                .large_file(true);
            z.start_file("vectors.npy", opts).unwrap();
            let head = npy_raw("<f4", &format!("({rows}, 384)"), &[]);
            z.write_all(&head).unwrap();
            let zeros = vec![0u8; 1 << 20];
            let mut left = rows * 384 * 4;
            while left > 0 {
                let k = left.min(zeros.len());
                z.write_all(&zeros[..k]).unwrap();
                left -= k;
            }
            z.finish().unwrap();
        }
        assert!(std::fs::metadata(&p).unwrap().len() < 2 << 20);
        let e = read_windows(&p, 5).unwrap_err().to_string();
        assert!(
            e.contains("bomb.npz") && e.contains("`vectors.npy` expands to more than"),
            "{e}"
        );
        let fifo = d.path().join("pipe.npz");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.is_ok_and(|s| s.success()), "mkfifo {}", fifo.display());
        let e = read_windows(&fifo, 5).unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
    }

    #[test]
    fn the_split_never_puts_one_article_on_both_sides() {
        let n = 200;
        let w = VectorWindows {
            articles: Some((0..n as i64).map(|i| i / 7).collect()),
            ..VectorWindows::from_flat(vec![0.0; n * 2], vec![0.0; n], 2, 1)
        };
        let (tr, va) = split_by_article(&w, 0.2, 42);
        assert_eq!(tr.len() + va.len(), n);
        let a = w.articles.as_ref().unwrap();
        let val_articles: std::collections::HashSet<i64> = va.iter().map(|&i| a[i]).collect();
        assert!(tr.iter().all(|&i| !val_articles.contains(&a[i])));
        assert!(
            (5..=7).contains(&val_articles.len()),
            "{} of 29 articles held out",
            val_articles.len()
        );
        assert_eq!(
            split_by_article(&w, 0.2, 42),
            (tr, va),
            "same seed, same split"
        );
    }

    /// An article whose chunk indices skip some is windowed across the
    /// gap (chunks 0-4, then 10) and the notes say so; consecutive ones
    /// get no such note.
    #[test]
    fn gaps_in_chunk_indices_and_vectors_off_unit_length_are_noted() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("gap.npz");
        let chunks = [0, 1, 2, 3, 4, 10, 11, 0, 1, 2, 3, 4, 5];
        let articles = [4, 4, 4, 4, 4, 4, 4, 8, 8, 8, 8, 8, 8];
        let v: Vec<f32> = (0..chunks.len()).map(|i| i as f32 + 1.0).collect();
        write_chunks(&path, &v, 1, &articles, &chunks).unwrap();
        let w = read_windows(&path, 5).unwrap();
        assert_eq!(w.len(), 3);
        let gap = w.notes.iter().find(|n| n.contains("skip chunk indices"));
        assert!(
            gap.is_some_and(|n| n.starts_with("1 articles") && n.contains("article 4: 4, then 10")),
            "{:?}",
            w.notes
        );
        // Values 1..=13, one dimension: norms 1 to 13.
        assert!(
            w.notes
                .iter()
                .any(|n| n.contains("not unit length (norms 1.000 to 13.000)")),
            "{:?}",
            w.notes
        );
        let (articles, chunks) = ([8; 6], [0, 1, 2, 3, 4, 5]);
        write_chunks(
            &path,
            &[1.0, -1.0, 1.0, 1.0, -1.0, 1.0],
            1,
            &articles,
            &chunks,
        )
        .unwrap();
        let w = read_windows(&path, 5).unwrap();
        assert!(
            !w.notes
                .iter()
                .any(|n| n.contains("skip") || n.contains("unit")),
            "{:?}",
            w.notes
        );
    }

    /// Windows that would name more than 2^30 context vectors (8 GiB of
    /// row numbers) are refused before they are reserved: a context of
    /// 10^8 over short windows reserved terabytes. And a chunk index
    /// repeated at i64's end is said twice (the gap check before it added
    /// 1 to it).
    #[test]
    fn windows_of_gigabytes_are_refused_before_they_are_reserved() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("long.npz");
        let n = 140_000;
        let articles = vec![1i64; n];
        let chunks: Vec<i64> = (0..n as i64).collect();
        write_chunks(&path, &vec![1.0; n], 1, &articles, &chunks).unwrap();
        let e = read_windows_min(&path, 8192, Some(1))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("139999 windows of 8192 context vectors")
                && e.contains("lower data.context"),
            "{e}"
        );
        assert_eq!(read_windows_min(&path, 5, Some(1)).unwrap().len(), n - 1);
        write_chunks(&path, &[1.0; 3], 1, &[2; 3], &[0, i64::MAX, i64::MAX]).unwrap();
        let e = read_windows(&path, 2).unwrap_err().to_string();
        assert!(
            e.contains(&format!("chunk index {} twice", i64::MAX)),
            "{e}"
        );
    }

    /// A .npy header claiming 4 GB (version 2 allows it) is refused from
    /// its first bytes: the array reader allocated it whole, and aborted
    /// on memory.
    #[test]
    fn a_npy_header_of_gigabytes_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("h.npz");
        let mut lying = b"\x93NUMPY\x02\x00".to_vec();
        lying.extend(u32::MAX.to_le_bytes());
        lying.extend(b"{'descr': '<f4'}");
        write_npz(&p, &[("vectors.npy", lying)], false);
        let e = read_windows(&p, 5).unwrap_err().to_string();
        assert!(
            e.contains("declares a .npy header of 4294967295 bytes"),
            "{e}"
        );
    }

    /// A zip whose first member's stored data hold the second member
    /// whole (the overlapping layout of a zip bomb: a few megabytes that
    /// inflate to terabytes) is refused before anything is inflated.
    #[test]
    fn members_that_share_bytes_are_refused() {
        fn crc32(b: &[u8]) -> u32 {
            let mut c = !0u32;
            for &x in b {
                c ^= x as u32;
                for _ in 0..8 {
                    c = if c & 1 == 1 {
                        (c >> 1) ^ 0xedb8_8320
                    } else {
                        c >> 1
                    };
                }
            }
            !c
        }
        let local = |name: &[u8], data: &[u8]| {
            let mut h = Vec::new();
            h.extend(0x0403_4b50u32.to_le_bytes());
            h.extend([20u16, 0, 0, 0, 0x21].iter().flat_map(|v| v.to_le_bytes()));
            h.extend(crc32(data).to_le_bytes());
            h.extend((data.len() as u32).to_le_bytes());
            h.extend((data.len() as u32).to_le_bytes());
            h.extend((name.len() as u16).to_le_bytes());
            h.extend(0u16.to_le_bytes());
            h.extend(name);
            h
        };
        let central = |name: &[u8], data: &[u8], at: u32| {
            let mut h = Vec::new();
            h.extend(0x0201_4b50u32.to_le_bytes());
            h.extend(
                [20u16, 20, 0, 0, 0, 0x21]
                    .iter()
                    .flat_map(|v| v.to_le_bytes()),
            );
            h.extend(crc32(data).to_le_bytes());
            h.extend((data.len() as u32).to_le_bytes());
            h.extend((data.len() as u32).to_le_bytes());
            h.extend((name.len() as u16).to_le_bytes());
            h.extend([0u16, 0, 0, 0].iter().flat_map(|v| v.to_le_bytes()));
            h.extend(0u32.to_le_bytes());
            h.extend(at.to_le_bytes());
            h.extend(name);
            h
        };
        let inner = b"the second member's bytes";
        let second = [local(b"b.npy", inner), inner.to_vec()].concat();
        let first = local(b"a.npy", &second);
        let mut file = [first.clone(), second.clone()].concat();
        let cd_at = file.len() as u32;
        let cd = [
            central(b"a.npy", &second, 0),
            central(b"b.npy", inner, first.len() as u32),
        ]
        .concat();
        file.extend(&cd);
        file.extend(0x0605_4b50u32.to_le_bytes());
        file.extend([0u16, 0, 2, 2].iter().flat_map(|v| v.to_le_bytes()));
        file.extend((cd.len() as u32).to_le_bytes());
        file.extend(cd_at.to_le_bytes());
        file.extend(0u16.to_le_bytes());
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(file)).unwrap();
        let e = check_zip_layout(&mut zip).unwrap_err();
        assert!(e.contains("`a.npy` and `b.npy` share their bytes"), "{e}");
    }

    /// Without article ids, validation is the last block of windows and
    /// the `context` windows before it are not trained on: their contexts
    /// hold the block's first targets. A malformed `article_indices` is
    /// refused, never ignored into that fallback.
    #[test]
    fn windows_without_articles_split_with_a_gap_of_one_context() {
        let n = 100;
        let w = VectorWindows::from_flat(vec![0.0; n * 5], vec![0.0; n], 5, 1);
        let (tr, va) = split_by_article(&w, 0.2, 42);
        assert_eq!(va, (80..100).collect::<Vec<_>>());
        assert_eq!(tr, (0..75).collect::<Vec<_>>());

        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("ready.npz");
        let dev = Device::Cpu;
        Tensor::write_npz(
            &[
                (
                    "context_sequences",
                    &Tensor::zeros((6, 5, 3), DType::F32, &dev).unwrap(),
                ),
                (
                    "target_vectors",
                    &Tensor::ones((6, 3), DType::F32, &dev).unwrap(),
                ),
                (
                    "article_indices",
                    &Tensor::zeros((6, 2), DType::I64, &dev).unwrap(),
                ),
            ],
            &path,
        )
        .unwrap();
        let e = read_windows(&path, 5).unwrap_err().to_string();
        assert!(
            e.contains("`article_indices` must be [6]") && e.contains("[6, 2]"),
            "{e}"
        );
    }
}

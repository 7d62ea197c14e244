//! Strict checkpoints: safetensors weights plus the architecture that made
//! them, checked name by name and shape by shape on load.
//!
//! The original system ran for days on random weights because a checkpoint
//! whose names did not match the code loaded without a word (and candle's
//! `VarBuilder` / `VarMap::load` also ignore extra names). So loading here
//! takes the full list of tensors the code expects and the architecture it
//! was built for, and refuses any difference, listing all of it: missing,
//! unexpected and misshapen tensors, and every architecture field that
//! differs. A CRC-32 of the tensor bytes, stored in the header, catches a
//! file damaged after the header; another, of the architecture as stored,
//! catches damage to it (a transformer's `heads` changes no tensor's shape,
//! so a flipped bit there loaded as another model).

use crate::{Error, Result};
use candle_core::{DType, Device, Tensor};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Bumped whenever the meaning of stored tensors or metadata changes.
pub const FORMAT_VERSION: u32 = 1;
const KEY_VERSION: &str = "recur.format_version";
const KEY_ARCH: &str = "recur.architecture";
const KEY_CRC: &str = "recur.crc32";
/// Written since the architecture had no checksum of its own; a file
/// without it (an older recur's) is read as before.
const KEY_ARCH_CRC: &str = "recur.architecture_crc32";

/// A tensor the code expects: its PyTorch-style name and shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    pub name: String,
    pub shape: Vec<usize>,
}

impl TensorSpec {
    /// A tensor the code expects: its PyTorch name and shape.
    pub fn new(name: impl Into<String>, shape: &[usize]) -> Self {
        TensorSpec {
            name: name.into(),
            shape: shape.to_vec(),
        }
    }
}

/// What a checkpoint header says, without loading the tensors.
#[derive(Debug, Clone)]
pub struct Header {
    pub format_version: Option<u32>,
    pub architecture: Option<Value>,
    /// Why `architecture` is not to be trusted: its stored checksum does
    /// not match it (a damaged or edited header). Readers that pick a
    /// loader by the architecture's kind check this first, so that the
    /// damage is what they report, not another kind of model.
    pub architecture_damage: Option<String>,
    /// (name, dtype, shape, bytes stored) sorted by name.
    pub tensors: Vec<(String, String, Vec<usize>, usize)>,
    pub file_bytes: u64,
}

fn crc_of(named: &[(String, Vec<u8>)]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    for (name, data) in named {
        h.update(name.as_bytes());
        h.update(&(data.len() as u64).to_le_bytes());
        h.update(data);
    }
    h.finalize()
}

/// Saves f32 tensors with the architecture description, atomically.
pub fn save(path: &Path, tensors: &[(String, Tensor)], architecture: &Value) -> Result<()> {
    let mut named: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        let data: Vec<f32> = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
        let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        named.push((name.clone(), t.dims().to_vec(), bytes));
    }
    named.sort_by(|a, b| a.0.cmp(&b.0));
    let crc = crc_of(
        &named
            .iter()
            .map(|(n, _, d)| (n.clone(), d.clone()))
            .collect::<Vec<_>>(),
    );
    let views: Vec<(String, TensorView)> = named
        .iter()
        .map(|(n, shape, data)| {
            TensorView::new(Dtype::F32, shape.clone(), data)
                .map(|v| (n.clone(), v))
                .map_err(|e| Error::checkpoint(path, format!("tensor {n}: {e}")))
        })
        .collect::<Result<_>>()?;
    let mut meta = BTreeMap::new();
    meta.insert(KEY_VERSION.to_string(), FORMAT_VERSION.to_string());
    let arch = architecture.to_string();
    meta.insert(
        KEY_ARCH_CRC.to_string(),
        format!("{:08x}", crc32fast::hash(arch.as_bytes())),
    );
    meta.insert(KEY_ARCH.to_string(), arch);
    meta.insert(KEY_CRC.to_string(), format!("{crc:08x}"));
    let bytes = safetensors::serialize(views, None::<HashMap<String, String>>)
        .map_err(|e| Error::checkpoint(path, e.to_string()))?;
    let bytes = with_metadata(&bytes, &meta).map_err(|e| Error::checkpoint(path, e))?;
    crate::fsx::write_atomic(path, &bytes)
}

/// A serialised safetensors file (written without metadata) with `meta`
/// put into its header, keys in sorted order. `safetensors::serialize`
/// writes the metadata from a `HashMap`, in an order that changes from run
/// to run: the same training gave the same tensors but other bytes, and
/// so another SHA-256 in the manifest. Offsets count from the end of the
/// header, so they hold; the header is padded to 8 bytes as the crate pads.
fn with_metadata(
    bytes: &[u8],
    meta: &BTreeMap<String, String>,
) -> std::result::Result<Vec<u8>, String> {
    let n = bytes
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize)
        .ok_or("no header")?;
    let header = std::str::from_utf8(bytes.get(8..8 + n).ok_or("a short header")?)
        .map_err(|e| e.to_string())?
        .trim_end();
    let body = header
        .strip_prefix('{')
        .and_then(|h| h.strip_suffix('}'))
        .ok_or("a header that is not a JSON object")?;
    let meta = serde_json::to_string(meta).map_err(|e| e.to_string())?;
    let mut new = format!("{{\"__metadata__\":{meta}");
    if !body.is_empty() {
        new.push(',');
        new.push_str(body);
    }
    new.push('}');
    while new.len() % 8 != 0 {
        new.push(' ');
    }
    let mut out = Vec::with_capacity(8 + new.len() + bytes.len() - 8 - n);
    out.extend_from_slice(&(new.len() as u64).to_le_bytes());
    out.extend_from_slice(new.as_bytes());
    out.extend_from_slice(&bytes[8 + n..]);
    Ok(out)
}

fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    crate::fsx::read_bounded(path, crate::fsx::MAX_DATA_FILE)
}

fn parse<'a>(path: &Path, bytes: &'a [u8]) -> Result<SafeTensors<'a>> {
    SafeTensors::deserialize(bytes).map_err(|e| {
        // A PyTorch checkpoint is a zip ("PK"): say how to bring it in. So
        // is NumPy's .npz, whose first member is an `.npy`.
        if bytes.starts_with(b"PK\x03\x04") {
            let name_len = bytes
                .get(26..28)
                .map_or(0, |b| u16::from_le_bytes([b[0], b[1]]) as usize);
            if bytes
                .get(30..30 + name_len)
                .is_some_and(|n| n.ends_with(b".npy"))
            {
                return Error::checkpoint(
                    path,
                    "is a NumPy archive (.npz), not a model: the LVM commands read it as \
                     data (`recur lvm train`, `lvm eval --data`)",
                );
            }
            return Error::checkpoint(
                path,
                "is a PyTorch checkpoint (torch.save), not a recur model: bring it in with \
                 `recur import-torch FILE.pt --out DIR`",
            );
        }
        Error::checkpoint(
            path,
            format!(
                "not a readable safetensors file ({e}); it may be truncated or corrupted \
                 ({} bytes on disk). Re-save the model or copy the file again.",
                bytes.len()
            ),
        )
    })
}

fn metadata_of(path: &Path, bytes: &[u8]) -> Result<HashMap<String, String>> {
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| {
        Error::checkpoint(
            path,
            format!("cannot read the header ({e}); the file may be truncated"),
        )
    })?;
    Ok(meta.metadata().clone().unwrap_or_default())
}

/// Reads the header only: names, shapes, dtypes and the stored architecture.
pub fn read_header(path: &Path) -> Result<Header> {
    let bytes = read_bytes(path)?;
    let st = parse(path, &bytes)?;
    let meta = metadata_of(path, &bytes)?;
    let mut tensors: Vec<(String, String, Vec<usize>, usize)> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| {
            let stored = v.data().len();
            (n, format!("{:?}", v.dtype()), v.shape().to_vec(), stored)
        })
        .collect();
    tensors.sort();
    Ok(Header {
        format_version: meta.get(KEY_VERSION).and_then(|v| v.parse().ok()),
        architecture: meta
            .get(KEY_ARCH)
            .and_then(|v| serde_json::from_str(v).ok()),
        architecture_damage: arch_damage(&meta),
        tensors,
        file_bytes: bytes.len() as u64,
    })
}

/// The header's architecture against its stored checksum (headers
/// without one, from before it was kept, pass).
fn arch_damage(meta: &HashMap<String, String>) -> Option<String> {
    let (stored, arch) = (meta.get(KEY_ARCH_CRC)?, meta.get(KEY_ARCH)?);
    let crc = format!("{:08x}", crc32fast::hash(arch.as_bytes()));
    (*stored != crc).then(|| {
        format!(
            "the architecture in the header is corrupted: checksum {crc} does not match the stored {stored}"
        )
    })
}

/// Lists every field in which two architecture descriptions differ.
pub fn architecture_diff(stored: &Value, expected: &Value) -> Vec<String> {
    let mut out = Vec::new();
    match (stored, expected) {
        (Value::Object(s), Value::Object(e)) => {
            let keys: std::collections::BTreeSet<&String> = s.keys().chain(e.keys()).collect();
            for k in keys {
                match (s.get(k), e.get(k)) {
                    (Some(a), Some(b)) if a == b => {}
                    (a, b) => out.push(format!(
                        "{k}: checkpoint has {}, code expects {}",
                        a.map_or("nothing".into(), |v| v.to_string()),
                        b.map_or("nothing".into(), |v| v.to_string())
                    )),
                }
            }
        }
        _ if stored != expected => {
            out.push(format!("checkpoint has {stored}, code expects {expected}"))
        }
        _ => {}
    }
    out
}

/// Lists missing, unexpected and misshapen tensors.
pub fn tensor_diff(stored: &BTreeMap<String, Vec<usize>>, expected: &[TensorSpec]) -> Vec<String> {
    let mut out = Vec::new();
    let want: BTreeMap<&str, &Vec<usize>> = expected
        .iter()
        .map(|s| (s.name.as_str(), &s.shape))
        .collect();
    for (name, shape) in &want {
        match stored.get(*name) {
            None => out.push(format!("missing: {name} {shape:?}")),
            Some(s) if s != *shape => out.push(format!(
                "misshapen: {name} is {s:?}, code expects {shape:?}"
            )),
            Some(_) => {}
        }
    }
    for (name, shape) in stored {
        if !want.contains_key(name.as_str()) {
            out.push(format!("unexpected: {name} {shape:?}"));
        }
    }
    out
}

/// Loads a checkpoint only if its architecture and every tensor name and
/// shape match what the code expects; otherwise lists every difference.
pub fn load_checked(
    path: &Path,
    expected_architecture: &Value,
    expected: &[TensorSpec],
    device: &Device,
) -> Result<HashMap<String, Tensor>> {
    let bytes = read_bytes(path)?;
    let st = parse(path, &bytes)?;
    let meta = metadata_of(path, &bytes)?;

    let mut problems = Vec::new();
    match meta.get(KEY_VERSION).map(|v| v.parse::<u32>()) {
        Some(Ok(v)) if v == FORMAT_VERSION => {}
        Some(Ok(v)) => problems.push(format!(
            "format version {v}, this recur reads version {FORMAT_VERSION}"
        )),
        _ => problems.push(format!(
            "no `{KEY_VERSION}` in the header: not a recur checkpoint (import PyTorch files with the import command)"
        )),
    }
    match meta.get(KEY_ARCH).map(|s| serde_json::from_str::<Value>(s)) {
        Some(Ok(arch)) => problems.extend(architecture_diff(&arch, expected_architecture)),
        _ => problems.push(format!("no readable `{KEY_ARCH}` in the header")),
    }
    problems.extend(arch_damage(&meta));
    let stored: BTreeMap<String, Vec<usize>> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, v.shape().to_vec()))
        .collect();
    problems.extend(tensor_diff(&stored, expected));
    for (name, view) in st.tensors() {
        if view.dtype() != Dtype::F32 {
            problems.push(format!(
                "dtype: {name} is {:?}, code expects F32",
                view.dtype()
            ));
        }
    }
    if !problems.is_empty() {
        // Every difference up to a screenful; a crafted header's millions
        // made a message of 900 MB.
        const SHOWN: usize = 40;
        let more = problems.len().saturating_sub(SHOWN);
        problems.truncate(SHOWN);
        if more > 0 {
            problems.push(format!("and {more} more"));
        }
        return Err(Error::checkpoint(
            path,
            format!(
                "does not match the model the code builds; refusing to load:\n  - {}",
                problems.join("\n  - ")
            ),
        ));
    }

    let mut named: Vec<(String, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, v.data().to_vec()))
        .collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    let crc = format!("{:08x}", crc_of(&named));
    if meta.get(KEY_CRC) != Some(&crc) {
        return Err(Error::checkpoint(
            path,
            format!(
                "tensor data is corrupted: checksum {crc} does not match the stored {}",
                meta.get(KEY_CRC).map_or("(none)", |s| s.as_str())
            ),
        ));
    }
    let mut out = HashMap::new();
    for (name, data) in named {
        let shape = &stored[&name];
        let vals: Vec<f32> = data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        if let Some(i) = vals.iter().position(|v| !v.is_finite()) {
            return Err(Error::checkpoint(
                path,
                format!("tensor {name} holds a non-finite value at flat index {i}"),
            ));
        }
        out.insert(name, Tensor::from_vec(vals, shape.as_slice(), device)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample(dir: &Path) -> (std::path::PathBuf, Value, Vec<TensorSpec>) {
        let dev = Device::Cpu;
        let path = dir.join("m.safetensors");
        let arch = json!({"kind": "test", "hidden_size": 4});
        let a = Tensor::arange(0f32, 8., &dev)
            .unwrap()
            .reshape((2, 4))
            .unwrap();
        let b = Tensor::ones(3, DType::F32, &dev).unwrap();
        save(
            &path,
            &[("a.weight".into(), a), ("b.bias".into(), b)],
            &arch,
        )
        .unwrap();
        let specs = vec![
            TensorSpec::new("a.weight", &[2, 4]),
            TensorSpec::new("b.bias", &[3]),
        ];
        (path, arch, specs)
    }

    #[test]
    fn round_trip_loads_exact_values() {
        let dir = tempfile::tempdir().unwrap();
        let (path, arch, specs) = sample(dir.path());
        let t = load_checked(&path, &arch, &specs, &Device::Cpu).unwrap();
        let a: Vec<f32> = t["a.weight"].flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(a, (0..8).map(|v| v as f32).collect::<Vec<_>>());
    }

    #[test]
    fn renamed_reshaped_and_extra_tensors_are_refused_with_the_full_difference() {
        let dir = tempfile::tempdir().unwrap();
        let (path, arch, _) = sample(dir.path());
        let specs = vec![
            TensorSpec::new("a.weight", &[4, 2]),
            TensorSpec::new("b.b", &[3]),
        ];
        let err = load_checked(&path, &arch, &specs, &Device::Cpu)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("misshapen: a.weight is [2, 4], code expects [4, 2]"),
            "{err}"
        );
        assert!(err.contains("missing: b.b [3]"), "{err}");
        assert!(err.contains("unexpected: b.bias [3]"), "{err}");
    }

    #[test]
    fn the_same_tensors_give_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let (path, arch, specs) = sample(dir.path());
        let first = std::fs::read(&path).unwrap();
        for _ in 0..8 {
            sample(dir.path());
            assert_eq!(std::fs::read(&path).unwrap(), first);
        }
        // The header is 8-byte aligned, its metadata sorted, and it loads.
        let n = u64::from_le_bytes(first[..8].try_into().unwrap()) as usize;
        assert_eq!(n % 8, 0);
        let head = std::str::from_utf8(&first[8..8 + n]).unwrap();
        let (a, b, c) = (
            head.find(KEY_ARCH).unwrap(),
            head.find(KEY_CRC).unwrap(),
            head.find(KEY_VERSION).unwrap(),
        );
        assert!(a < b && b < c, "{head}");
        load_checked(&path, &arch, &specs, &Device::Cpu).unwrap();
        assert_eq!(
            read_header(&path).unwrap().format_version,
            Some(FORMAT_VERSION)
        );
    }

    #[test]
    fn the_header_counts_each_tensors_bytes_by_its_dtype() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _, _) = sample(dir.path());
        let h = read_header(&path).unwrap();
        let bytes: Vec<usize> = h.tensors.iter().map(|t| t.3).collect();
        assert_eq!(bytes, vec![32, 12]);
        // A half-precision file (someone else's) counts 2 bytes an element.
        let half = dir.path().join("h.safetensors");
        let data = vec![0u8; 2 * 6];
        let view = safetensors::tensor::TensorView::new(Dtype::F16, vec![3, 2], &data).unwrap();
        let bytes = safetensors::serialize([("w", view)], None).unwrap();
        std::fs::write(&half, bytes).unwrap();
        let h = read_header(&half).unwrap();
        assert_eq!(h.tensors, vec![("w".into(), "F16".into(), vec![3, 2], 12)]);
    }

    #[test]
    fn architecture_mismatch_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _, specs) = sample(dir.path());
        let other = json!({"kind": "test", "hidden_size": 8});
        let err = load_checked(&path, &other, &specs, &Device::Cpu)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("hidden_size: checkpoint has 4, code expects 8"),
            "{err}"
        );
    }

    #[test]
    fn a_damaged_architecture_is_caught_though_every_shape_still_fits() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _, specs) = sample(dir.path());
        let mut bytes = std::fs::read(&path).unwrap();
        let at = bytes
            .windows(14)
            .position(|w| w == b"hidden_size\\\":")
            .unwrap()
            + 14;
        assert_eq!(bytes[at], b'4');
        bytes[at] = b'6';
        std::fs::write(&path, &bytes).unwrap();
        // A loader that builds the model the header states (as the LVMs'
        // does) expects what the header now says.
        let stated = json!({"kind": "test", "hidden_size": 6});
        let err = load_checked(&path, &stated, &specs, &Device::Cpu)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("the architecture in the header is corrupted"),
            "{err}"
        );
    }

    #[test]
    fn truncated_and_corrupted_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let (path, arch, specs) = sample(dir.path());
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 10]).unwrap();
        let err = load_checked(&path, &arch, &specs, &Device::Cpu)
            .unwrap_err()
            .to_string();
        assert!(err.contains("truncated"), "{err}");
        // Flip one byte of tensor data: header still parses, checksum catches it.
        let mut bad = bytes.clone();
        let n = bad.len();
        bad[n - 1] ^= 0x40;
        std::fs::write(&path, &bad).unwrap();
        let err = load_checked(&path, &arch, &specs, &Device::Cpu)
            .unwrap_err()
            .to_string();
        assert!(err.contains("corrupted"), "{err}");
        // A PyTorch zip in its place: pointed to import-torch.
        std::fs::write(&path, b"PK\x03\x04 torch.save zip").unwrap();
        let err = load_checked(&path, &arch, &specs, &Device::Cpu)
            .unwrap_err()
            .to_string();
        assert!(err.contains("recur import-torch"), "{err}");
        // Weights linked to a device that never ends are refused unread.
        #[cfg(unix)]
        {
            std::fs::remove_file(&path).unwrap();
            std::os::unix::fs::symlink("/dev/zero", &path).unwrap();
            let err = load_checked(&path, &arch, &specs, &Device::Cpu)
                .unwrap_err()
                .to_string();
            assert!(err.contains("not a regular file"), "{err}");
        }
    }
}

//! `recur import-torch`: the original system's PyTorch checkpoints into a
//! recur model directory, executing no pickled code.
//!
//! A `.pt` file is a zip whose `data.pkl` candle's pickle reader parses into
//! a tree of plain values (classes and reductions are recorded, never
//! called); recur walks that tree itself for the tensors of
//! `model_state_dict` (or the top level), the
//! sizes from `model_config` (`input_dim`, `d_model` or `hidden_dim`,
//! `num_layers`). `.safetensors` files work too. The architecture is
//! recognised from the tensor names (`blocks.{i}.lstm.*`, `blocks.{i}.gru.*`,
//! or the AMN's `query.*` / `mlp.*`)
//! and every name and shape is checked against what recur's model expects:
//! any missing, unexpected or misshapen tensor is refused with the full
//! difference (bug 1 of the original loaded such files as random weights).
//!
//! Before candle reads a `.pt`, every zip member is read through once (the
//! zip reader checks its CRC-32), the pickle is run on the bounded shadow
//! machine of `recur_core::pickle_guard` (a memo bomb or deep nesting is
//! refused before it is built), and each tensor's bytes are checked against
//! its member's size before anything is allocated for it. Weights holding
//! NaN or infinity are refused; globals other than PyTorch's own tensor
//! rebuilders are reported as warnings (they are never called).

use candle_core::pickle::{Object, Stack};
use candle_core::{DType, Device, Tensor};
use recur_core::checkpoint::tensor_diff;
use recur_core::{Error, Result};
use recur_models::lvm::LvmKind;
use recur_models::{Lvm, LvmArch};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::io::BufReader;
use std::path::Path;

/// A checkpoint read and checked, ready to write.
pub struct Imported {
    pub arch: LvmArch,
    /// In the order the model declares them, as f32.
    pub tensors: Vec<(String, Tensor)>,
    /// The file's `model_config`, as plain values.
    pub source_config: Value,
    /// What the user should know about the file (code it refers to).
    pub warnings: Vec<String>,
}

/// The longest context an imported LVM may state (the recipes read 5).
const MAX_CONTEXT: usize = 4096;

/// The most a `.pt` file's pickle may hold; a state dict's is kilobytes.
const MAX_PICKLE: u64 = 64 << 20;

/// The zip members of a `.pt` file and the bytes each holds, every CRC
/// checked, and its pickle's bytes, bounded and scanned.
struct Archive {
    sizes: BTreeMap<String, u64>,
    pickle_name: String,
    pickle: Vec<u8>,
    globals: std::collections::BTreeSet<String>,
}

fn read_archive(path: &Path) -> Result<Archive> {
    use std::io::Read;
    let file = recur_core::fsx::open_regular(path, recur_core::fsx::MAX_DATA_FILE)?;
    let mut zip = zip::ZipArchive::new(BufReader::new(file)).map_err(|e| {
        err(
            path,
            format!(
                "not a PyTorch zip checkpoint ({e}): recur reads the zip format torch.save has \
                 written since PyTorch 1.6; a file of the older format (or \
                 `_use_new_zipfile_serialization=False`) must be loaded and saved again with a \
                 current PyTorch"
            ),
        )
    })?;
    recur_data::npz::check_zip_layout(&mut zip).map_err(|e| err(path, e))?;
    // The pickle is `<folder>/data.pkl`, as torch.save writes it: a
    // `data.pkl` under another name read first (`x/metadata.data.pkl`)
    // was taken for it, where PyTorch reads the real one.
    let pickles: Vec<String> = zip
        .file_names()
        .filter_map(|n| n.ok().map(|n| n.to_string()))
        .filter(|n| n.ends_with("data.pkl"))
        .collect();
    let real = |n: &str| n == "data.pkl" || n.ends_with("/data.pkl") && n.matches('/').count() == 1;
    if pickles.len() != 1 || !real(&pickles[0]) {
        return Err(err(
            path,
            format!(
                "holds {} pickles named like torch.save's ({}); torch.save writes one, \
                 `<name>/data.pkl`",
                pickles.len(),
                pickles.join(", ")
            ),
        ));
    }
    let mut sizes = BTreeMap::new();
    let mut pickle = None;
    for i in 0..zip.len() {
        let mut m = zip
            .by_index(i)
            .map_err(|e| err(path, format!("member {i} cannot be read: {e}")))?;
        let name = m
            .name()
            .map(|n| n.to_string())
            .unwrap_or_else(|_| format!("#{i}"));
        let damaged = |e: std::io::Error| {
            err(
                path,
                format!("member `{name}` is damaged ({e}); copy or save the file again"),
            )
        };
        let held = if name.ends_with("data.pkl") && pickle.is_none() {
            let mut bytes = Vec::new();
            (&mut m)
                .take(MAX_PICKLE + 1)
                .read_to_end(&mut bytes)
                .map_err(damaged)?;
            if bytes.len() as u64 > MAX_PICKLE {
                return Err(err(
                    path,
                    format!("{name} holds more than {MAX_PICKLE} bytes: not a state dict"),
                ));
            }
            // Read on to the end, where the CRC is checked.
            std::io::copy(&mut m, &mut std::io::sink()).map_err(damaged)?;
            let n = bytes.len() as u64;
            pickle = Some((name.clone(), bytes));
            n
        } else if name.ends_with("/byteorder") || name == "byteorder" {
            // torch.save records the machine's byte order; the tensors are
            // read as little-endian.
            let mut bytes = Vec::new();
            (&mut m).take(64).read_to_end(&mut bytes).map_err(damaged)?;
            if bytes.trim_ascii() != b"little" {
                return Err(err(
                    path,
                    format!(
                        "{name} says {:?}: its tensors are not little-endian, which is all recur reads; load and save the checkpoint again on an x86 or ARM machine",
                        String::from_utf8_lossy(&bytes)
                    ),
                ));
            }
            bytes.len() as u64 + std::io::copy(&mut m, &mut std::io::sink()).map_err(damaged)?
        } else {
            std::io::copy(&mut m, &mut std::io::sink()).map_err(damaged)?
        };
        sizes.insert(name, held);
    }
    let (pickle_name, pickle) =
        pickle.ok_or_else(|| err(path, "no data.pkl inside: not a torch.save file"))?;
    let scan = recur_core::pickle_guard::scan(&pickle, Default::default())
        .map_err(|e| err(path, format!("{pickle_name} is refused: {e}")))?;
    Ok(Archive {
        sizes,
        pickle_name,
        pickle,
        globals: scan.globals,
    })
}

/// Whether a global is one of PyTorch's own, which a state dict names to
/// rebuild its tensors (the list of torch's `weights_only` loader).
fn is_torch_data(global: &str) -> bool {
    matches!(
        global,
        "collections.OrderedDict"
            | "torch._utils._rebuild_tensor_v2"
            | "torch._utils._rebuild_tensor_v3"
            | "torch._utils._rebuild_parameter"
            | "torch._utils._rebuild_parameter_with_state"
            | "torch.Size"
            | "torch._tensor._rebuild_from_type_v2"
            | "torch.nn.parameter.Parameter"
    ) || global
        .strip_prefix("torch.")
        .is_some_and(|c| !c.contains('.') && (c.ends_with("Storage") || TORCH_DTYPES.contains(&c)))
}

/// The dtypes `_rebuild_tensor_v3` names (`torch.float8_e4m3fn`), by name:
/// a prefix test also passed functions (`torch.int_repr`).
const TORCH_DTYPES: [&str; 22] = [
    "float16",
    "float32",
    "float64",
    "bfloat16",
    "float8_e4m3fn",
    "float8_e5m2",
    "float8_e4m3fnuz",
    "float8_e5m2fnuz",
    "float8_e8m0fnu",
    "float4_e2m1fn_x2",
    "complex32",
    "complex64",
    "complex128",
    "bool",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
];

fn err(path: &Path, msg: impl Into<String>) -> Error {
    Error::checkpoint(path, msg)
}

/// Plain values of a pickled dict (ints, floats, strings, booleans).
fn plain(obj: &Object) -> Option<Value> {
    match obj {
        Object::Int(i) => Some(Value::from(*i)),
        Object::Long(i) => Some(Value::from(*i)),
        Object::Float(f) => Some(Value::from(*f)),
        Object::Unicode(s) => Some(Value::from(s.clone())),
        Object::Bool(b) => Some(Value::from(*b)),
        Object::None => Some(Value::Null),
        _ => None,
    }
}

/// The top-level pickled object of a `.pt` zip, parsed without running it.
/// The refusal of a pickle that is no state dict but names other code.
fn calls_other_code(path: &Path, a: &Archive, foreign: &[&str]) -> Error {
    err(
        path,
        format!(
            "{} is not a state dict: it calls {}; save `model.state_dict()` with torch.save",
            a.pickle_name,
            foreign.join(", ")
        ),
    )
}

fn pickled_root(path: &Path, a: &Archive, foreign: &[&str]) -> Result<Object> {
    let name = &a.pickle_name;
    // candle's error, without the backtrace it carries when RUST_BACKTRACE
    // is set, and with the foreign code named plainly where there is some.
    let cannot = |e: candle_core::Error| {
        let e = recur_core::error::without_backtrace(e);
        // torch.save(..., pickle_protocol=4 or 5): opcodes candle's reader
        // does not know ("unknown op-code 149" said nothing of why).
        if let (Some(0x80), Some(&v)) = (
            a.pickle.first().copied(),
            a.pickle.get(1).filter(|v| **v >= 4),
        ) {
            return err(
                path,
                format!(
                    "{name} is pickled with protocol {v}; recur reads protocol 2 and 3: save it \
                     again with torch.save's default (`pickle_protocol=2`)"
                ),
            );
        }
        if foreign.is_empty() {
            err(path, format!("cannot parse {name}: {e}"))
        } else {
            calls_other_code(path, a, foreign)
        }
    };
    let mut stack = Stack::empty();
    stack.read_loop(&mut &a.pickle[..]).map_err(cannot)?;
    stack.finalize().map_err(cannot)
}

/// The tensors (f32) and the `model_config` of a checkpoint, the
/// warnings to give, and what of its config could not be read (refusals).
type Read = (BTreeMap<String, Tensor>, Value, Vec<String>, Unread);

/// Config entries that could not be read: the key (None: the whole
/// config) and the refusal.
type Unread = Vec<(Option<String>, String)>;

/// The names a config states the context length under, the first the one
/// recur writes.
const CONTEXT_KEYS: [&str; 4] = ["context_length", "context", "context_size", "seq_len"];

/// The names of a Transformer's head count, likewise.
const HEAD_KEYS: [&str; 4] = ["nhead", "num_heads", "n_heads", "heads"];

/// The config keys that size the model.
const SIZE_KEYS: [&str; 12] = [
    "input_dim",
    "d_model",
    "hidden_dim",
    "num_layers",
    CONTEXT_KEYS[0],
    CONTEXT_KEYS[1],
    CONTEXT_KEYS[2],
    CONTEXT_KEYS[3],
    HEAD_KEYS[0],
    HEAD_KEYS[1],
    HEAD_KEYS[2],
    HEAD_KEYS[3],
];

/// Config keys of PyTorch's Transformer layer and of the model's kind,
/// which change the numbers with the same tensors: read so that a model
/// recur does not build is refused, not imported as the default one.
const ARCH_KEYS: [&str; 7] = [
    "norm_first",
    "activation",
    "layer_norm_eps",
    "model_type",
    "kind",
    "arch",
    "architecture",
];

/// Whether `path` holds a safetensors file (an 8-byte header length, then
/// its JSON), by its first bytes: a file named otherwise was read by its
/// extension and got the other format's advice.
fn is_safetensors(path: &Path) -> Result<bool> {
    use std::io::Read;
    let mut head = [0u8; 9];
    let mut f = recur_core::fsx::open_regular(path, recur_core::fsx::MAX_DATA_FILE)?;
    let n = f.read(&mut head).map_err(|e| Error::io(path, e))?;
    if n == 9 && head[8] == b'{' {
        return Ok(true);
    }
    if head.starts_with(b"PK") {
        return Ok(false);
    }
    Ok(path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("safetensors")))
}

/// What a pickled value is, for a refusal: a numpy scalar, a tensor, an
/// object of a class, or its kind.
fn what_value(o: &Object) -> String {
    let callee = |c: &Object| match c {
        Object::Class {
            module_name,
            class_name,
        } => Some(format!("{module_name}.{class_name}")),
        _ => None,
    };
    match o {
        Object::Reduce { callable, .. } => match callee(callable) {
            Some(g) if g.starts_with("numpy.") && g.ends_with(".scalar") => {
                format!("a numpy scalar ({g})")
            }
            Some(g) if g.starts_with("torch._utils._rebuild") => "a tensor".into(),
            Some(g) => format!("a call to {g}"),
            None => "a call".into(),
        },
        Object::Build { callable, .. } => match &**callable {
            Object::Reduce { callable, .. } => match callee(callable) {
                Some(g) => format!("an object of {g}"),
                None => "an object".into(),
            },
            other => callee(other).map_or("an object".into(), |g| format!("an object of {g}")),
        },
        other => kind_of(other).into(),
    }
}

/// Reads the tensors (f32) and the `model_config` of a checkpoint.
fn read_checkpoint(path: &Path, dev: &Device) -> Result<Read> {
    let mut tensors = BTreeMap::new();
    if is_safetensors(path)? {
        let bytes = recur_core::fsx::read_bounded(path, recur_core::fsx::MAX_DATA_FILE)?;
        // Each tensor's dtype from the header first: candle's loader
        // refused an I8 or BOOL tensor without its name.
        if let Ok(st) = safetensors::SafeTensors::deserialize(&bytes) {
            for (n, v) in st.tensors() {
                use safetensors::Dtype as D;
                if !matches!(v.dtype(), D::F32 | D::F64 | D::F16 | D::BF16) {
                    return Err(err(
                        path,
                        format!(
                            "{n} is {:?}; recur reads float tensors (F32, F64, F16, BF16)",
                            v.dtype()
                        ),
                    ));
                }
            }
        }
        let map = candle_core::safetensors::load_buffer(&bytes, dev)
            .map_err(|e| err(path, e.to_string()))?;
        for (n, t) in map {
            tensors.insert(n, t.to_dtype(DType::F32)?);
        }
        return Ok((tensors, Value::Null, Vec::new(), Vec::new()));
    }
    let archive = read_archive(path)?;
    let foreign: Vec<&str> = archive
        .globals
        .iter()
        .map(String::as_str)
        .filter(|g| !is_torch_data(g))
        .collect();
    let mut warnings = Vec::new();
    if !foreign.is_empty() {
        warnings.push(format!(
            "{} also refers to code outside PyTorch's tensor rebuilders ({}); \
             recur never runs it and read only the tensors and model_config",
            path.display(),
            foreign.join(", ")
        ));
    }
    let root = pickled_root(path, &archive, &foreign)?;
    let top: Vec<(Object, Object)> = match &root {
        Object::Dict(kv) => kv.clone(),
        _ => Vec::new(),
    };
    let key_of = |k: &Object| match k {
        Object::Unicode(s) => Some(s.clone()),
        _ => None,
    };
    let mut config = Map::new();
    // What the config holds that recur cannot read, where it matters: the
    // import is refused with these (a numpy context length was dropped
    // and 5 assumed, with a warning that the file stated none).
    let mut unread = Vec::new();
    // A key pickled twice (crafted) holds its last value, as in Python.
    let entry = |name: &str| {
        top.iter()
            .rev()
            .find(|(k, _)| key_of(k).as_deref() == Some(name))
    };
    // The original's `model_config`; else PyTorch Lightning's
    // `hyper_parameters` or another script's `hparams` / `config`.
    let config_entry = ["model_config", "hyper_parameters", "hparams", "config"]
        .into_iter()
        .find_map(entry);
    if let Some((_, c)) = config_entry {
        // An object's attributes (argparse.Namespace, a dataclass) are
        // pickled as its class and a dict of them.
        let kv = match c {
            Object::Dict(kv) => Some(kv),
            Object::Build { args, .. } => match &**args {
                Object::Dict(kv) => Some(kv),
                _ => None,
            },
            _ => None,
        };
        match kv {
            Some(kv) => {
                for (k, v) in kv {
                    let Some(k) = key_of(k) else { continue };
                    match plain(v) {
                        // A key pickled twice (crafted): the last, as
                        // Python's dict keeps it.
                        Some(v) => {
                            config.insert(k, v);
                        }
                        None if SIZE_KEYS.contains(&k.as_str())
                            || ARCH_KEYS.contains(&k.as_str()) =>
                        {
                            config.remove(&k);
                            unread.push((
                                Some(k.clone()),
                                format!(
                                "model_config {k} is {}, which recur does not read: save it as a \
                                 plain Python value (`int(v)`, `float(v)`, `str(v)`)",
                                what_value(v)
                            ),
                            ))
                        }
                        None => {}
                    }
                }
            }
            None => unread.push((
                None,
                format!(
                    "model_config is {}, not a dict of plain values: save `vars(config)` or \
                     `dataclasses.asdict(config)`",
                    what_value(c)
                ),
            )),
        }
    }
    // The state dict: under `model_state_dict` (the original's), `state_dict`
    // (PyTorch Lightning's, and many scripts') or `model`, else the top level.
    let named = ["model_state_dict", "state_dict", "model"]
        .into_iter()
        .find_map(|n| entry(n).map(|(_, v)| (n, v)));
    let dict = match named {
        Some((_, Object::Dict(kv))) => kv.clone(),
        Some(("model_state_dict", _)) => return Err(err(path, "`model_state_dict` is not a dict")),
        Some((n, v)) => {
            return Err(err(
                path,
                format!(
                    "`{n}` is {}, not a state dict: save `model.state_dict()` with torch.save",
                    what_value(v)
                ),
            ))
        }
        None => top.clone(),
    };
    let dir = archive.pickle_name.strip_suffix("data.pkl").unwrap_or("");
    let file = recur_core::fsx::open_regular(path, recur_core::fsx::MAX_DATA_FILE)?;
    let mut zip = zip::ZipArchive::new(BufReader::new(file))
        .map_err(|e| err(path, format!("cannot reopen the archive: {e}")))?;
    // Tensors are copied out of their storages: many views of one large
    // storage (a 522 KB file naming one deflated 512 MB storage sixteen
    // times) would each take its full size. Real state dicts hold each
    // weight once; twice the storages' bytes is room for a few shared.
    let storages: u64 = archive
        .sizes
        .iter()
        .filter(|(n, _)| n.starts_with(&format!("{dir}data/")))
        .map(|(_, &b)| b)
        .sum();
    let budget = storages.saturating_mul(2).max(1 << 20);
    let mut taken = 0u64;
    for (k, v) in &dict {
        let Some(name) = key_of(k) else { continue };
        let stored = match stored_tensor(v) {
            Ok(Some(s)) => s,
            Ok(None) => {
                // A call to other code where a tensor is named: said, or
                // the name was reported missing with no word of why.
                if let Object::Reduce { callable, .. } = v {
                    if let Object::Class {
                        module_name,
                        class_name,
                    } = &**callable
                    {
                        let g = format!("{module_name}.{class_name}");
                        if !is_torch_data(&g) {
                            warnings.push(format!(
                                "{name} is not a tensor but a call to {g} (never run): left out"
                            ));
                        }
                    }
                }
                continue;
            }
            Err(e) => return Err(err(path, format!("tensor {name}: {e}"))),
        };
        let bytes = stored
            .shape
            .iter()
            .fold(stored.dtype.size_in_bytes() as u64, |a, &d| {
                a.saturating_mul(d as u64)
            });
        taken = taken.saturating_add(bytes);
        if taken > budget {
            return Err(err(
                path,
                format!(
                    "its tensors, up to {name}, take {taken} bytes, more than twice the {storages} \
                     bytes of the storages they are read from: one storage named many times (a \
                     crafted file?); save each weight once"
                ),
            ));
        }
        let t = read_stored(&mut zip, &archive.sizes, dir, &stored, dev)
            .map_err(|e| err(path, format!("tensor {name}: {e}")))?;
        if tensors.insert(name.clone(), t).is_some() {
            return Err(err(
                path,
                format!("the state dict names tensor {name} twice"),
            ));
        }
    }
    if tensors.is_empty() {
        if !foreign.is_empty() {
            return Err(calls_other_code(path, &archive, &foreign));
        }
        let keys: Vec<String> = top.iter().filter_map(|(k, _)| key_of(k)).take(12).collect();
        return Err(err(
            path,
            format!(
                "no tensors found (expected a state dict, or a dict with `model_state_dict`, \
                 `state_dict` or `model`){}",
                if keys.is_empty() {
                    String::new()
                } else {
                    format!("; its top-level keys are {}", keys.join(", "))
                }
            ),
        ));
    }
    Ok((tensors, Value::Object(config), warnings, unread))
}

/// A tensor as a state dict's pickle describes it: `torch._utils.
/// _rebuild_tensor_v2(storage, offset, size, stride, ...)`, where the
/// storage is a persistent id `("storage", torch.XStorage, key, location,
/// numel)`, perhaps wrapped in `_rebuild_parameter` or
/// `_rebuild_from_type_v2`. (candle's own walker panics on a short tuple,
/// so recur reads the tree itself.)
struct Stored {
    dtype: DType,
    shape: Vec<usize>,
    stride: Vec<usize>,
    offset: usize,
    key: String,
    /// The elements its storage holds, as the persistent id declares.
    numel: Option<usize>,
}

fn count(o: &Object) -> std::result::Result<usize, String> {
    let i = match o {
        Object::Int(i) => *i as i64,
        Object::Long(i) => *i,
        other => return Err(format!("expected a count, found {}", kind_of(other))),
    };
    usize::try_from(i).map_err(|_| {
        format!("a size, stride or offset is {i}: they are never negative (a crafted file?)")
    })
}

fn counts(o: &Object) -> std::result::Result<Vec<usize>, String> {
    match o {
        Object::Tuple(v) => v.iter().map(count).collect(),
        other => Err(format!(
            "expected a tuple of sizes, found {}",
            kind_of(other)
        )),
    }
}

/// A short name for a pickled value, for errors (never its contents,
/// which may be huge).
fn kind_of(o: &Object) -> &'static str {
    match o {
        Object::Class { .. } => "a class",
        Object::Int(_) | Object::Long(_) => "an integer",
        Object::Float(_) => "a float",
        Object::Unicode(_) => "a string",
        Object::Bool(_) => "a boolean",
        Object::None => "None",
        Object::Tuple(_) => "a tuple",
        Object::List(_) => "a list",
        Object::Mark => "a mark",
        Object::Dict(_) => "a dict",
        Object::Reduce { .. } => "a call",
        Object::Build { .. } => "an object",
        Object::PersistentLoad(_) => "a persistent id",
    }
}

fn is_class(o: &Object, module: &str, name: &str) -> bool {
    matches!(o, Object::Class { module_name, class_name } if module_name == module && class_name == name)
}

/// The tensor `v` describes, `None` when it is not a tensor at all.
fn stored_tensor(v: &Object) -> std::result::Result<Option<Stored>, String> {
    let Object::Reduce { callable, args } = v else {
        return Ok(None);
    };
    let Object::Tuple(args) = &**args else {
        return Ok(None);
    };
    // A Parameter, or one carrying Python attributes (`_is_hf_initialized`,
    // as Hugging Face sets): the tensor is its first argument.
    for wrapper in ["_rebuild_parameter", "_rebuild_parameter_with_state"] {
        if is_class(callable, "torch._utils", wrapper) {
            return match args.first() {
                Some(inner) => stored_tensor(inner),
                None => Err(format!("{wrapper} without arguments")),
            };
        }
    }
    // The rebuilder of the dtypes PyTorch added later (float8, uint16..64),
    // none of which recur reads: said by name, not as "missing".
    if is_class(callable, "torch._utils", "_rebuild_tensor_v3") {
        let dtype = match args.get(6) {
            Some(Object::Class {
                module_name,
                class_name,
            }) => format!("{module_name}.{class_name}"),
            _ => "a dtype of `_rebuild_tensor_v3`".into(),
        };
        return Err(format!(
            "it is {dtype}; recur reads float32, float64, float16 and bfloat16 tensors: save \
             it as one of those (`tensor.float()`)"
        ));
    }
    if is_class(callable, "torch._tensor", "_rebuild_from_type_v2") {
        return match (args.first(), args.get(2)) {
            (Some(f), Some(a)) => stored_tensor(&Object::Reduce {
                callable: Box::new(f.clone()),
                args: Box::new(a.clone()),
            }),
            _ => Err("_rebuild_from_type_v2 with too few arguments".into()),
        };
    }
    if !is_class(callable, "torch._utils", "_rebuild_tensor_v2") {
        return Ok(None);
    }
    let [storage, offset, size, stride, ..] = &args[..] else {
        return Err(format!(
            "_rebuild_tensor_v2 takes at least 4 arguments, the file gives {}",
            args.len()
        ));
    };
    let Object::PersistentLoad(id) = storage else {
        return Err(format!(
            "its storage is {}, not a persistent id",
            kind_of(storage)
        ));
    };
    let Object::Tuple(id) = &**id else {
        return Err("its storage id is not a tuple".into());
    };
    let [_, Object::Class { class_name, .. }, Object::Unicode(key), rest @ ..] = &id[..] else {
        return Err("its storage id is not (\"storage\", class, key, location, size)".into());
    };
    let numel = rest.get(1).map(count).transpose()?;
    let dtype = match class_name.as_str() {
        "FloatStorage" => DType::F32,
        "DoubleStorage" => DType::F64,
        "HalfStorage" => DType::F16,
        "BFloat16Storage" => DType::BF16,
        other => {
            return Err(format!(
                "it is stored as {other}; recur reads float tensors"
            ))
        }
    };
    if key.contains('/') || key.contains("..") {
        return Err(format!("its storage key {key:?} is not a plain name"));
    }
    Ok(Some(Stored {
        dtype,
        shape: counts(size)?,
        stride: counts(stride)?,
        offset: count(offset)?,
        key: key.clone(),
        numel,
    }))
}

/// Reads a stored tensor's bytes from its member, checking first that
/// the member holds every element its layout reaches. A layout that is
/// not contiguous (a tensor saved from `.t()`, an expanded one of stride
/// 0) is gathered element by element, as `torch.load` reads it.
fn read_stored(
    zip: &mut zip::ZipArchive<BufReader<std::fs::File>>,
    sizes: &BTreeMap<String, u64>,
    dir: &str,
    s: &Stored,
    dev: &Device,
) -> std::result::Result<Tensor, String> {
    use std::io::Read;
    if s.stride.len() != s.shape.len() {
        return Err(format!(
            "{} sizes but {} strides",
            s.shape.len(),
            s.stride.len()
        ));
    }
    let mut expect = 1usize;
    let mut contiguous = true;
    for (&d, &st) in s.shape.iter().zip(&s.stride).rev() {
        if d > 1 && st != expect {
            contiguous = false;
        }
        expect = expect.saturating_mul(d);
    }
    let elem = s.dtype.size_in_bytes() as u64;
    let elems = s
        .shape
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d as u64))
        .ok_or("its size overflows")?;
    // The elements from the offset to the last one the layout reaches.
    let span = if elems == 0 {
        0
    } else {
        s.shape
            .iter()
            .zip(&s.stride)
            .try_fold(1u64, |a, (&d, &st)| {
                (d as u64 - 1)
                    .checked_mul(st as u64)
                    .and_then(|r| a.checked_add(r))
            })
            .ok_or("its layout's reach overflows")?
    };
    let start = (s.offset as u64).saturating_mul(elem);
    let need = if contiguous { elems } else { span }.saturating_mul(elem);
    let member = format!("{dir}data/{}", s.key);
    let held = sizes
        .get(&member)
        .copied()
        .ok_or_else(|| format!("its storage `{member}` is not in the archive"))?;
    // As PyTorch refuses it ("record size does not match expected size"):
    // a storage its id declares otherwise than the member holds.
    if let Some(n) = s.numel {
        if (n as u64).checked_mul(elem) != Some(held) {
            return Err(format!(
                "its storage `{member}` holds {held} bytes, but the file declares {n} elements of \
                 {elem} bytes ({:?}): the file is truncated or crafted",
                s.dtype
            ));
        }
    }
    if start.saturating_add(need) > held {
        return Err(format!(
            "it says {:?} {:?} ({need} bytes from byte {start}) but its storage `{member}` holds \
             {held} bytes: the file is truncated or crafted",
            s.shape, s.dtype
        ));
    }
    let mut m = zip.by_name(&member).map_err(|e| e.to_string())?;
    std::io::copy(&mut (&mut m).take(start), &mut std::io::sink()).map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; need as usize];
    m.read_exact(&mut buf).map_err(|e| e.to_string())?;
    if !contiguous {
        buf = gather(&buf, &s.shape, &s.stride, elem as usize);
    }
    Tensor::from_raw_buffer(&buf, s.dtype, &s.shape, dev)
        .and_then(|t| t.to_dtype(DType::F32))
        .map_err(|e| e.to_string())
}

/// The elements of a strided layout over `src` (which starts at its
/// offset and holds its whole reach), in row-major order, `elem` bytes each.
fn gather(src: &[u8], shape: &[usize], stride: &[usize], elem: usize) -> Vec<u8> {
    let n: usize = shape.iter().product();
    let mut out = Vec::with_capacity(n * elem);
    let mut idx = vec![0usize; shape.len()];
    for _ in 0..n {
        let at: usize = idx.iter().zip(stride).map(|(i, s)| i * s).sum();
        out.extend_from_slice(&src[at * elem..(at + 1) * elem]);
        // The next index, the last dimension fastest.
        for d in (0..shape.len()).rev() {
            idx[d] += 1;
            if idx[d] < shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    out
}

/// Refuses weights that hold NaN or infinity, naming the first such tensor.
fn check_finite(path: &Path, tensors: &BTreeMap<String, Tensor>) -> Result<()> {
    for (n, t) in tensors {
        let v: Vec<f32> = t.flatten_all()?.to_vec1()?;
        if let Some(i) = v.iter().position(|x| !x.is_finite()) {
            let bad = v.iter().filter(|x| !x.is_finite()).count();
            return Err(err(
                path,
                format!(
                    "tensor {n} holds {bad} NaN or infinite values (the first at element {i}): \
                     the run that saved it diverged; import a checkpoint from before"
                ),
            ));
        }
    }
    Ok(())
}

/// What was imported, in one phrase: `lstm LVM (768 -> 512, 4 blocks,
/// context 5, 38 tensors)`.
impl std::fmt::Display for Imported {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let a = &self.arch;
        write!(
            f,
            "{} LVM ({} -> {}, {} blocks, context {}, {} tensors)",
            a.kind,
            a.input_dim,
            a.d_model,
            a.num_layers,
            a.context,
            self.tensors.len()
        )
    }
}

/// Reads, recognises and checks a checkpoint.
pub fn import(path: &Path, dev: &Device) -> Result<Imported> {
    import_with(path, dev, &Given::default())
}

/// Sizes a checkpoint's tensors cannot tell, given by the user
/// (`import-torch --context C --heads H`) where the file does not state
/// them (a `.pt` without `model_config`, a bare `.safetensors`). Where it
/// does, they must agree with it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Given {
    pub context: Option<usize>,
    pub heads: Option<usize>,
}

/// [`import`] with the sizes the user gives.
pub fn import_with(path: &Path, dev: &Device, given: &Given) -> Result<Imported> {
    for (name, v) in [("context", given.context), ("heads", given.heads)] {
        if v == Some(0) {
            return Err(Error::Msg(format!(
                "{name} is 0: give a whole number from 1, or leave it out"
            )));
        }
    }
    let (tensors, source, mut warnings, unread) = read_checkpoint(path, dev)?;
    let tensors = strip_wrapper_prefix(tensors, &mut warnings);
    // What was read about the file belongs with a refusal too (a tensor
    // that was a call to other code was reported only as missing).
    let said = warnings.clone();
    import_read(path, given, tensors, source, warnings, unread).map_err(|e| {
        match (e, said.is_empty()) {
            (Error::Checkpoint { path: p, msg }, false) => Error::Checkpoint {
                path: p,
                msg: format!("{msg}\n  also: {}", said.join("\n  also: ")),
            },
            (e, _) => e,
        }
    })
}

/// The tensor names without the prefix a training wrapper adds to every
/// one: `module.` (DataParallel, DistributedDataParallel), `_orig_mod.`
/// (torch.compile), `model.` (PyTorch Lightning's module holding the
/// model), each said in a warning. Names that do not all share one are
/// left as they are.
fn strip_wrapper_prefix(
    mut tensors: BTreeMap<String, Tensor>,
    warnings: &mut Vec<String>,
) -> BTreeMap<String, Tensor> {
    loop {
        let Some((prefix, by)) = [
            ("module.", "DataParallel or DistributedDataParallel"),
            ("_orig_mod.", "torch.compile"),
            (
                "model.",
                "a module holding the model, as PyTorch Lightning's",
            ),
        ]
        .into_iter()
        .find(|(p, _)| !tensors.is_empty() && tensors.keys().all(|n| n.starts_with(p))) else {
            return tensors;
        };
        warnings.push(format!(
            "every tensor name starts with `{prefix}` (added by {by}); read without it"
        ));
        tensors = tensors
            .into_iter()
            .map(|(n, t)| (n[prefix.len()..].to_string(), t))
            .collect();
    }
}

/// [`import_with`] on what [`read_checkpoint`] read.
fn import_read(
    path: &Path,
    given: &Given,
    tensors: BTreeMap<String, Tensor>,
    source: Value,
    mut warnings: Vec<String>,
    unread: Unread,
) -> Result<Imported> {
    // The sizes looked up: the file's model_config, else what recur's own
    // header states (the context, a Transformer's heads), then what the
    // user gives. `source` stays the file's own, for import.json.
    let unread_keys: Vec<String> = unread.iter().filter_map(|(k, _)| k.clone()).collect();
    let mut problems: Vec<String> = unread.into_iter().map(|(_, m)| m).collect();
    let mut config = source.clone();
    if config.is_null() {
        if let Some(a) = recur_core::checkpoint::read_header(path)
            .ok()
            .and_then(|h| h.architecture)
        {
            let mut c = serde_json::Map::new();
            let transformer = a.get("kind").and_then(|k| k.as_str()) == Some("transformer");
            for (from, to) in [("context", "context_length"), ("heads", "nhead")] {
                if to == "nhead" && !transformer {
                    continue;
                }
                if let Some(v) = a.get(from).filter(|v| v.is_u64()) {
                    c.insert(to.into(), v.clone());
                }
            }
            config = Value::Object(c);
        }
    }
    if given.heads.is_some() && !tensors.contains_key("encoder.layers.0.self_attn.in_proj_weight") {
        return Err(err(
            path,
            "--heads is a Transformer's attention head count; this checkpoint is no Transformer",
        ));
    }
    for (keys, v, flag) in [
        (&CONTEXT_KEYS[..], given.context, "--context"),
        (&HEAD_KEYS[..], given.heads, "--heads"),
    ] {
        let Some(v) = v else { continue };
        let stated = keys.iter().find_map(|k| config.get(*k).and_then(whole));
        match stated {
            Some(s) if s as usize != v => {
                return Err(err(
                    path,
                    format!("{flag} {v}, but the file states {} {s}", keys[0]),
                ))
            }
            Some(_) => {}
            None => {
                if !config.is_object() {
                    config = Value::Object(serde_json::Map::new());
                }
                if let Value::Object(c) = &mut config {
                    c.insert(keys[0].into(), v.into());
                }
            }
        }
    }
    let has = |keys: &[&str]| {
        keys.iter()
            .any(|k| config.get(*k).and_then(whole).is_some())
    };
    let context_known = has(&CONTEXT_KEYS);
    let heads_known = has(&HEAD_KEYS);
    // A head count stated but not a whole number is named as such below,
    // not also as "stated nowhere".
    let heads_stated = HEAD_KEYS.iter().any(|k| {
        config.get(*k).is_some_and(|v| !v.is_null()) || unread_keys.iter().any(|u| u == k)
    });
    let names: Vec<&str> = tensors.keys().map(String::as_str).collect();
    let shape = |n: &str| tensors.get(n).map(|t| t.dims().to_vec());
    let is_amn = tensors.contains_key("query.weight") && tensors.contains_key("mlp.0.weight");
    let is_transformer = tensors.contains_key("encoder.layers.0.self_attn.in_proj_weight");
    let is_mlp = tensors.contains_key("input.weight") && tensors.contains_key("output.weight");
    let kind = if is_amn {
        LvmKind::Amn
    } else if is_mlp {
        LvmKind::Mlp
    } else if is_transformer {
        LvmKind::Transformer
    } else {
        [LvmKind::Lstm, LvmKind::Gru]
            .into_iter()
            .find(|k| {
                names
                    .iter()
                    .any(|n| n.starts_with("blocks.") && n.contains(&format!(".{k}.weight_ih_l0")))
            })
            .ok_or_else(|| {
                err(
                    path,
                    format!(
                        "unknown architecture: recur imports the LVMs lstm (blocks.{{i}}.lstm.*), gru \
                         (blocks.{{i}}.gru.*), amn (query.*, key.*, mlp.*) and transformer \
                         (encoder.layers.{{i}}.self_attn.*) and mlp (input.*, blocks.{{i}}.fc.*, output.*); \
                         this file has {}",
                        if names.is_empty() {
                            "no tensors".to_string()
                        } else {
                            names.iter().take(12).copied().collect::<Vec<_>>().join(", ")
                        }
                    ),
                )
            })?
    };
    // The MLP's input is the flattened context, so its vector size is read
    // off the output layer `[D, d]` instead.
    let first = if is_amn {
        "query.weight"
    } else if is_mlp {
        "output.weight"
    } else {
        "input_proj.weight"
    };
    let proj = shape(first).ok_or_else(|| {
        err(
            path,
            format!("no {first}: cannot tell the vector and model sizes"),
        )
    })?;
    let (d_model, input_dim) = match proj[..] {
        [o, i] if is_mlp => (i, o),
        [o, i] => (o, i),
        _ => return Err(err(path, format!("{first} must be 2-D, it is {proj:?}"))),
    };
    // The MLP's context length is the width of its input layer over D.
    let mlp_context = match shape("input.weight").as_deref() {
        Some([_, w]) if is_mlp && input_dim > 0 && w % input_dim == 0 => Some(w / input_dim),
        Some(w) if is_mlp => {
            return Err(err(
                path,
                format!(
                    "input.weight is {w:?}: an MLP LVM's input width must be the context length times the vector size {input_dim}"
                ),
            ))
        }
        _ => None,
    };
    let num_layers = if is_transformer {
        (0..)
            .take_while(|i| {
                tensors.contains_key(&format!("encoder.layers.{i}.self_attn.in_proj_weight"))
            })
            .count()
    } else if is_mlp {
        (0..)
            .take_while(|i| tensors.contains_key(&format!("blocks.{i}.fc.weight")))
            .count()
    } else {
        (0..)
            .take_while(|i| tensors.contains_key(&format!("blocks.{i}.{kind}.weight_ih_l0")))
            .count()
    };
    // The file's own config must agree with its tensors (for the AMN only
    // the vector size is unambiguous).
    // A size it states must be a whole number (-1 or "abc" was ignored).
    for k in SIZE_KEYS {
        if let Some(v) = config.get(k).filter(|v| !v.is_null() && whole(v).is_none()) {
            problems.push(format!("model_config {k} is {v}: expected a whole number"));
        }
    }
    // One size stated under two names, differently (`context: 6` beside
    // `context_length: 8`): the first found was taken.
    for keys in [
        &CONTEXT_KEYS[..],
        &HEAD_KEYS[..],
        &["d_model", "hidden_dim"][..],
    ] {
        let stated: Vec<(&str, u64)> = keys
            .iter()
            .filter_map(|k| config.get(*k).and_then(whole).map(|v| (*k, v)))
            .collect();
        if stated.iter().any(|(_, v)| *v != stated[0].1) {
            let each: Vec<String> = stated.iter().map(|(k, v)| format!("{k} {v}")).collect();
            problems.push(format!(
                "model_config states one size twice, differently: {}",
                each.join(", ")
            ));
        }
    }
    // What the config says of the architecture must be what the tensors
    // are and what recur builds: the same tensor names hold a pre-norm
    // Transformer or a GELU one, which recur would run as its own (post-norm,
    // ReLU, LayerNorm eps 1e-5) and predict otherwise, with no word.
    for k in ["model_type", "kind", "arch", "architecture"] {
        if let Some(v) = config.get(k).and_then(Value::as_str) {
            let said = v.to_ascii_lowercase();
            let known = ["lstm", "gru", "amn", "transformer", "mlp"];
            if let Some(other) = known.iter().find(|n| said.contains(*n)) {
                if *other != kind.to_string() {
                    problems.push(format!(
                        "model_config {k} is {v:?}, but the tensors are those of the {kind} kind"
                    ));
                }
            }
        }
    }
    if is_transformer {
        if let Some(v) = config.get("norm_first") {
            let off = v.is_null() || v.as_bool() == Some(false) || v.as_u64() == Some(0);
            if !off {
                problems.push(format!(
                    "model_config norm_first is {v}: recur's Transformer LVM normalises after \
                     each block (PyTorch's default, norm_first=False)"
                ));
            }
        }
        if let Some(a) = config.get("activation").filter(|v| !v.is_null()) {
            if a.as_str().map(str::to_ascii_lowercase).as_deref() != Some("relu") {
                problems.push(format!(
                    "model_config activation is {a}: recur's Transformer LVM uses \"relu\" \
                     (PyTorch's default)"
                ));
            }
        }
    }
    // Every kind's LayerNorms use PyTorch's default eps.
    if let Some(e) = config.get("layer_norm_eps").filter(|v| !v.is_null()) {
        let same = e
            .as_f64()
            .is_some_and(|e| (e - f64::from(recur_models::lvm::LN_EPS)).abs() <= 1e-12);
        if !same {
            problems.push(format!(
                "model_config layer_norm_eps is {e}: recur's LVMs use {:e} (PyTorch's default)",
                recur_models::lvm::LN_EPS
            ));
        }
    }
    let get = |keys: &[&str]| keys.iter().find_map(|k| config.get(*k).and_then(whole));
    let mut checks: Vec<(&[&str], usize)> = vec![(&["input_dim"][..], input_dim)];
    if !is_amn {
        checks.push((&["d_model", "hidden_dim"][..], d_model));
        checks.push((&["num_layers"][..], num_layers));
    }
    for (keys, actual) in checks {
        if let Some(v) = get(keys) {
            if v as usize != actual {
                problems.push(format!(
                    "model_config {} is {v}, the tensors say {actual}",
                    keys.join("/")
                ));
            }
        }
    }
    let stated = get(&CONTEXT_KEYS);
    if let (Some(c), Some(v)) = (mlp_context, stated) {
        if v as usize != c {
            let by = if given.context == Some(v as usize) {
                "--context"
            } else {
                "model_config context_length"
            };
            problems.push(format!("{by} is {v}, the tensors say {c}"));
        }
    }
    let context = mlp_context.unwrap_or(stated.unwrap_or(5) as usize);
    if mlp_context.is_none() && !context_known {
        warnings.push(format!(
            "{} does not state its context length{}: 5 is assumed, the length windows are cut \
             to for `lvm eval` and `lvm predict` (give --context C if it was trained on another)",
            path.display(),
            if source.is_null() {
                " (a .safetensors file's metadata is not read)"
            } else {
                ""
            }
        ));
    }
    if !(1..=MAX_CONTEXT).contains(&context) {
        problems.push(format!(
            "model_config context_length is {context}: an LVM reads 1 to {MAX_CONTEXT} vectors"
        ));
    }
    let mut arch = LvmArch::new(kind, input_dim, d_model, num_layers, context);
    if is_transformer {
        // The tensors cannot tell the head count, and a wrong one gives
        // other predictions without a word (8 for a model of 2 was 0.02
        // off): the file or the user must state it.
        if !heads_known && !heads_stated {
            problems.push(format!(
                "the attention head count is stated nowhere ({}): give --heads H, the nhead the \
                 model was built with",
                if source.is_null() {
                    "a .safetensors file's metadata is not read"
                } else {
                    "model_config has no nhead"
                }
            ));
        }
        arch.heads = get(&HEAD_KEYS).map_or(recur_core::lvm_config::DEFAULT_HEADS, |h| h as usize);
        if let Some(w) = shape("encoder.layers.0.linear1.weight") {
            arch.ff = w[0];
        }
        if arch.heads == 0 || d_model % arch.heads != 0 {
            problems.push(format!(
                "{} heads do not divide d_model {d_model}",
                arch.heads
            ));
        }
    }
    // Sizes no model has (a zero width or context) are listed with the
    // rest; the tensors are compared only against an architecture that
    // can exist.
    let specs = match Lvm::tensor_specs(&arch) {
        Ok(specs) => specs,
        Err(e) => {
            if problems.is_empty() {
                problems.push(e.to_string());
            }
            Vec::new()
        }
    };
    if !specs.is_empty() {
        let stored: BTreeMap<String, Vec<usize>> = tensors
            .iter()
            .map(|(n, t)| (n.clone(), t.dims().to_vec()))
            .collect();
        problems.extend(tensor_diff(&stored, &specs));
    }
    if !problems.is_empty() {
        return Err(err(
            path,
            format!(
                "does not match recur's {kind} LVM (D {input_dim}, d {d_model}, {num_layers} blocks):\n  {}",
                problems.join("\n  ")
            ),
        ));
    }
    check_finite(path, &tensors)?;
    let mut tensors = tensors;
    let ordered = specs
        .iter()
        .map(|s| {
            (
                s.name.clone(),
                tensors.remove(&s.name).expect("checked above"),
            )
        })
        .collect();
    Ok(Imported {
        arch,
        tensors: ordered,
        source_config: source,
        warnings,
    })
}

/// A size as a model_config states it: a whole number, written as an
/// integer or as a float with nothing after the point (`768.0`).
fn whole(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| {
        v.as_f64()
            .filter(|f| f.fract() == 0.0 && (0.0..9.0e15).contains(f))
            .map(|f| f as u64)
    })
}

/// Writes an imported checkpoint as a recur LVM model directory. `dir`
/// may not be the checkpoint itself, a file, or a folder of other files
/// (see [`crate::model_dir::check_out_dir`]).
pub fn write_dir(dir: &Path, source: &Path, imp: &Imported) -> Result<()> {
    recur_core::fsx::refuse_overwrite(source, dir)?;
    let _hold = crate::model_dir::begin_out_dir(dir, crate::model_dir::DirKind::Lvm)?;
    // The directory's files are replaced whole: a source among them (a
    // trained LVM's final.safetensors imported into its own folder) went
    // with them. (Sub-folders are kept, and a source in one stays.)
    if let (Some(d), Some(s)) = (
        recur_core::fsx::resolve(dir),
        recur_core::fsx::resolve(source),
    ) {
        if s.parent() == Some(d.as_path()) {
            return Err(Error::Msg(format!(
                "{} lies inside --out {}, whose files are replaced: choose another --out (or \
                 copy the file out of it first)",
                source.display(),
                dir.display()
            )));
        }
    }
    crate::model_dir::save_imported_lvm(dir, source, &imp.tensors, &imp.arch, &imp.source_config)
}

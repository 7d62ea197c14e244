//! `recur import-torch`: the original system's PyTorch checkpoints into a
//! recur model directory, executing no pickled code.
//!
//! A `.pt` file is a zip whose `data.pkl` candle's pickle reader parses into
//! a tree of plain values (classes and reductions are recorded, never
//! called); tensors come from `model_state_dict` (or the top level), the
//! sizes from `model_config` (`input_dim`, `d_model` or `hidden_dim`,
//! `num_layers`). `.safetensors` files work too. The architecture is
//! recognised from the tensor names (`blocks.{i}.lstm.*`, `blocks.{i}.gru.*`,
//! or the AMN's `query.*` / `mlp.*`)
//! and every name and shape is checked against what recur's model expects:
//! any missing, unexpected or misshapen tensor is refused with the full
//! difference (bug 1 of the original loaded such files as random weights).

use candle_core::pickle::{Object, PthTensors, Stack};
use candle_core::{DType, Device, Tensor};
use recur_core::checkpoint::tensor_diff;
use recur_core::{Error, Result};
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
}

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
fn pickled_root(path: &Path) -> Result<Object> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut zip = zip::ZipArchive::new(BufReader::new(file)).map_err(|e| {
        err(
            path,
            format!("not a PyTorch zip checkpoint ({e}); save it with torch.save"),
        )
    })?;
    let name = zip
        .file_names()
        .filter_map(|n| n.ok().map(|n| n.into_owned()))
        .find(|n| n.ends_with("data.pkl"))
        .ok_or_else(|| err(path, "no data.pkl inside: not a torch.save file"))?;
    let entry = zip.by_name(&name).map_err(|e| err(path, e.to_string()))?;
    let mut stack = Stack::empty();
    stack
        .read_loop(&mut BufReader::new(entry))
        .map_err(|e| err(path, format!("cannot parse {name}: {e}")))?;
    stack
        .finalize()
        .map_err(|e| err(path, format!("cannot parse {name}: {e}")))
}

/// Reads the tensors (f32) and the `model_config` of a checkpoint.
fn read_checkpoint(path: &Path, dev: &Device) -> Result<(BTreeMap<String, Tensor>, Value)> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let mut tensors = BTreeMap::new();
    if ext == "safetensors" {
        let map =
            candle_core::safetensors::load(path, dev).map_err(|e| err(path, e.to_string()))?;
        for (n, t) in map {
            tensors.insert(n, t.to_dtype(DType::F32)?);
        }
        return Ok((tensors, Value::Null));
    }
    let root = pickled_root(path)?;
    let top: Vec<(Object, Object)> = match &root {
        Object::Dict(kv) => kv.clone(),
        _ => Vec::new(),
    };
    let key_of = |k: &Object| match k {
        Object::Unicode(s) => Some(s.clone()),
        _ => None,
    };
    let has_key = |name: &str| top.iter().any(|(k, _)| key_of(k).as_deref() == Some(name));
    let mut config = Map::new();
    if let Some((_, Object::Dict(kv))) = top
        .iter()
        .find(|(k, _)| key_of(k).as_deref() == Some("model_config"))
    {
        for (k, v) in kv {
            if let (Some(k), Some(v)) = (key_of(k), plain(v)) {
                config.insert(k, v);
            }
        }
    }
    let key = has_key("model_state_dict").then_some("model_state_dict");
    let pth = PthTensors::new(path, key)
        .map_err(|e| err(path, format!("cannot read the tensors: {e}")))?;
    let names: Vec<String> = pth.tensor_infos().keys().cloned().collect();
    for n in names {
        let t = pth
            .get(&n)
            .map_err(|e| err(path, format!("tensor {n}: {e}")))?
            .ok_or_else(|| err(path, format!("tensor {n} is listed but cannot be read")))?;
        tensors.insert(n, t.to_dtype(DType::F32)?.to_device(dev)?);
    }
    if tensors.is_empty() {
        return Err(err(
            path,
            "no tensors found (expected a state dict, or a dict with `model_state_dict`)",
        ));
    }
    Ok((tensors, Value::Object(config)))
}

/// Reads, recognises and checks a checkpoint.
pub fn import(path: &Path, dev: &Device) -> Result<Imported> {
    let (tensors, config) = read_checkpoint(path, dev)?;
    let names: Vec<&str> = tensors.keys().map(String::as_str).collect();
    let shape = |n: &str| tensors.get(n).map(|t| t.dims().to_vec());
    let is_amn = tensors.contains_key("query.weight") && tensors.contains_key("mlp.0.weight");
    let is_transformer = tensors.contains_key("encoder.layers.0.self_attn.in_proj_weight");
    let kind = if is_amn {
        "amn"
    } else if is_transformer {
        "transformer"
    } else {
        ["lstm", "gru"]
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
                         (encoder.layers.{{i}}.self_attn.*); this file has {}",
                        names.iter().take(12).copied().collect::<Vec<_>>().join(", ")
                    ),
                )
            })?
    };
    let first = if is_amn {
        "query.weight"
    } else {
        "input_proj.weight"
    };
    let proj = shape(first).ok_or_else(|| {
        err(
            path,
            format!("no {first}: cannot tell the vector and model sizes"),
        )
    })?;
    let [d_model, input_dim] = proj[..] else {
        return Err(err(path, format!("{first} must be 2-D, it is {proj:?}")));
    };
    let num_layers = if is_transformer {
        (0..)
            .take_while(|i| {
                tensors.contains_key(&format!("encoder.layers.{i}.self_attn.in_proj_weight"))
            })
            .count()
    } else {
        (0..)
            .take_while(|i| tensors.contains_key(&format!("blocks.{i}.{kind}.weight_ih_l0")))
            .count()
    };
    // The file's own config must agree with its tensors (for the AMN only
    // the vector size is unambiguous).
    let mut problems = Vec::new();
    let get = |keys: &[&str]| {
        keys.iter()
            .find_map(|k| config.get(*k).and_then(Value::as_u64))
    };
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
    let context =
        get(&["context_length", "context", "context_size", "seq_len"]).unwrap_or(5) as usize;
    let mut arch = LvmArch::new(kind, input_dim, d_model, num_layers, context);
    if is_transformer {
        arch.heads = get(&["nhead", "num_heads", "n_heads", "heads"]).unwrap_or(8) as usize;
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
    let specs = Lvm::tensor_specs(&arch)?;
    let stored: BTreeMap<String, Vec<usize>> = tensors
        .iter()
        .map(|(n, t)| (n.clone(), t.dims().to_vec()))
        .collect();
    problems.extend(tensor_diff(&stored, &specs));
    if !problems.is_empty() {
        return Err(err(
            path,
            format!(
                "does not match recur's {kind} LVM (D {input_dim}, d {d_model}, {num_layers} blocks):\n  {}",
                problems.join("\n  ")
            ),
        ));
    }
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
        source_config: config,
    })
}

/// Writes an imported checkpoint as a recur LVM model directory.
pub fn write_dir(dir: &Path, source: &Path, imp: &Imported) -> Result<()> {
    crate::model_dir::save_imported_lvm(dir, source, &imp.tensors, &imp.arch, &imp.source_config)
}

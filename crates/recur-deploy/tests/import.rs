//! `import-torch` against PyTorch itself: small LVMs saved by
//! `scripts/make_lvm_fixtures.py` in the original's `.pt` format predict
//! what PyTorch predicted on the same inputs once imported; damaged or
//! foreign checkpoints are refused with the full difference.

use candle_core::{Device, Tensor};
use recur_deploy::import;
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The largest absolute difference of two tensors of one shape.
fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar()
        .unwrap()
}

#[test]
fn imported_pytorch_lvms_predict_what_pytorch_predicted() {
    let dev = Device::Cpu;
    for kind in ["lstm", "gru", "amn", "transformer", "mlp"] {
        let imp = import::import(&fixture(&format!("lvm_{kind}.pt")), &dev).unwrap();
        assert_eq!(imp.arch.kind.name(), kind);
        let layers = if kind == "amn" { 0 } else { 2 };
        let a = &imp.arch;
        assert_eq!(
            (a.input_dim, a.d_model, a.num_layers, a.context),
            (12, 8, layers, 5)
        );
        assert_eq!(imp.source_config["input_dim"], 12);
        let d = tempfile::tempdir().unwrap();
        import::write_dir(d.path(), &fixture("x.pt"), &imp).unwrap();
        let model = recur_deploy::model_dir::load_lvm(d.path(), &dev).unwrap();
        let io = Tensor::read_npz(fixture(&format!("lvm_{kind}_io.npz"))).unwrap();
        let get = |n: &str| io.iter().find(|(k, _)| k == n).unwrap().1.clone();
        let (x, y) = (get("x"), get("y"));
        let diff = max_diff(&model.predict(&x).unwrap(), &y);
        eprintln!("{kind}: max abs difference to PyTorch {diff:.2e}");
        assert!(diff < 1e-5, "{kind}: max abs difference {diff}");
    }
}

#[test]
fn damaged_or_foreign_checkpoints_are_refused_with_the_difference() {
    let dev = Device::Cpu;
    let imp = import::import(&fixture("lvm_gru.pt"), &dev).unwrap();
    let d = tempfile::tempdir().unwrap();
    let write = |name: &str, tensors: Vec<(String, Tensor)>| {
        let p = d.path().join(name);
        let map: std::collections::HashMap<String, Tensor> = tensors.into_iter().collect();
        candle_core::safetensors::save(&map, &p).unwrap();
        p
    };
    // A tensor missing and one reshaped: both listed.
    let mut t = imp.tensors.clone();
    t.retain(|(n, _)| n != "blocks.1.norm.bias");
    for (n, v) in t.iter_mut() {
        if n == "output_proj.bias" {
            *v = Tensor::zeros(7, candle_core::DType::F32, &dev).unwrap();
        }
    }
    let e = import::import(&write("bad.safetensors", t), &dev)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("missing: blocks.1.norm.bias"), "{e}");
    assert!(e.contains("misshapen: output_proj.bias"), "{e}");
    // An extra tensor is unexpected.
    let mut t = imp.tensors.clone();
    t.push((
        "blocks.0.gru.weight_ih_l1".into(),
        Tensor::zeros((24, 8), candle_core::DType::F32, &dev).unwrap(),
    ));
    let e = import::import(&write("extra.safetensors", t), &dev)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("unexpected: blocks.0.gru.weight_ih_l1"), "{e}");
    // Not an LVM at all.
    let t = vec![(
        "encoder.weight".to_string(),
        Tensor::zeros((2, 2), candle_core::DType::F32, &dev).unwrap(),
    )];
    let e = import::import(&write("other.safetensors", t), &dev)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("unknown architecture") && e.contains("encoder.weight"),
        "{e}"
    );
    // Not a checkpoint.
    let p = d.path().join("junk.pt");
    std::fs::write(&p, b"junk").unwrap();
    let e = import::import(&p, &dev).err().unwrap().to_string();
    assert!(e.contains("junk.pt") && e.contains("torch.save"), "{e}");
    // The same weights under the other kind's architecture are refused on load.
    let good = d.path().join("good");
    import::write_dir(&good, &p, &imp).unwrap();
    // Never written over the checkpoint, another file or a folder of them;
    // a model directory of its own can be imported into again.
    let before = std::fs::read(&p).unwrap();
    let e = import::write_dir(&p, &p, &imp).err().unwrap().to_string();
    assert!(e.contains("is the input file"), "{e}");
    let other = d.path().join("notes.csv");
    std::fs::write(&other, b"a,b\n").unwrap();
    let e = import::write_dir(&other, &p, &imp)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("is a file"), "{e}");
    let e = import::write_dir(d.path(), &p, &imp)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("not a recur model directory"), "{e}");
    assert_eq!(std::fs::read(&p).unwrap(), before);
    assert_eq!(std::fs::read(&other).unwrap(), b"a,b\n");
    import::write_dir(&good, &p, &imp).unwrap();
    // Nor from a file inside the directory it replaces (a trained LVM's
    // final.safetensors into its own folder took the file with it).
    let inside = good.join("model.safetensors");
    let kept = std::fs::read(&inside).unwrap();
    let again = import::import(&inside, &dev).unwrap();
    let e = import::write_dir(&good, &inside, &again)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("lies inside --out"), "{e}");
    assert_eq!(std::fs::read(&inside).unwrap(), kept);
    let mut arch = imp.arch.to_json();
    arch["kind"] = "lstm".into();
    let e = recur_core::checkpoint::load_checked(
        &good.join("model.safetensors"),
        &arch,
        &recur_models::Lvm::tensor_specs(&serde_json::from_value(arch.clone()).unwrap()).unwrap(),
        &dev,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        e.contains("kind") && e.contains("gru") && e.contains("lstm"),
        "{e}"
    );
}

/// The members of a `.pt` fixture, in order.
fn members(name: &str) -> Vec<(String, Vec<u8>)> {
    use std::io::Read;
    let mut z = zip::ZipArchive::new(std::fs::File::open(fixture(name)).unwrap()).unwrap();
    (0..z.len())
        .map(|i| {
            let mut m = z.by_index(i).unwrap();
            let mut b = Vec::new();
            m.read_to_end(&mut b).unwrap();
            (m.name().unwrap().to_string(), b)
        })
        .collect()
}

/// Writes members as a stored zip, as torch.save does.
fn write_pt(path: &std::path::Path, members: &[(String, Vec<u8>)]) {
    use std::io::Write;
    let mut z = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let opts =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (n, b) in members {
        z.start_file(n.as_str(), opts).unwrap();
        z.write_all(b).unwrap();
    }
    z.finish().unwrap();
}

#[test]
fn hostile_pickles_damaged_members_and_nan_weights_are_refused() {
    let dev = Device::Cpu;
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("x.pt");
    let good = members("lvm_gru.pt");
    let edit = |member: &str, f: &dyn Fn(&mut Vec<u8>)| {
        let mut m = good.clone();
        for (n, b) in m.iter_mut() {
            if n.ends_with(member) {
                f(b);
            }
        }
        write_pt(&p, &m);
        import::import(&p, &dev).err().map(|e| e.to_string())
    };
    // Tensors saved big-endian: refused, not read as little-endian.
    let e = edit("byteorder", &|b| *b = b"big".to_vec()).unwrap();
    assert!(
        e.contains("byteorder") && e.contains("not little-endian"),
        "{e}"
    );
    // A stated context of 0 vectors (`K\x05`, BININT1 5, after the key).
    let e = edit("data.pkl", &|b| {
        let at = b.windows(14).position(|w| w == b"context_length").unwrap();
        let k = at + b[at..].iter().position(|&c| c == b'K').unwrap();
        assert_eq!(b[k + 1], 5);
        b[k + 1] = 0;
    })
    .unwrap();
    assert!(e.contains("context_length is 0"), "{e}");
    // A stated size that is not a whole number (`X`, a string, in its
    // place): named, not ignored.
    let e = edit("data.pkl", &|b| {
        let at = b.windows(14).position(|w| w == b"context_length").unwrap();
        let k = at + b[at..].iter().position(|&c| c == b'K').unwrap();
        b.splice(k..k + 2, *b"X\x03\x00\x00\x00abc");
    })
    .unwrap();
    assert!(
        e.contains("context_length is \"abc\"") && e.contains("whole number"),
        "{e}"
    );
    // A memo bomb: a list doubled 64 times through the memo.
    let mut laughs = vec![0x80, 2, b']', b'q', 0];
    for i in 0..64u8 {
        let (prev, next) = (i % 2, (i + 1) % 2);
        laughs.extend_from_slice(&[b']', b'(', b'h', prev, b'h', prev, b'e', b'q', next]);
    }
    laughs.push(b'.');
    let e = edit("data.pkl", &|b| *b = laughs.clone()).unwrap();
    assert!(e.contains("x.pt") && e.contains("objects"), "{e}");
    // Lists nested 100,000 deep.
    let mut deep = vec![0x80, 2];
    deep.extend(std::iter::repeat_n(b']', 100_000));
    deep.extend(std::iter::repeat_n(b'a', 100_000));
    deep.push(b'.');
    let e = edit("data.pkl", &|b| *b = deep.clone()).unwrap();
    assert!(e.contains("deep"), "{e}");
    // One flipped byte of a stored tensor: the member's CRC-32 catches it.
    write_pt(&p, &good);
    let mut bytes = std::fs::read(&p).unwrap();
    let data0 = &good.iter().find(|(n, _)| n.ends_with("data/0")).unwrap().1;
    let at = bytes.windows(16).position(|w| w == &data0[..16]).unwrap();
    bytes[at + 5] ^= 0x10;
    std::fs::write(&p, &bytes).unwrap();
    let e = import::import(&p, &dev).err().unwrap().to_string();
    assert!(e.contains("data/0") && e.contains("damaged"), "{e}");
    // A storage shorter than its tensor says: refused before allocating.
    let e = edit("data/0", &|b| b.truncate(b.len() / 2)).unwrap();
    assert!(e.contains("truncated or crafted"), "{e}");
    // Longer than its id declares: refused, as PyTorch refuses it.
    let e = edit("data/0", &|b| b.extend_from_slice(&[0u8; 100])).unwrap();
    assert!(
        e.contains("the file declares") && e.contains("truncated or crafted"),
        "{e}"
    );
    // NaN weights: refused, naming the tensor.
    let e = edit("data/2", &|b| {
        b[..4].copy_from_slice(&f32::NAN.to_le_bytes())
    })
    .unwrap();
    assert!(
        e.contains("NaN or infinite") && e.contains("diverged"),
        "{e}"
    );
    // A pickle that is a call to other code: refused, naming it plainly.
    let e = edit("data.pkl", &|b| *b = b"\x80\x02cos\nsystem\n)R.".to_vec()).unwrap();
    assert!(
        e.contains("not a state dict") && e.contains("os.system") && !e.contains("Reduce"),
        "{e}"
    );
    // A pickle that also names other code: imported, with a warning.
    assert!(edit("data.pkl", &|b| {
        b.splice(2..2, b"cos\nsystem\n".iter().copied());
    })
    .is_none());
    let imp = import::import(&p, &dev).unwrap();
    assert_eq!(imp.warnings.len(), 1, "{:?}", imp.warnings);
    assert!(imp.warnings[0].contains("os.system"), "{:?}", imp.warnings);
    // A call to other code under a tensor's name: said as such, not only
    // reported missing, and the warning comes with the refusal.
    // (The real tensor renamed; the call put first among the state dict's
    // items, after its MARK at byte 60.)
    let e = edit("data.pkl", &|b| {
        let at = b
            .windows(16)
            .position(|w| w == b"output_proj.bias")
            .unwrap();
        b[at + 15] = b'z';
        assert_eq!(&b[57..61], b"Rq\x03(");
        b.splice(
            61..61,
            b"X\x10\x00\x00\x00output_proj.biascposix\nsystem\nX\x04\x00\x00\x00true\x85R"
                .iter()
                .copied(),
        );
    })
    .unwrap();
    assert!(
        e.contains("output_proj.bias is not a tensor but a call to posix.system")
            && e.contains("missing: output_proj.bias"),
        "{e}"
    );
    write_pt(&p, &good);
    assert!(import::import(&p, &dev).unwrap().warnings.is_empty());
}

/// What the tensors cannot tell: a bare `.safetensors` of a Transformer
/// states no head count, and 8 heads for a model of 2 predicted 0.02 off
/// without a word; it is refused until `--heads` gives it, then predicts
/// PyTorch's numbers. A file that states no context length is imported
/// with 5 and a warning, or with the length given; a file recur wrote
/// states both in its header.
#[test]
fn sizes_the_tensors_cannot_tell_are_stated_or_given() {
    let dev = Device::Cpu;
    let d = tempfile::tempdir().unwrap();
    let bare = |kind: &str| {
        let imp = import::import(&fixture(&format!("lvm_{kind}.pt")), &dev).unwrap();
        let p = d.path().join(format!("{kind}.safetensors"));
        let map: std::collections::HashMap<String, Tensor> = imp.tensors.into_iter().collect();
        candle_core::safetensors::save(&map, &p).unwrap();
        p
    };
    let tr = bare("transformer");
    let e = import::import(&tr, &dev).err().unwrap().to_string();
    assert!(
        e.contains("head count is stated nowhere") && e.contains("--heads"),
        "{e}"
    );
    let given = import::Given {
        context: None,
        heads: Some(2),
    };
    let imp = import::import_with(&tr, &dev, &given).unwrap();
    assert_eq!(imp.arch.heads, 2);
    assert!(
        imp.warnings.iter().any(|w| w
            .contains("context length (a .safetensors file's metadata is not read): 5 is assumed")),
        "{:?}",
        imp.warnings
    );
    let out = d.path().join("tr");
    import::write_dir(&out, &tr, &imp).unwrap();
    let model = recur_deploy::model_dir::load_lvm(&out, &dev).unwrap();
    let io = Tensor::read_npz(fixture("lvm_transformer_io.npz")).unwrap();
    let get = |n: &str| io.iter().find(|(k, _)| k == n).unwrap().1.clone();
    let diff = max_diff(&model.predict(&get("x")).unwrap(), &get("y"));
    assert!(diff < 1e-5, "{diff}");
    // import.json records the architecture written: one edited to other
    // heads (no tensor shows them), the manifest rewritten, is refused.
    let record = out.join("import.json");
    let text = std::fs::read_to_string(&record).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["architecture"]["heads"] = 4.into();
    std::fs::write(&record, v.to_string()).unwrap();
    recur_core::dirwrite::reseal(&out).unwrap();
    let e = recur_deploy::model_dir::load_lvm(&out, &dev)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("records another architecture than model.safetensors"),
        "{e}"
    );
    std::fs::write(&record, &text).unwrap();
    recur_core::dirwrite::reseal(&out).unwrap();
    recur_deploy::model_dir::load_lvm(&out, &dev).unwrap();
    // recur's own file states heads and context: imported again as it is.
    let again = import::import(&out.join("model.safetensors"), &dev).unwrap();
    assert_eq!((again.arch.heads, again.arch.context), (2, 5));
    assert!(again.warnings.is_empty(), "{:?}", again.warnings);
    // A context given where the file states another is refused.
    let e = import::import_with(
        &out.join("model.safetensors"),
        &dev,
        &import::Given {
            context: Some(3),
            heads: None,
        },
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        e.contains("--context 3, but the file states context_length 5"),
        "{e}"
    );
    let gru = bare("gru");
    let imp = import::import_with(
        &gru,
        &dev,
        &import::Given {
            context: Some(7),
            heads: None,
        },
    )
    .unwrap();
    assert_eq!(imp.arch.context, 7);
    assert!(imp.warnings.is_empty(), "{:?}", imp.warnings);
    // What was given or read from recur's header is not recorded as the
    // file's model_config, and heads are a Transformer's alone.
    assert!(imp.source_config.is_null(), "{}", imp.source_config);
    assert!(again.source_config.is_null(), "{}", again.source_config);
    let e = import::import_with(
        &gru,
        &dev,
        &import::Given {
            context: None,
            heads: Some(3),
        },
    )
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("this checkpoint is no Transformer"), "{e}");
    // A size of 0 is refused by the library itself, for every caller (the
    // CLI's parser and Python's wrapper check it too).
    for given in [
        import::Given {
            context: Some(0),
            heads: None,
        },
        import::Given {
            context: None,
            heads: Some(0),
        },
    ] {
        let e = import::import_with(&gru, &dev, &given)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("is 0: give a whole number from 1"), "{e}");
    }
}

/// Integer tensors in a `.safetensors` are refused by name, as the `.pt`
/// path refuses an integer storage (they were cast to float silently).
#[test]
fn integer_tensors_in_a_safetensors_file_are_refused() {
    let dev = Device::Cpu;
    let imp = import::import(&fixture("lvm_gru.pt"), &dev).unwrap();
    let d = tempfile::tempdir().unwrap();
    let good = d.path().join("good.safetensors");
    let mut map: std::collections::HashMap<String, Tensor> = imp
        .tensors
        .iter()
        .map(|(n, t)| (n.clone(), t.clone()))
        .collect();
    candle_core::safetensors::save(&map, &good).unwrap();
    assert!(import::import(&good, &dev).is_ok());
    let bias = "input_proj.bias".to_string();
    let as_int = map[&bias].to_dtype(candle_core::DType::I64).unwrap();
    map.insert(bias, as_int);
    let bad = d.path().join("bad.safetensors");
    candle_core::safetensors::save(&map, &bad).unwrap();
    let e = import::import(&bad, &dev).err().unwrap().to_string();
    assert!(
        e.contains("input_proj.bias is I64") && e.contains("float tensors"),
        "{e}"
    );
}

/// A second pickle named like torch.save's beside the real one (read
/// first, it was taken for the state dict, where PyTorch reads
/// `<name>/data.pkl`) is refused, naming both.
#[test]
fn a_decoy_pickle_beside_the_real_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("decoy.pt");
    let mut seen = false;
    rewrite_fixture("lvm_lstm.pt", &out, |name, bytes| {
        if !name.ends_with("/data.pkl") {
            return vec![(name.to_string(), bytes)];
        }
        seen = true;
        // The decoy goes first, as a reader taking the first match meets it.
        let decoy = name.replace("/data.pkl", "/xdata.pkl");
        vec![(decoy, bytes.clone()), (name.to_string(), bytes)]
    });
    assert!(seen);
    let Err(e) = import::import(&out, &Device::Cpu) else {
        panic!("a file with a decoy pickle was imported");
    };
    let e = e.to_string();
    assert!(
        e.contains("holds 2 pickles") && e.contains("xdata.pkl") && e.contains("/data.pkl"),
        "{e}"
    );
}

/// `fixtures/shared_storage.pt` (1.6 KB) names one deflated 1 MB float
/// storage as eight tensors `w0`..`w7`, each a view of all of it (written
/// by hand as torch.save lays it out). Each tensor is copied out of its
/// storage, so such a file took its storage's size per name: a 522 KB
/// file of sixteen names over 512 MB aborted on memory. Tensors may take
/// at most twice their storages' bytes.
#[test]
fn one_storage_named_many_times_is_refused() {
    let Err(e) = import::import(&fixture("shared_storage.pt"), &Device::Cpu) else {
        panic!("a storage named eight times was imported");
    };
    let e = e.to_string();
    assert!(
        e.contains("one storage named many times") && e.contains("1048576 bytes of the storages"),
        "{e}"
    );
}

/// An error in the pickle names the object's kind, not its whole form: a
/// tuple of long strings given to APPEND was written out byte by byte
/// (`\u{1}` each: 62 MB strings made a 975 MB message and gigabytes of
/// memory).
#[test]
fn a_pickle_error_names_the_object_briefly() {
    // (s, s, s) with s 10,000 bytes of \x01, then APPEND onto the tuple.
    let s = vec![1u8; 10_000];
    let mut pickle = b"\x80\x02(X".to_vec();
    pickle.extend((s.len() as u32).to_le_bytes());
    pickle.extend(&s);
    pickle.extend(b"q\x00h\x00h\x00tK\x00a.");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("append.pt");
    rewrite_fixture("lvm_lstm.pt", &out, |name, bytes| {
        let bytes = if name.ends_with("/data.pkl") {
            pickle.clone()
        } else {
            bytes
        };
        vec![(name.to_string(), bytes)]
    });
    let Err(e) = import::import(&out, &Device::Cpu) else {
        panic!("a pickle appending to a tuple was imported");
    };
    let e = e.to_string();
    assert!(
        e.contains("expected a list, got a tuple of 3 items"),
        "{}",
        &e[..e.len().min(300)]
    );
    assert!(e.len() < 1000, "a message of {} bytes", e.len());
}

/// `fixtures/NAME` written again to `out` as a stored zip, each member's
/// bytes through `edit`, which returns the members to write in its place
/// (name and bytes), in order.
fn rewrite_fixture(
    name: &str,
    out: &std::path::Path,
    mut edit: impl FnMut(&str, Vec<u8>) -> Vec<(String, Vec<u8>)>,
) {
    use std::io::{Read, Write};
    let src = std::fs::read(fixture(name)).unwrap();
    let mut zin = zip::ZipArchive::new(std::io::Cursor::new(src)).unwrap();
    let mut zout = zip::ZipWriter::new(std::fs::File::create(out).unwrap());
    let opts =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for i in 0..zin.len() {
        let mut m = zin.by_index(i).unwrap();
        let member = m.name().unwrap().to_string();
        let mut bytes = Vec::new();
        m.read_to_end(&mut bytes).unwrap();
        for (n, b) in edit(&member, bytes) {
            zout.start_file(n.as_str(), opts).unwrap();
            zout.write_all(&b).unwrap();
        }
    }
    zout.finish().unwrap();
}

/// Checkpoints as other training code saves them
/// (`scripts/make_import_variants.py`, from the LSTM and Transformer
/// fixtures): each either imports and predicts what PyTorch predicted, or
/// is refused with what is wrong and what to do. Before, the aliased state
/// dict (a pickle memo read back empty) was "no tensors found", the
/// wrapper prefixes an unknown architecture, a Parameter with attributes
/// "missing", a Namespace config or a numpy context length silently
/// dropped (context 5 assumed), a pre-norm Transformer imported as a
/// post-norm one (0.41 off), a float8 tensor "not a tensor but a call",
/// protocol 4 an "unknown op-code 149", and a safetensors file named `.pt`
/// refused as an old torch format.
#[test]
fn checkpoints_saved_the_ways_users_save_them_import_or_are_refused_by_name() {
    let dev = Device::Cpu;
    let variant = |n: &str| fixture("variants").join(n);
    let io = Tensor::read_npz(fixture("lvm_lstm_io.npz")).unwrap();
    let get = |n: &str| io.iter().find(|(k, _)| k == n).unwrap().1.clone();
    let (x, y) = (get("x"), get("y"));
    for (name, warned) in [
        ("alias.pt", None),
        ("dataparallel.pt", Some("`module.`")),
        ("lightning.pt", Some("`model.`")),
        ("param_state.pt", None),
        ("namespace.pt", None),
        ("safetensors.pt", None),
        ("strided.pt", None),
    ] {
        let imp = import::import(&variant(name), &dev).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(imp.arch.kind.name(), "lstm", "{name}");
        if let Some(w) = warned {
            assert!(
                imp.warnings.iter().any(|s| s.contains(w)),
                "{name}: {:?}",
                imp.warnings
            );
        }
        // The config was read where the file has one (the alias's second
        // naming of it, the Namespace's attributes).
        if [
            "alias.pt",
            "namespace.pt",
            "dataparallel.pt",
            "param_state.pt",
            "lightning.pt",
        ]
        .contains(&name)
        {
            assert_eq!(imp.source_config["context_length"], 5, "{name}");
            assert!(
                !imp.warnings
                    .iter()
                    .any(|s| s.contains("does not state its context")),
                "{name}: {:?}",
                imp.warnings
            );
        }
        let d = tempfile::tempdir().unwrap();
        import::write_dir(d.path(), &variant(name), &imp).unwrap();
        let model = recur_deploy::model_dir::load_lvm(d.path(), &dev).unwrap();
        let diff = max_diff(&model.predict(&x).unwrap(), &y);
        assert!(diff < 1e-5, "{name}: max abs difference {diff}");
        // import.json names the source from anywhere (it was the path as
        // typed, relative to where the import ran) and by its bytes.
        let rec: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(d.path().join("import.json")).unwrap())
                .unwrap();
        assert!(
            std::path::Path::new(rec["source"].as_str().unwrap()).is_absolute(),
            "{rec}"
        );
        assert_eq!(
            rec["source_sha256"].as_str(),
            Some(
                recur_core::fsx::sha256_file(&variant(name))
                    .unwrap()
                    .as_str()
            )
        );
    }
    for (name, said) in [
        (
            "numpy_config.pt",
            &["context_length is a numpy scalar", "int(v)"][..],
        ),
        ("norm_first.pt", &["norm_first is true"][..]),
        ("norm_first_int.pt", &["norm_first is 1"][..]),
        ("lstm_eps.pt", &["layer_norm_eps is 0.1"][..]),
        (
            "float8.pt",
            &["output_proj.bias", "float8_e4m3fn", "tensor.float()"][..],
        ),
        ("protocol4.pt", &["protocol 4", "pickle_protocol=2"][..]),
    ] {
        let e = import::import(&variant(name), &dev)
            .err()
            .unwrap_or_else(|| panic!("{name} imported"))
            .to_string();
        for s in said {
            assert!(e.contains(s), "{name}: {e}");
        }
    }
}

/// The pickle reader as Python's: a dict's items in the file's order (a key
/// set twice keeps its last value), integers of up to 8 bytes with their
/// sign, longer ones refused (2^67 + 8 was read as 8).
#[test]
fn pickled_dicts_keep_their_order_and_long_integers_their_sign_or_are_refused() {
    use candle_core::pickle::{Object, Stack};
    let read = |p: &[u8]| {
        let mut s = Stack::empty();
        s.read_loop(&mut &p[..]).and_then(|_| s.finalize())
    };
    // {"a": 1, "a": 2} as SETITEMS writes it.
    let p = [
        0x80, 2, b'}', b'(', b'X', 1, 0, 0, 0, b'a', b'K', 1, b'X', 1, 0, 0, 0, b'a', b'K', 2,
        b'u', b'.',
    ];
    let Object::Dict(kv) = read(&p).unwrap() else {
        panic!("not a dict")
    };
    assert_eq!(
        kv.iter().map(|(_, v)| v.clone()).collect::<Vec<_>>(),
        [Object::Int(1), Object::Int(2)]
    );
    assert_eq!(
        read(&[0x80, 2, 0x8a, 1, 0xff, b'.']).unwrap(),
        Object::Long(-1)
    );
    assert_eq!(
        read(&[0x80, 2, 0x8a, 2, 0x00, 0x80, b'.']).unwrap(),
        Object::Long(-32768)
    );
    assert_eq!(
        read(&[0x80, 2, 0x8a, 2, 0xff, 0x7f, b'.']).unwrap(),
        Object::Long(32767)
    );
    let mut long = vec![0x80, 2, 0x8a, 9, 8, 0, 0, 0, 0, 0, 0, 0, 8, b'.'];
    let e = read(&long).unwrap_err().to_string();
    assert!(e.contains("9 bytes"), "{e}");
    long[3] = 8;
    long.remove(12);
    assert_eq!(read(&long).unwrap(), Object::Long(8));
    // DICT (`d`) builds a dict of the items since its mark, as the bomb
    // guard reads it: taken for EMPTY_DICT, it left a memoised list live
    // that each round then doubled (2^40 copies from 289 bytes).
    let mut p = b"\x80\x02(]q\x00da".to_vec();
    for _ in 0..20 {
        p.extend_from_slice(b"(h\x00a)");
    }
    p.push(b'.');
    let e = read(&p).unwrap_err().to_string();
    assert!(e.contains("not an even number"), "{e}");
    assert_eq!(
        read(b"\x80\x02(X\x01\x00\x00\x00aK\x01d.").unwrap(),
        Object::Dict(vec![(Object::Unicode("a".into()), Object::Int(1))])
    );
}

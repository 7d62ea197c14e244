"""Job B and text from Python: `recur.Lvm` and `recur.SentenceEncoder`
against `recur lvm predict` and `recur embed`."""

import json

import numpy as np
import pytest

import recur
from conftest import run

C, D = 5, 16


@pytest.fixture(scope="session")
def chunks(tmp_path_factory):
    """Twelve documents of 20 chunks: each a smooth walk on the sphere."""
    rng = np.random.default_rng(7)
    vecs, arts = [], []
    for a in range(12):
        x = rng.normal(size=D)
        for _ in range(20):
            x = x + 0.3 * rng.normal(size=D)
            vecs.append(x / np.linalg.norm(x))
            arts.append(a)
    v = np.asarray(vecs, dtype=np.float32)
    a = np.asarray(arts, dtype=np.int64)
    path = tmp_path_factory.mktemp("lvm") / "chunks.npz"
    chunk = np.concatenate([np.arange(20)] * 12).astype(np.int64)
    np.savez(path, vectors=v, article_indices=a, chunk_indices=chunk)
    return path, v, a


def windows(v, a):
    """Every window of C chunks of one document, in file order."""
    ctx = [v[j - C:j] for j in range(C, len(v)) if a[j - C] == a[j]]
    return np.stack(ctx)


CONFIG = {
    "data": {"context": C, "val_fraction": 0.25},
    "model": {"type": "gru", "d_model": 16, "num_layers": 1},
    "training": {"epochs": 2, "batch_size": 16},
}


def test_an_lvm_trained_from_arrays_predicts_as_the_cli_does(chunks, recur_bin, tmp_path):
    path, v, a = chunks
    said: list[str] = []
    m = recur.Lvm.train(tmp_path / "lvm", CONFIG, vectors=v, article_indices=a,
                        progress=lambda event, text, n: said.append(text))
    assert (m.kind, m.context, m.dim) == ("gru", C, D)
    # Its notes name the arrays too (they showed the temporary file's path).
    assert any("the arrays vectors and article_indices" in t for t in said), said
    assert not any("recur-lvm-" in t for t in said), said
    assert "val cosine" in m.report_text_ and m.report_["val"]["cosine_mean"] > 0
    # The model names the arrays as its data, not the temporary file gone.
    for f in ("config.yaml", "split.json"):
        text = (tmp_path / "lvm" / f).read_text()
        assert "recur.Lvm.train" in text and "recur-lvm-" not in text, text
    w = windows(v, a)
    mine = m.predict(w)
    assert mine.shape == (len(w), D) and mine.dtype == np.float32
    run(recur_bin, "-q", "lvm", "predict", "--model", str(tmp_path / "lvm"), "--data", str(path),
        "--output", str(tmp_path / "p.npy"))
    theirs = np.load(tmp_path / "p.npy")
    assert theirs.shape == mine.shape
    assert np.abs(theirs - mine).max() < 1e-5
    again = recur.load(tmp_path / "lvm")
    assert isinstance(again, recur.Lvm)
    assert np.array_equal(again.predict(w), mine)
    with pytest.raises(ValueError, match=r"\[N, 5, 16\]"):
        m.predict(np.zeros((2, 4, D), dtype=np.float32))
    bad = w.copy()
    bad[1, 0, 0] = np.nan
    with pytest.raises(ValueError, match="window 1"):
        m.predict(bad)
    with pytest.raises(ValueError, match="give config as a dict"):
        recur.Lvm.train(tmp_path / "p", "some.yaml", vectors=v, article_indices=a)
    with pytest.raises(TypeError, match="config is int"):
        recur.Lvm.train(tmp_path / "p", 42, vectors=v, article_indices=a)
    with pytest.raises(ValueError, match="out is empty"):
        recur.Lvm.train("", CONFIG, vectors=v, article_indices=a)
    # A NaN in the training arrays is named by row, not by a temporary file.
    bad_v = v.copy()
    bad_v[7, 3] = np.nan
    with pytest.raises(ValueError, match="vectors row 7 holds NaN"):
        recur.Lvm.train(tmp_path / "nan", CONFIG, vectors=bad_v, article_indices=a)
    # Article indices: whole numbers, each article's chunks together;
    # errors name the arrays, not the temporary file they go through.
    with pytest.raises(ValueError, match=r"article_indices\[0\] is 0.5"):
        recur.Lvm.train(tmp_path / "f", CONFIG, vectors=v, article_indices=a + 0.5)
    with pytest.raises(ValueError, match="article_indices have dtype <U"):
        recur.Lvm.train(tmp_path / "s", CONFIG, vectors=v, article_indices=a.astype(str))
    mixed = a.copy()
    mixed[25] = 0
    with pytest.raises(ValueError, match="article 0 has chunks at rows 0 and 25"):
        recur.Lvm.train(tmp_path / "m", CONFIG, vectors=v, article_indices=mixed)
    with pytest.raises(ValueError, match="the arrays vectors and article_indices") as e:
        recur.Lvm.train(tmp_path / "few", CONFIG, vectors=v[:8], article_indices=a[:8])
    assert "recur-lvm-" not in str(e.value)
    # Not a model directory: OSError, saying what the path is.
    with pytest.raises(FileNotFoundError, match="does not exist"):
        recur.Lvm.load(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(OSError, match="not a recur model directory"):
        recur.load(tmp_path / "empty")
    # Finite but too large for the model: an error, not NaN vectors.
    with pytest.raises(ValueError, match="window 0.*too large"):
        m.predict(np.full((2, C, D), 3e38, dtype=np.float32))
    # Casts that would change the numbers in silence are refused.
    with pytest.raises(ValueError, match="dtype complex128"):
        m.predict(w.astype(np.complex128))
    big = w.astype(np.float64)
    big[1, 2, 3] = 1e39
    with pytest.raises(ValueError, match=r"windows\[1, 2, 3\] is 1e\+39"):
        m.predict(big)
    # Masked entries are refused, not read; a 0-d input is named as one;
    # article ids past int64 would all become one article.
    masked = np.ma.masked_array(w, mask=np.zeros(w.shape, dtype=bool))
    masked[0, 1, 2] = np.ma.masked
    with pytest.raises(ValueError, match=r"windows is a masked array .*\[0, 1, 2\]"):
        m.predict(masked)
    with pytest.raises(ValueError, match=r"windows have shape \(\)"):
        m.predict(np.float32(0.5))
    for bad in [None, "abc"]:
        with pytest.raises(TypeError, match="windows is"):
            m.predict(bad)
    with pytest.raises(ValueError, match=r"article_indices\[0\] is 1e\+19: give whole numbers within int64"):
        recur.Lvm.train(tmp_path / "o", CONFIG, vectors=v, article_indices=(a + 1) * 1e19)
    # Every article twice, under new ids: validation windows are training
    # windows, and training says so.
    with pytest.warns(recur.TrainingWarning, match="validation windows are also training windows"):
        recur.Lvm.train(tmp_path / "dup", CONFIG, vectors=np.concatenate([v, v]),
                        article_indices=np.concatenate([a, a + a.max() + 1]))


def test_an_lvm_trained_from_a_config_file_equals_the_clis(chunks, recur_bin, tmp_path):
    path, v, a = chunks
    cfg = dict(CONFIG, data={**CONFIG["data"], "train": str(path)})
    f = tmp_path / "lvm.yaml"
    f.write_text(json.dumps(cfg))
    mine = recur.Lvm.train(tmp_path / "py", str(f))
    run(recur_bin, "-q", "lvm", "train", "--config", str(f), "--out", str(tmp_path / "cli"))
    theirs = recur.load(tmp_path / "cli")
    w = windows(v, a)
    assert np.array_equal(mine.predict(w), theirs.predict(w))
    with pytest.raises(ValueError, match="data.train"):
        recur.Lvm.train(tmp_path / "none", {"model": {"type": "gru"}})
    # A loaded LVM carries its report, as one just trained does.
    again = recur.Lvm.load(tmp_path / "py")
    assert again.report_ == mine.report_ and again.report_text_ == mine.report_text_
    assert "val cosine" in theirs.report_text_
    assert repr(again) == f"Lvm(kind='gru', context=5, dim=16, path={str(tmp_path / 'py')!r})"
    # A path is not a model: said, with the way to open one.
    with pytest.raises(TypeError, match=r"recur\.Lvm\.load\(path\)"):
        recur.Lvm(str(tmp_path / "py"))
    # A key the config does not have, without a position in the JSON the
    # dict went through; a config file that is not there.
    with pytest.raises(ValueError, match="modell") as e:
        recur.Lvm.train(tmp_path / "typo", dict(cfg, modell={}))
    assert " at line " not in str(e.value)
    with pytest.raises(FileNotFoundError):
        recur.Lvm.train(tmp_path / "nofile", str(tmp_path / "missing.yaml"))


def test_a_pickled_lvm_predicts_as_it_did_after_its_folder_is_gone(chunks, tmp_path):
    import pickle
    import shutil

    path, v, a = chunks
    cfg = dict(CONFIG, data={**CONFIG["data"], "train": str(path)})
    f = tmp_path / "lvm.yaml"
    f.write_text(json.dumps(cfg))
    m = recur.Lvm.train(tmp_path / "m", str(f))
    w = windows(v, a)
    want = m.predict(w)
    loaded = recur.load(tmp_path / "m")
    data = pickle.dumps(loaded)
    # A weights file alone loads (as `recur lvm predict --model FILE`
    # does), and pickles too.
    weights = tmp_path / "w.safetensors"
    shutil.copy(tmp_path / "m" / "model.safetensors", weights)
    alone = recur.Lvm.load(weights)
    assert np.array_equal(alone.predict(w), want)
    weights.unlink()
    assert np.array_equal(pickle.loads(pickle.dumps(alone)).predict(w), want)
    shutil.rmtree(tmp_path / "m")
    back = pickle.loads(data)
    assert (back.kind, back.context, back.dim) == ("gru", C, D)
    assert np.array_equal(back.predict(w), want)
    twice = pickle.loads(pickle.dumps(m))
    assert twice.report_ == m.report_ and np.array_equal(twice.predict(w), want)


def test_the_encoder_gives_recur_embeds_vectors(recur_bin):
    texts = ["The rain in Spain stays mainly in the plain.", "Markets rose on Tuesday.", "Hello"]
    enc = recur.SentenceEncoder("all-MiniLM-L6-v2")
    mine = enc.encode(texts, batch_size=2)
    assert mine.shape == (3, enc.dim) == (3, 384) and mine.dtype == np.float32
    assert np.allclose(np.linalg.norm(mine, axis=1), 1.0, atol=1e-5)
    out = run(recur_bin, "-q", "embed", "--batch-size", "2", *texts).stdout
    theirs = np.array([json.loads(line)["embedding"] for line in out.splitlines()], dtype=np.float32)
    assert np.abs(theirs - mine).max() < 1e-6
    with pytest.raises(ValueError, match="list of str"):
        enc.encode("one string")
    for bad in ([None], ["ok", b"bytes"], [3]):
        with pytest.raises(TypeError, match=r"texts\[\d\] is"):
            enc.encode(bad)
    with pytest.raises(ValueError, match="empty"):
        enc.encode([])
    with pytest.raises(ValueError, match=r"texts\[1\] is empty"):
        enc.encode(["ok", "  "])
    with pytest.raises(ValueError, match=r"texts\[2\] holds only characters the encoder drops"):
        enc.encode(["ok", "fine", "\u200b"])
    with pytest.raises(ValueError, match="batch_size"):
        enc.encode(texts, batch_size=-1)
    with pytest.raises(ValueError, match="neither a folder nor a model"):
        recur.SentenceEncoder("no-such-model")
    # Pickled by name: the copy opens the same model again.
    import pickle

    again = pickle.loads(pickle.dumps(enc))
    assert np.array_equal(again.encode(texts, batch_size=2), mine)



def test_a_callback_raising_at_the_last_events_leaves_out_as_it_was(chunks, tmp_path):
    """The README: an exception the callable raises stops the work and is
    raised; nothing is written. Raised at the last `finish` or `note`
    event (after the last batch), it was raised with the new model
    already in `out`."""
    path, v, a = chunks
    recur.Lvm.train(tmp_path / "o", CONFIG, vectors=v, article_indices=a)
    weights = (tmp_path / "o" / "model.safetensors").read_bytes()
    cfg = dict(CONFIG, training=dict(CONFIG["training"], learning_rate=0.05))
    events: list[str] = []
    recur.Lvm.train(tmp_path / "rec", cfg, vectors=v, article_indices=a,
                    progress=lambda event, text, n: events.append(event))
    assert (tmp_path / "rec" / "model.safetensors").read_bytes() != weights
    for last in ("finish", "note"):
        at = max(i for i, e in enumerate(events) if e == last)
        seen = []

        def cb(event, text, n):
            seen.append(event)
            if len(seen) - 1 == at:
                raise RuntimeError(f"stop at {last}")

        with pytest.raises(RuntimeError, match=f"stop at {last}"):
            recur.Lvm.train(tmp_path / "o", cfg, vectors=v, article_indices=a, progress=cb)
        assert seen == events[:at + 1], last
        assert (tmp_path / "o" / "model.safetensors").read_bytes() == weights, last


def test_a_pytorch_checkpoint_imports_from_python_as_the_cli_imports_it(recur_bin, tmp_path):
    """`recur.Lvm.import_torch` is `recur import-torch`: the fixture of
    `scripts/make_lvm_fixtures.py` predicts PyTorch's outputs, warnings come
    as UserWarnings, and bad arguments are refused by name."""
    import os
    import warnings

    fix = os.path.join(os.path.dirname(__file__), "..", "..", "crates", "recur-deploy", "tests", "fixtures")
    m = recur.Lvm.import_torch(os.path.join(fix, "lvm_lstm.pt"), tmp_path / "imp")
    assert (m.kind, m.context, m.dim) == ("lstm", 5, 12)
    io = np.load(os.path.join(fix, "lvm_lstm_io.npz"))
    assert np.abs(m.predict(io["x"]) - io["y"]).max() < 1e-5
    # The same directory as the CLI writes.
    run(recur_bin, "--threads", "1", "import-torch", os.path.join(fix, "lvm_lstm.pt"), "--out",
        str(tmp_path / "cli"))
    for f in ("model.safetensors", "import.json"):
        assert (tmp_path / "imp" / f).read_bytes() == (tmp_path / "cli" / f).read_bytes(), f
    # A DataParallel checkpoint: the prefix read without is said.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        v = recur.Lvm.import_torch(os.path.join(fix, "variants", "dataparallel.pt"), tmp_path / "dp")
    assert v.kind == "lstm"
    assert any("`module.`" in str(w.message) for w in caught), [str(w.message) for w in caught]
    with pytest.raises(ValueError, match="heads is 0"):
        recur.Lvm.import_torch(os.path.join(fix, "lvm_transformer.pt"), tmp_path / "t", heads=0)
    with pytest.raises(TypeError, match="context is str"):
        recur.Lvm.import_torch(os.path.join(fix, "lvm_lstm.pt"), tmp_path / "t", context="5")
    with pytest.raises(ValueError, match="norm_first"):
        recur.Lvm.import_torch(os.path.join(fix, "variants", "norm_first.pt"), tmp_path / "t")
    with pytest.raises(FileNotFoundError):
        recur.Lvm.import_torch(tmp_path / "missing.pt", tmp_path / "t")


def test_an_out_another_run_is_writing_is_a_blocking_io_error(chunks, tmp_path):
    """A second writer of one model directory is refused as the file error
    it is (an OSError: BlockingIOError), not as bad input (ValueError)."""
    import fcntl

    path, v, a = chunks
    with open(tmp_path / ".o.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(BlockingIOError, match="another recur is writing"):
            recur.Lvm.train(tmp_path / "o", CONFIG, vectors=v, article_indices=a)
    assert not (tmp_path / "o").exists()

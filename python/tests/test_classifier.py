"""`recur.LSTMClassifier` against the `recur` command line: the same config
and seed give the same probabilities, and models move between the two."""

import inspect
import json
import os
import pathlib
import pickle
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import recur
from recur import _config, _recur
from conftest import run

EPOCHS = 3


@pytest.fixture(scope="session")
def short_config(root, tmp_path_factory) -> pathlib.Path:
    """configs/rainfall-ensemble.yaml (selection, LSTM, trees, ensemble,
    isotonic calibration) with 3 epochs, so the comparison runs in seconds."""
    text = (root / "configs" / "rainfall-ensemble.yaml").read_text()
    assert "  epochs: 30\n" in text
    text = text.replace("  epochs: 30\n", f"  epochs: {EPOCHS}\n")
    text = text.replace("path: ../data/rainfall.csv", f"path: {root / 'data' / 'rainfall.csv'}")
    p = tmp_path_factory.mktemp("cfg") / "rain.yaml"
    p.write_text(text)
    return p


@pytest.fixture(scope="session")
def cli_model(recur_bin, short_config, root, tmp_path_factory):
    """`recur train` + `recur predict` on the bundled file."""
    d = tmp_path_factory.mktemp("cli")
    run(recur_bin, "-q", "train", "--config", str(short_config), "--out", str(d / "model"))
    run(recur_bin, "-q", "predict", "--model", str(d / "model"), "--input",
        str(root / "data" / "rainfall.csv"), "--output", str(d / "pred.csv"))
    return d / "model", pd.read_csv(d / "pred.csv")


@pytest.fixture(scope="session")
def fitted(short_config, rainfall):
    return recur.LSTMClassifier(**recur.config_params(short_config)).fit(rainfall)


def same(a, b) -> bool:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return a.shape == b.shape and bool(np.all((a == b) | (np.isnan(a) & np.isnan(b))))


def test_every_keyword_default_is_the_librarys():
    lib = _config.from_config(json.loads(_recur.default_config()))
    for name, _, default in _config.PARAMS:
        if name in _config.SWITCHES:
            assert default is False, name
            continue
        assert lib[name] == default, f"{name}: the estimator says {default!r}, recur {lib[name]!r}"
    params = recur.LSTMClassifier().get_params()
    assert set(params) == {n for n, _, _ in _config.PARAMS} | {"progress"}
    # The written-out __init__ is the table: same keywords, order and defaults.
    sig = inspect.signature(recur.LSTMClassifier.__init__).parameters
    assert [(p.name, p.default) for p in sig.values()][1:] == [(n, d) for n, _, d in _config.PARAMS] + [
        ("progress", False)
    ]
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in list(sig.values())[1:])


def cells(v) -> list:
    """Numbers as `recur predict` writes them to CSV (6 decimals)."""
    return ["" if np.isnan(x) else f"{x:.6f}" for x in v]


def test_fit_gives_the_probabilities_of_recur_train_and_predict(fitted, cli_model, rainfall, root):
    cli_dir, pred = cli_model
    rows = fitted.score_rows(rainfall)
    assert same(rows["row"], pred["row"])
    # The model trained here and the one `recur train` wrote give the same
    # numbers to the last bit...
    theirs = recur.load(cli_dir).score_rows(rainfall)
    for col in ["p_lstm", "p_trees", "p_ensemble", "probability", "decision"]:
        assert same(rows[col], theirs[col]), col
    # ...and `recur predict`'s file, as written.
    text = pd.read_csv(cli_dir.parent / "pred.csv", dtype=str, keep_default_na=False)
    for col in ["p_lstm", "p_trees", "p_ensemble", "probability"]:
        assert cells(rows[col]) == list(text[col]), col
    assert same(rows["decision"], pred["decision"])
    proba = fitted.predict_proba(rainfall)
    assert proba.shape == (len(rainfall), 2)
    # Row i of the output is the CLI's row i; the first rows have no window.
    assert same(proba[pred["row"].to_numpy(), 1], rows["probability"])
    assert np.isnan(proba[: fitted.first_row_]).all()
    ok = ~np.isnan(proba[:, 1])
    assert np.allclose(proba[ok].sum(axis=1), 1.0)
    assert set(np.unique(fitted.predict(rainfall)[ok])) <= {0.0, 1.0}
    assert fitted.threshold_ == recur.load(cli_model[0]).threshold_
    assert fitted.report_["test"]["auc"] > 0.6
    assert "ROC AUC" in fitted.report_text_
    assert list(fitted.classes_) == [0, 1] and fitted.n_features_in_ == rainfall.shape[1]
    assert list(fitted.feature_names_in_) == list(rainfall.columns)


def test_a_saved_model_is_one_the_cli_opens_and_load_opens_the_clis(fitted, cli_model, rainfall, recur_bin, root, tmp_path):
    out = tmp_path / "saved"
    fitted.save(out)
    run(recur_bin, "-q", "predict", "--model", str(out), "--input", str(root / "data" / "rainfall.csv"),
        "--output", str(tmp_path / "p.csv"))
    again = pd.read_csv(tmp_path / "p.csv", dtype=str, keep_default_na=False)
    assert list(again["probability"]) == cells(fitted.score_rows(rainfall)["probability"])
    cli_dir, pred = cli_model
    loaded = recur.load(cli_dir)
    assert isinstance(loaded, recur.LSTMClassifier)
    assert cells(loaded.predict_proba(rainfall)[pred["row"].to_numpy(), 1]) == cells(pred["probability"])
    assert loaded.get_params()["trees"] and loaded.get_params()["epochs"] == EPOCHS
    # A loaded model's report text is the one its training printed.
    assert recur.load(out).report_text_ == fitted.report_text_
    assert "ROC AUC" in loaded.report_text_
    with pytest.raises(OSError, match="not an empty folder"):
        fitted.save(out)


def test_clone_and_params_round_trip(fitted):
    from sklearn.base import clone

    c = clone(fitted)
    assert c.get_params() == fitted.get_params()
    assert not hasattr(c, "classes_")
    c.set_params(hidden_size=8, trees=False)
    assert c.get_params()["hidden_size"] == 8 and fitted.get_params()["hidden_size"] == 64


def test_a_pickle_predicts_the_same_in_another_process(fitted, rainfall, tmp_path):
    blob = tmp_path / "model.pkl"
    blob.write_bytes(pickle.dumps(fitted))
    data = tmp_path / "x.csv"
    rainfall.tail(500).to_csv(data, index=False)
    out = tmp_path / "p.npy"
    code = (
        "import pickle, sys, numpy as np, pandas as pd\n"
        f"m = pickle.loads(open({str(blob)!r}, 'rb').read())\n"
        f"np.save({str(out)!r}, m.predict_proba(pd.read_csv({str(data)!r})))\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert same(np.load(out), fitted.predict_proba(pd.read_csv(data)))


def test_not_fitted_and_bad_input_say_what_is_wrong(fitted, rainfall):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        recur.LSTMClassifier().predict_proba(rainfall)
    bad = rainfall.copy()
    bad.loc[100, "dew point"] = np.nan
    with pytest.raises(ValueError, match="dew point"):
        fitted.predict_proba(bad)
    with pytest.raises(ValueError, match="visibility"):
        fitted.predict_proba(rainfall.drop(columns=["visibility"]))
    with pytest.raises(ValueError, match="rows"):
        fitted.predict_proba(rainfall.head(5))
    with pytest.raises(ValueError, match="one value per row"):
        recur.LSTMClassifier().fit(rainfall.drop(columns=["rain"]), rainfall["rain"].head(10))
    with pytest.raises(ValueError, match="hidden_size"):
        recur.LSTMClassifier(hidden_size=0, target_column="rain").fit(rainfall)
    with pytest.raises(ValueError, match="learning_rate is NaN"):
        recur.LSTMClassifier(learning_rate=float("nan"), target_column="rain").fit(rainfall)
    # An array's columns are the features in order, whatever its dtype or
    # layout; a wrong count names both counts and the order.
    frame = rainfall[fitted.features_]
    want = fitted.predict_proba(frame)
    for X in [frame.to_numpy(), np.asfortranarray(frame.to_numpy()), frame.to_numpy().tolist()]:
        assert same(fitted.predict_proba(X), want)
    with pytest.raises(ValueError, match=f"X has 2 columns; give .* the {len(fitted.features_)} features"):
        fitted.predict_proba(frame.to_numpy()[:, :2])
    # Not an array at all: the wrong kind of argument.
    for X in [None, "rainfall.csv", b"x"]:
        with pytest.raises(TypeError, match=f"X is {type(X).__name__}: give a DataFrame"):
            fitted.predict_proba(X)
    # A config file that is not there is Python's FileNotFoundError.
    with pytest.raises(FileNotFoundError, match="nowhere.yaml"):
        recur.config_params("nowhere.yaml")
    with pytest.raises(TypeError, match="path is NoneType"):
        recur.config_params(None)


def test_score_is_the_accuracy_on_the_rows_with_a_prediction(fitted, rainfall):
    p = fitted.predict(rainfall)
    y = rainfall["rain"].to_numpy()
    h = fitted.horizon
    assert h == 1
    # y is the raw target column, as fit takes it: row t's decision
    # predicts row t + horizon, and is compared with that label.
    label = np.r_[y[h:], np.full(h, np.nan)]
    keep = ~np.isnan(p) & ~np.isnan(label)
    assert not keep.all()
    want = np.mean(p[keep] == label[keep])
    assert fitted.score(rainfall, y) == pytest.approx(want)
    # A frame that holds the target column needs no y.
    assert fitted.score(rainfall) == pytest.approx(want)
    # A column's name where its values belong is a TypeError that says so.
    with pytest.raises(TypeError, match="y is str"):
        fitted.score_rows(rainfall, "rain")
    # So is a path that is none (Python's own message named no argument).
    with pytest.raises(TypeError, match="path is NoneType"):
        fitted.save(None)
    assert want != pytest.approx(np.mean(p[~np.isnan(p)] == y[~np.isnan(p)]))
    # The same from the features alone (y apart) and with weights.
    X = rainfall[fitted.features_].to_numpy()
    assert fitted.score(X, y) == pytest.approx(want)
    w = np.linspace(0.0, 1.0, len(y))
    assert fitted.score(X, y, sample_weight=w) == pytest.approx(np.average(p[keep] == label[keep], weights=w[keep]))
    rows = fitted.score_rows(X, y)
    assert same(rows["label"], label[rows["row"]])
    with pytest.raises(ValueError, match="y differs"):
        fitted.score(rainfall, 1 - y)


def test_save_makes_the_folders_on_its_way(fitted, tmp_path):
    path = tmp_path / "runs" / "deep" / "m"
    fitted.save(path)
    assert (path / "model.safetensors").exists()
    assert sorted(p.name for p in path.parent.iterdir()) == ["m"]


def test_fit_with_y_apart_and_a_numpy_array(rainfall):
    X = rainfall.drop(columns=["Unnamed: 0", "rain"]).to_numpy(dtype=np.float32)[:3000]
    y = rainfall["rain"].to_numpy()[:3000]
    m = recur.LSTMClassifier(sequence_length=8, hidden_size=8, epochs=1, horizon=1).fit(X, y)
    assert m.n_features_in_ == X.shape[1] and not hasattr(m, "feature_names_in_")
    p = m.predict_proba(X)
    assert p.shape == (3000, 2) and np.isnan(p[0, 1]) and not np.isnan(p[-1, 1])
    # A model that kept some of the columns reads the array fit saw, or
    # the kept columns alone, alike.
    sub = recur.LSTMClassifier(sequence_length=8, hidden_size=8, epochs=1, horizon=1,
                               features=["x0", "x2"]).fit(X, y)
    assert sub.features_ == ["x0", "x2"]
    assert same(sub.predict_proba(X.astype(np.float64)), sub.predict_proba(X[:, [0, 2]].astype(np.float64)))
    with pytest.raises(ValueError, match=f"X has 4 columns; give the {X.shape[1]} columns fit saw"):
        sub.predict_proba(X[:, :4].astype(np.float64))


def test_lstm_fcn_fits_saves_and_loads_as_the_cli_does(rainfall, tmp_path):
    X = rainfall.drop(columns=["Unnamed: 0", "rain"]).to_numpy(dtype=np.float32)[:2000]
    y = rainfall["rain"].to_numpy()[:2000]
    m = recur.LSTMClassifier(
        model_type="lstm-fcn", sequence_length=12, hidden_size=4, filters=(8, 16, 8),
        dropout=0.5, epochs=2, horizon=1,
    ).fit(X, y)
    p = m.predict_proba(X)
    assert p.shape == (2000, 2) and np.isnan(p[0, 1]) and np.isfinite(p[-1, 1])
    m.save(tmp_path / "fcn")
    text = (tmp_path / "fcn" / "config.yaml").read_text()
    assert "type: lstm-fcn" in text and "- 16" in text, text
    with pytest.raises(ValueError, match="num_layers"):
        recur.LSTMClassifier(model_type="lstm-fcn", num_layers=2, horizon=1).fit(X, y)
    # recur.load opens it as a Job A model (it took LSTM-FCN for an LVM).
    again = recur.load(tmp_path / "fcn")
    assert isinstance(again, recur.LSTMClassifier)
    assert same(again.predict_proba(X), p)


def test_inside_a_time_series_split(rainfall):
    from sklearn.model_selection import TimeSeriesSplit

    df = rainfall.head(4000)
    aucs = []
    for train, test in TimeSeriesSplit(n_splits=2).split(df):
        m = recur.LSTMClassifier(
            target_column="rain", horizon=1, sequence_length=8, hidden_size=8, epochs=1
        ).fit(df.iloc[train])
        p = m.predict_proba(df.iloc[test])
        assert p.shape == (len(test), 2)
        aucs.append(m.report_["val"]["auc"])
    assert len(aucs) == 2


def test_the_gil_is_released_while_rust_predicts(fitted, rainfall):
    import threading
    import time

    ticks = []
    stop = threading.Event()

    def tick():
        while not stop.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)

    t = threading.Thread(target=tick)
    t.start()
    time.sleep(0.05)
    start = time.perf_counter()
    big = pd.concat([rainfall] * 3, ignore_index=True)
    fitted.predict_proba(big)
    end = time.perf_counter()
    stop.set()
    t.join()
    during = [x for x in ticks if start < x < end]
    # With the GIL held for the whole call the thread could not tick at all.
    assert end - start > 0.2 and len(during) > 20, (end - start, len(during))


def test_progress_reaches_a_callback_and_is_off_by_default(rainfall, capsys):
    events = []
    recur.LSTMClassifier(target_column="rain", horizon=1, sequence_length=8, hidden_size=8, epochs=2,
                         progress=lambda e, text, n: events.append((e, text, n))).fit(rainfall.head(3000))
    kinds = {e for e, _, _ in events}
    assert {"start", "advance", "finish", "note"} <= kinds, kinds
    assert any("epoch" in text for e, text, _ in events if e == "note")
    recur.LSTMClassifier(target_column="rain", horizon=1, sequence_length=8, hidden_size=8,
                         epochs=1).fit(rainfall.head(3000))
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


def test_ctrl_c_stops_a_fit_between_batches(rainfall):
    """Ctrl-C (here `interrupt_main`, as the terminal's SIGINT, sent from
    the progress callback at the third epoch, so that it always comes
    mid-training) stops a long fit with KeyboardInterrupt soon after, not
    once every epoch has run (the work held no interpreter lock, so Python
    could not raise it), and leaves the estimator unfitted."""
    import _thread

    epochs = []

    def progress(event, text, n):
        if event == "note" and "epoch" in text:
            epochs.append(text)
            if len(epochs) == 3:
                _thread.interrupt_main()

    m = recur.LSTMClassifier(target_column="rain", horizon=1, sequence_length=8, hidden_size=8,
                             epochs=2000, early_stopping_patience=2000, progress=progress)
    with pytest.raises(KeyboardInterrupt):
        m.fit(rainfall.head(3000))
    assert 3 <= len(epochs) < 2000, len(epochs)
    assert not hasattr(m, "classes_")


def test_an_error_in_the_progress_callback_stops_the_fit_and_is_raised(rainfall):
    """An exception in the caller's callback is the caller's error: it
    stops the fit soon after and reaches the caller, where it was printed
    as unraisable while training ran on to its last epoch."""
    epochs = []

    def progress(event, text, n):
        if event == "note" and "epoch" in text:
            epochs.append(text)
            if len(epochs) == 2:
                raise RuntimeError("the callback's own error")

    m = recur.LSTMClassifier(target_column="rain", horizon=1, sequence_length=8, hidden_size=8,
                             epochs=2000, early_stopping_patience=2000, progress=progress)
    with pytest.raises(RuntimeError, match="the callback's own error"):
        m.fit(rainfall.head(3000))
    assert 2 <= len(epochs) < 2000, len(epochs)
    assert not hasattr(m, "classes_")


def test_a_fit_leaves_nothing_in_the_temp_dir(rainfall, tmp_path, monkeypatch):
    """A fit's private model folder, and the lock recur takes beside the
    directory it writes, go with the estimator (a lock file per fit was
    left in the temp directory)."""
    import gc
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    m = recur.LSTMClassifier(target_column="rain", horizon=1, sequence_length=8, hidden_size=4,
                             epochs=1).fit(rainfall.head(1500))
    left = sorted(p.name for p in tmp_path.iterdir())
    assert len(left) == 1 and left[0].startswith("recur-model-"), left
    del m
    gc.collect()
    assert list(tmp_path.iterdir()) == []


def test_a_float32_array_is_scored_in_place_with_the_frames_numbers(fitted, rainfall):
    import tracemalloc

    big = pd.concat([rainfall] * 2, ignore_index=True)
    X = np.ascontiguousarray(big[fitted.features_].to_numpy(dtype=np.float32))
    # The same numbers as the DataFrame's (float32 values, widened).
    frame = pd.DataFrame(X.astype(np.float64), columns=fitted.features_)
    want = fitted.predict_proba(frame)
    fitted.predict_proba(X)
    tracemalloc.start()
    got = fitted._scored(X, "probability")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert same(got, want[:, 1])
    # Only the output is allocated on the Python side: a float64 copy of
    # the input would be twice X's size, a float32 one X's size.
    assert peak < X.nbytes / 2, (peak, X.nbytes)
    # The measure sees copies: the column path converts a float32 frame to
    # float64 columns (twice X's size).
    frame32 = pd.DataFrame(X, columns=fitted.features_)
    tracemalloc.start()
    fitted._scored(frame32, "probability")
    _, peak_frame = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak_frame > X.nbytes, (peak_frame, X.nbytes)
    with pytest.raises(ValueError, match="rows"):
        fitted.predict_proba(X[:5])


# -- small models: the Python layer's own rules --------------------------

SMALL = dict(sequence_length=8, hidden_size=4, epochs=1, horizon=1, batch_size=128)


@pytest.fixture(scope="module")
def head(rainfall):
    return rainfall.head(1500)


@pytest.fixture(scope="module")
def tiny(head):
    """A small model fit on a DataFrame that holds the target, the index
    column `Unnamed: 0` and the features."""
    return recur.LSTMClassifier(target_column="rain", **SMALL).fit(head)


def test_an_array_is_read_in_fit_order_whatever_its_dtype(head):
    X = head.drop(columns=["Unnamed: 0", "rain"]).to_numpy()[:, :3]
    y = head["rain"].to_numpy()
    m = recur.LSTMClassifier(features=["x2", "x1", "x0"], **SMALL).fit(X, y)
    assert m.features_ == ["x2", "x1", "x0"] and m.n_features_in_ == 3
    want = m.predict_proba(X)
    ok = ~np.isnan(want[:, 1])
    # The columns fit saw, in fit's order, as float32 (C or Fortran order):
    # read in fit's order, not taken as the features in `features_` order.
    for X32 in [np.ascontiguousarray(X, np.float32), np.asfortranarray(X, np.float32)]:
        got = m.predict_proba(X32)
        assert np.array_equal(np.isnan(got), np.isnan(want))
        assert np.abs(got[ok] - want[ok]).max() < 1e-4
    # The same numbers as float64 give the same probabilities exactly.
    assert same(m.predict_proba(X32), m.predict_proba(X32.astype(np.float64)))


def test_a_loaded_model_scores_arrays_and_keeps_the_columns_fit_saw(tiny, head, cli_model, rainfall, tmp_path):
    tiny.save(tmp_path / "m")
    loaded = recur.load(tmp_path / "m")
    assert loaded.n_features_in_ == head.shape[1] == tiny.n_features_in_
    assert list(loaded.feature_names_in_) == list(head.columns)
    want = tiny.predict_proba(head)
    assert same(loaded.predict_proba(head.to_numpy()), want)
    assert same(loaded.predict_proba(head[tiny.features_].to_numpy(np.float64)), want)
    with pytest.raises(ValueError, match=f"give the {head.shape[1]} columns fit saw"):
        loaded.predict_proba(head.to_numpy()[:, :4])
    # A model the CLI wrote reads its features by name: a float64 array is
    # taken as those features in `features_` order.
    cli = recur.load(cli_model[0])
    assert cli.n_features_in_ == len(cli.features_) and list(cli.feature_names_in_) == cli.features_
    assert same(cli.predict_proba(rainfall[cli.features_].to_numpy(np.float64)), cli.predict_proba(rainfall))


def test_fit_with_y_apart_takes_the_default_features(head):
    X = head.drop(columns=["rain"]).assign(when=pd.date_range("2000-01-01", periods=len(head)).astype(str))
    m = recur.LSTMClassifier(time_column="when", **SMALL).fit(X, head["rain"])
    want = [c for c in head.columns if c not in ("Unnamed: 0", "rain")]
    assert m.features_ == want
    assert m.n_features_in_ == X.shape[1] and list(m.feature_names_in_) == list(X.columns)
    assert recur.LSTMClassifier(**SMALL).fit(head.drop(columns=["rain"]), head["rain"]).features_ == want


def test_a_refit_on_an_array_drops_the_frames_names(head):
    X = head.drop(columns=["Unnamed: 0", "rain"])
    m = recur.LSTMClassifier(**SMALL).fit(X, head["rain"])
    assert hasattr(m, "feature_names_in_")
    m.fit(X.to_numpy(), head["rain"].to_numpy())
    assert not hasattr(m, "feature_names_in_") and m.features_[0] == "x0"
    assert m.predict_proba(X.to_numpy()).shape == (len(X), 2)


def test_sklearn_scorers_need_the_rows_with_a_label(head):
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import TimeSeriesSplit, cross_val_score

    X, y = head.drop(columns=["Unnamed: 0", "rain"]), head["rain"].to_numpy()
    est = recur.LSTMClassifier(**SMALL)

    def roc_auc(e, X, y):  # the README's scorer
        r = e.score_rows(X, y)
        ok = ~np.isnan(r["label"]) & ~np.isnan(r["probability"])
        return roc_auc_score(r["label"][ok], r["probability"][ok])

    cv = TimeSeriesSplit(n_splits=2)
    for scoring in [None, roc_auc]:
        got = cross_val_score(est, X, y, cv=cv, scoring=scoring, error_score="raise")
        assert got.shape == (2,) and np.isfinite(got).all() and ((0 <= got) & (got <= 1)).all(), got


def test_duplicate_column_names_are_named(head):
    bad = head.rename(columns={"dew point": "temperature"})
    with pytest.raises(ValueError, match="X: two columns are named 'temperature'"):
        recur.LSTMClassifier(target_column="rain", **SMALL).fit(bad)


def test_positive_label_is_for_whole_series(head):
    y = np.where(head["rain"] == 1, "wet", "dry")
    with pytest.raises(ValueError, match="positive_label .* applies to whole series only .*SequenceClassifier"):
        recur.LSTMClassifier(positive_label="wet", **SMALL).fit(head.drop(columns=["rain"]), y)


def test_save_refuses_an_empty_path_and_follows_a_link(tiny, head, tmp_path):
    import os

    with pytest.raises(ValueError, match="path is empty"):
        tiny.save("")
    (tmp_path / "real").mkdir()
    os.symlink(tmp_path / "real", tmp_path / "link")
    tiny.save(tmp_path / "link")
    assert (tmp_path / "real" / "model.safetensors").exists()
    assert same(recur.load(tmp_path / "link").predict_proba(head), tiny.predict_proba(head))


def test_tags_say_binary_only():
    tags = recur.LSTMClassifier().__sklearn_tags__()
    assert tags.classifier_tags.multi_class is False and tags.estimator_type == "classifier"


def test_a_loaded_model_carries_its_own_files(tiny, head, tmp_path):
    import io
    import shutil
    import tarfile

    path = tmp_path / "m"
    tiny.save(path)
    # Not the model's: a folder inside (the demo keeps other models there)
    # and a lock beside it.
    (path / "sub").mkdir()
    (path / "sub" / "big.bin").write_bytes(b"x" * 100_000)
    (path / ".sub.lock").write_bytes(b"")
    # A report.html that is a link (to a secret) is not carried along: no
    # manifest hash vouches for it, and pickles travel.
    secret = tmp_path / "secret.txt"
    secret.write_text("TOKEN=abc123")
    (path / "report.html").symlink_to(secret)
    with pytest.warns(UserWarning, match="links out of the model directory"):
        loaded = recur.load(path)
    want = loaded.predict_proba(head)
    listed = set(json.loads((path / "manifest.json").read_text())["files"])
    state = loaded.__getstate__()
    assert b"abc123" not in state["_model_dir_tar"]
    with tarfile.open(fileobj=io.BytesIO(state["_model_dir_tar"])) as tar:
        names = set(tar.getnames())
    assert names == listed | {"manifest.json", ".recur-python.json"}, names
    (path / "report.html").unlink()
    # The folder replaced by another model, then gone: the pickle and
    # save hold the model that was loaded.
    shutil.rmtree(path)
    recur.LSTMClassifier(target_column="rain", **{**SMALL, "seed": 7}).fit(head).save(path)
    assert not same(recur.load(path).predict_proba(head), want)
    assert same(pickle.loads(pickle.dumps(loaded)).predict_proba(head), want)
    shutil.rmtree(path)
    loaded.save(tmp_path / "again")
    assert same(recur.load(tmp_path / "again").predict_proba(head), want)
    assert pickle.loads(pickle.dumps(loaded)).n_features_in_ == head.shape[1]


def test_numbers_held_as_objects_are_numbers_and_bad_y_is_named_as_y(fitted, rainfall, tmp_path):
    """As scikit-learn's check_array converts them: a column of Decimal,
    of numeric text or of objects scores as the float column it holds
    (it was refused as "not numeric: row 0 holds `-0.82`"); a bad y is
    named as y, not as a column of X."""
    import decimal
    import os
    import warnings

    X = rainfall.head(600)
    want = fitted.predict_proba(X)
    col = fitted.features_[0]
    for conv in (lambda s: s.astype(object), lambda s: s.astype(str),
                 lambda s: s.map(lambda v: decimal.Decimal(repr(v)))):
        Y = X.copy()
        Y[col] = conv(Y[col])
        assert same(fitted.predict_proba(Y), want)
    Y = X.copy()
    Y[col] = Y[col].astype(object)
    Y.loc[Y.index[5], col] = "dry"
    with pytest.raises(ValueError, match=f"`{col}`"):
        fitted.predict_proba(Y)

    Xf = rainfall.head(600).drop(columns=["rain"])
    y = rainfall["rain"].head(600).astype(float).to_numpy()
    kw = dict(horizon=1, sequence_length=8, hidden_size=4, epochs=1)
    for bad, shown in ((np.nan, "nan"), ("dry", "'dry'")):
        yy = y.astype(object)
        yy[7] = bad
        with pytest.raises(ValueError, match=rf"y\[7\] is {shown}"):
            recur.LSTMClassifier(**kw).fit(Xf, yy)
    yy = y.copy()
    yy[9] = np.inf
    with pytest.raises(ValueError, match=r"y\[9\] is inf: y holds labels 0/1"):
        recur.LSTMClassifier(**kw).fit(Xf, yy)
    with pytest.raises(ValueError, match="X has no columns"):
        recur.LSTMClassifier(**kw).fit(np.zeros((600, 0)), y)

    # Fitted on an array, given a frame: its columns by position, with
    # scikit-learn's warning.
    num = Xf.select_dtypes("number")
    m = recur.LSTMClassifier(**kw).fit(num.to_numpy(), y)
    with pytest.warns(UserWarning, match="fitted without feature names"):
        got = m.predict_proba(num)
    assert same(got, m.predict_proba(num.to_numpy()))

    # A bytes path is a path.
    m.save(os.fsencode(tmp_path / "b"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert same(recur.load(tmp_path / "b").predict_proba(num.to_numpy()), m.predict_proba(num.to_numpy()))


def test_missing_times_score_rows_as_a_table_and_errors_in_the_users_words(head, tmp_path):
    """A row without a time is taken in file order, as `recur train` and
    `predict` take an empty cell (str() made it `nan`/`NaT`, refused as
    "not a date"); score_rows is a table pandas takes, with the time of
    each row; a short float32 array, a frame without columns and bad
    keywords are said in the user's terms; BatchScorer keeps the index."""
    X = head.drop(columns=["rain"]).assign(when=pd.date_range("2000-01-01", periods=len(head)))
    X.loc[X.index[40], "when"] = pd.NaT
    m = recur.LSTMClassifier(time_column="when", **SMALL).fit(X, head["rain"])
    as_text = X.assign(when=X["when"].astype(object).where(X["when"].notna(), None))
    assert same(m.predict_proba(as_text), m.predict_proba(X))
    as_dict = {c: X[c].tolist() for c in X.columns}
    as_dict["when"] = [float("nan") if pd.isna(t) else str(t.date()) for t in X["when"]]
    assert same(m.predict_proba(as_dict), m.predict_proba(X))
    # Numbers held as text in a dict are numbers, as in a frame.
    f0 = m.features_[0]
    as_dict[f0] = [repr(v) for v in X[f0]]
    assert same(m.predict_proba(as_dict), m.predict_proba(X))
    r = m.score_rows(X)
    table = pd.DataFrame(r)
    assert list(table.columns[:2]) == ["row", "when"] and len(table) == len(r["row"])
    got, want = table["when"].to_numpy(), X["when"].to_numpy()[r["row"]]
    assert bool(((got == want) | (pd.isna(got) & pd.isna(want))).all()) and pd.isna(got).sum() == 1

    feats = m.features_
    short = np.zeros((3, len(feats)), np.float32)
    with pytest.raises(ValueError, match="3 rows, but the model's first prediction needs"):
        m.score_rows(short)
    with pytest.raises(ValueError, match="X has no columns"):
        m.predict_proba(X[[]])
    with pytest.raises(ValueError) as e:
        recur.LSTMClassifier(hidden_size=-1, target_column="rain", **{k: v for k, v in SMALL.items() if k != "hidden_size"}).fit(head)
    assert "hidden_size" in str(e.value) and "at line" not in str(e.value)
    with pytest.raises(ValueError, match=r"^y \(the target `target`\) must be binary"):
        recur.LSTMClassifier(**SMALL).fit(head.drop(columns=["rain"]).to_numpy(), head["rain"].to_numpy() * 2)

    d = tmp_path / "m"
    m.save(str(d))
    shifted = X.copy()
    shifted.index = shifted.index + 1000
    out = recur.BatchScorer(str(d))(shifted)
    assert list(out.index) == list(shifted.index)
    assert same(out["probability"], m.predict_proba(X)[:, 1])


def test_unaligned_sparse_and_the_name_of_y(fitted, rainfall, tmp_path):
    """An unaligned array (a memmap after an odd-sized header) scores as
    its aligned copy, where the bindings refused it with a TypeError; a
    sparse matrix is refused by name; the package's own name for an
    unnamed y (or X's x0, x1, ... of an array) never clashes with X."""
    X = rainfall.head(600)
    a32 = np.ascontiguousarray(X[fitted.features_].to_numpy(np.float32))
    path = tmp_path / "rows.bin"
    path.write_bytes(b"HDR" + a32.tobytes())
    mm = np.memmap(path, dtype=np.float32, mode="r", offset=3, shape=a32.shape)
    assert not mm.flags.aligned
    assert same(fitted.predict_proba(mm), fitted.predict_proba(a32))
    cols = {c: np.frombuffer(b"\0" + X[c].to_numpy(np.float64).tobytes(), np.float64, offset=1)
            for c in fitted.features_}
    assert not next(iter(cols.values())).flags.aligned
    assert same(fitted.predict_proba(cols), fitted.predict_proba(X[fitted.features_]))

    import scipy.sparse as sparse
    with pytest.raises(ValueError, match=r"sparse matrix \(csr_matrix\).*toarray"):
        fitted.predict_proba(sparse.csr_matrix(a32))

    kw = dict(horizon=1, sequence_length=8, hidden_size=4, epochs=1)
    y = X["rain"].to_numpy()
    Xt = X[["temperature", "dew point"]].rename(columns={"dew point": "target"})
    # A named X's column `target` beside an unnamed y may be the label
    # itself: refused, saying how to go on; a named y of another name fits.
    with pytest.raises(ValueError, match="X has a column `target`, the name an unnamed y takes"):
        recur.LSTMClassifier(**kw).fit(Xt, y)
    assert recur.LSTMClassifier(**kw).fit(Xt, X["rain"]).features_ == ["temperature", "target"]
    m = recur.LSTMClassifier(**kw).fit(Xt.to_numpy(), X["rain"].rename("x0"))
    assert m.predict_proba(Xt.to_numpy()).shape == (600, 2)
    # A named y that is a column of the frame is the label among the
    # features: still refused.
    for named in (X[["temperature", "rain"]], {c: X[c].to_numpy() for c in ("temperature", "rain")}):
        with pytest.raises(ValueError, match="y is named `rain`, a column of X too"):
            recur.LSTMClassifier(**kw).fit(named, X["rain"])


def _proba(m, X):
    return m.predict_proba(X)


def test_a_child_made_by_fork_predicts_as_its_parent(rainfall):
    """A forked child (multiprocessing's default start method on Linux,
    gunicorn's preload) has none of its parent's threads: recur's pool,
    made in the parent, took the child's work and never ran it, so every
    call in the child hung."""
    import multiprocessing as mp

    m = recur.LSTMClassifier(target_column="rain", horizon=1, sequence_length=8, hidden_size=8,
                             epochs=1).fit(rainfall.head(2000))
    X = rainfall.iloc[2000:2300]
    want = m.predict_proba(X)
    with mp.get_context("fork").Pool(1) as pool:
        got = pool.apply_async(_proba, (m, X)).get(timeout=120)
    np.testing.assert_array_equal(got, want)


def test_a_fit_started_in_a_progress_callback_runs_on_one_worker(tmp_path):
    """A fit started from a progress callback (here with a pool of one
    worker, as in a one-CPU container) queued its work behind the worker
    that waited for it, and hung for ever."""
    script = tmp_path / "nested.py"
    script.write_text(
        "import numpy as np, recur\n"
        "rng = np.random.default_rng(0)\n"
        "X, y = rng.normal(size=(300, 2)), (np.arange(300) % 3 == 0).astype(int)\n"
        "inner = []\n"
        "def progress(event, text, n):\n"
        "    if event == 'start' and not inner:\n"
        "        inner.append(recur.LSTMClassifier(sequence_length=4, hidden_size=2, epochs=1).fit(X, y))\n"
        "recur.LSTMClassifier(sequence_length=4, hidden_size=2, epochs=1, progress=progress).fit(X, y)\n"
        "print('both', len(inner))\n"
    )
    env = dict(os.environ, RAYON_NUM_THREADS="1")
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0 and "both 1" in r.stdout, r.stderr


def test_a_polars_frame_is_read_as_the_pandas_one(rainfall):
    """A polars DataFrame with a text column failed inside the package
    (`'Series' object has no attribute 'isna'`); it reads as its pandas
    conversion does."""
    import polars as pl

    df = rainfall.head(1500).copy()
    df["station"] = "A"
    m = recur.LSTMClassifier(target_column="rain", horizon=1, sequence_length=8, hidden_size=8,
                             epochs=1).fit(df)
    want = m.predict_proba(df)
    np.testing.assert_array_equal(m.predict_proba(pl.from_pandas(df)), want)
    np.testing.assert_array_equal(m.predict_proba(pl.from_pandas(df).lazy()), want)


def test_a_saved_config_with_settings_its_model_does_not_read_still_reads(tmp_path, recur_bin):
    """`recur train` now refuses LSTM-FCN's settings on an lstm, but a
    model directory's config.yaml written before holds them: the package
    reads it (and ignores them, as scikit-learn's estimators ignore
    parameters their model does not use)."""
    p = tmp_path / "config.yaml"
    p.write_text("data: {target: {column: rain, horizon: 1}}\nmodel: {type: lstm, filters: [8, 8, 8]}\n")
    params = recur.config_params(p)
    assert tuple(params["filters"]) == (8, 8, 8) and params["target_column"] == "rain"
    r = subprocess.run([recur_bin, "train", "--config", str(p), "--out", str(tmp_path / "m")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "model.shuffle / filters / kernels" in r.stderr, r.stderr


def test_masked_entries_are_never_read_as_numbers(tiny, head):
    X = head.drop(columns=["Unnamed: 0"])[tiny.features_].to_numpy(dtype=np.float32)
    m = np.ma.masked_array(X, mask=np.zeros_like(X, dtype=bool))
    # Nothing masked: the array's own numbers.
    assert same(tiny.predict_proba(m), tiny.predict_proba(X))
    m[100, 1] = np.ma.masked
    with pytest.raises(ValueError, match=r"X is a masked array with 1 masked entries \(the first at \[100, 1\]\)"):
        tiny.predict_proba(m)
    y = np.ma.masked_array(head["rain"].to_numpy(), mask=np.arange(len(head)) == 7)
    with pytest.raises(ValueError, match=r"y is a masked array .* \[7\]"):
        recur.LSTMClassifier(**SMALL).fit(head.drop(columns=["rain"]), y)


def test_a_float32_array_holding_the_target_gets_its_labels_and_checks(head):
    # The target `rain` is one of the features (as in the bundled
    # configs): the labels come from it, on the float32 array as on a
    # frame, and it is checked the same.
    m = recur.LSTMClassifier(target_column="rain", features=("temperature", "rain"), **SMALL).fit(head)
    feats = m.features_
    X32 = np.ascontiguousarray(head[feats].to_numpy(dtype=np.float32))
    frame = pd.DataFrame(X32.astype(np.float64), columns=feats)
    got, want = m.score_rows(X32), m.score_rows(frame)
    assert np.isfinite(got["label"]).sum() > 1000
    assert same(got["label"], want["label"]) and same(got["probability"], want["probability"])
    bad = X32.copy()
    bad[2, feats.index("rain")] = 10
    with pytest.raises(ValueError, match="must be binary"):
        m.score_rows(bad)
    # On the float32 path too, a NaN is named as one (not "beyond float32").
    nan = np.ascontiguousarray(X32[:, [feats.index("temperature")]])
    m2 = recur.LSTMClassifier(target_column="rain", features=("temperature",), **SMALL).fit(head)
    nan[500, 0] = np.nan
    with pytest.raises(ValueError, match="is NaN"):
        m2.predict_proba(nan)


def test_score_refuses_weights_it_cannot_average(tiny, head):
    frame, y = head.copy(), head["rain"]
    w = np.ones(len(head))
    assert 0 <= tiny.score(frame, y, sample_weight=w) <= 1
    w[3] = np.nan
    with pytest.raises(ValueError, match=r"sample_weight\[3\] is nan"):
        tiny.score(frame, y, sample_weight=w)
    with pytest.raises(ValueError, match="sample_weight sums to 0"):
        tiny.score(frame, y, sample_weight=np.zeros(len(head)))


def test_an_object_array_of_numbers_is_read_as_numbers(tiny, head):
    X = head[tiny.features_].to_numpy(dtype=np.float64)
    assert same(tiny.predict_proba(X.astype(object)), tiny.predict_proba(X))
    # Complex items are refused, not cut to their real part.
    Z = X.astype(object)
    Z[3, 1] = 1 + 2j
    with pytest.raises(ValueError, match="dtype object"):
        tiny.predict_proba(Z)
    # A dict of one value a column is one row: too few, and said so.
    with pytest.raises(ValueError, match="1 row"):
        tiny.predict_proba({f: 1.0 for f in tiny.features_})
    # One scalar among columns of 60 rows: the lengths, not a row count.
    cols = {f: head[f].to_numpy()[:60] for f in tiny.features_}
    cols[tiny.features_[0]] = 1.0
    with pytest.raises(ValueError, match="different lengths"):
        tiny.predict_proba(cols)


def test_a_fit_raises_what_training_noted(head):
    # A listed feature constant on the training rows: kept, and said.
    frame = head.assign(flat=5.0)
    with pytest.warns(recur.TrainingWarning, match="`flat` \\(5\\) never changes on the training rows"):
        m = recur.LSTMClassifier(target_column="rain", features=("temperature", "flat"), **SMALL).fit(frame)
    assert any("flat" in w for w in m.report_["warnings"])
    assert "note: " in m.report_text_ and "flat" in m.report_text_


def test_a_dropped_default_feature_and_an_empty_text_cell_are_said_as_the_cli_says_them(head, tiny):
    # A default feature constant on the training rows is left out, and
    # raised as recur train prints it: a warning.
    frame = head.assign(zero=0.0)
    with pytest.warns(recur.TrainingWarning, match="`zero` never changes on the training rows \\(0, "):
        m = recur.LSTMClassifier(target_column="rain", **SMALL).fit(frame)
    assert "zero" not in m.features_
    # An empty string in a column of numbers held as text is an empty
    # cell: refused by its row, as the CLI refuses the CSV's empty cell.
    f = tiny.features_[0]
    X = head.copy()
    X[f] = X[f].map(repr).astype(object)
    X.loc[X.index[50], f] = ""
    with pytest.raises(ValueError, match=f"column `{re.escape(f)}`, row 50.*empty or NaN"):
        tiny.predict_proba(X)
    # No label at all: more rows would not help, and the error says so.
    with pytest.raises(ValueError, match="no row of X has a label to score against"):
        tiny.score(head.drop(columns="rain"), np.full(len(head), np.nan))

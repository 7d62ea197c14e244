"""SequenceClassifier: whole series per sample, several classes, channels
and lengths, against the CLI on the same model directory."""

import csv
import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.metrics import accuracy_score, log_loss

import recur
from conftest import run


def three_classes(n, seed, lengths=(10, 24)):
    """`n` series of 2 channels and varying length: `up` rises in channel
    0, `down` falls, `flat` rises in channel 1; noise on both."""
    rng = np.random.default_rng(seed)
    X, y = [], []
    for i in range(n):
        c = ["up", "down", "up", "flat"][i % 4]
        t = np.arange(rng.integers(*lengths))
        a, b = {"up": (0.1, 0.0), "down": (-0.1, 0.0), "flat": (0.0, 0.1)}[c]
        X.append(np.column_stack([a * t, b * t]) + rng.uniform(-0.5, 0.5, (len(t), 2)))
        y.append(c)
    return X, np.array(y)


def write_ts(path, X, y):
    with open(path, "w") as f:
        f.write("@problemName Three\n@equalLength false\n@classLabel true down flat up\n@data\n")
        for x, c in zip(X, y):
            chans = [",".join(f"{v:.17g}" for v in x[:, j]) for j in range(x.shape[1])]
            f.write(":".join(chans) + f":{c}\n")


@pytest.fixture(scope="module")
def fitted():
    X, y = three_classes(200, 0)
    est = recur.SequenceClassifier(model_type="lstm", hidden_size=12, dropout=0.0, learning_rate=0.01,
                                   batch_size=16, epochs=20, early_stopping_patience=20)
    return est.fit(X, y)


def test_many_classes_of_many_lengths_fit_and_predict(fitted):
    assert list(fitted.classes_) == ["down", "flat", "up"]
    X, y = three_classes(90, 1)
    p = fitted.predict_proba(X)
    assert p.shape == (90, 3)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-9)
    pred = fitted.predict(X)
    assert accuracy_score(y, pred) > 0.85
    assert list(pred) == list(fitted.classes_[p.argmax(axis=1)])
    assert log_loss(y, p, labels=fitted.classes_) < 0.5
    assert fitted.temperature_ > 0
    assert "macro F1" in fitted.report_text_
    # A series alone scores as it does among the others.
    for i in (0, 7, 33):
        np.testing.assert_allclose(fitted.predict_proba([X[i]])[0], p[i], atol=1e-6)


def test_the_saved_model_is_the_clis(fitted, recur_bin, tmp_path):
    X, y = three_classes(40, 2)
    path = tmp_path / "m"
    fitted.save(str(path))
    ts = tmp_path / "test.ts"
    write_ts(ts, X, y)
    out = tmp_path / "p.csv"
    run(recur_bin, "predict", "--model", str(path), "--input", str(ts), "--output", str(out))
    with open(out) as f:
        rows = list(csv.DictReader(f))
    cli = np.array([[float(r[f"p_{c}"]) for c in ("down", "flat", "up")] for r in rows])
    np.testing.assert_allclose(cli, fitted.predict_proba(X), atol=1e-6)
    loaded = recur.load(str(path))
    assert isinstance(loaded, recur.SequenceClassifier)
    np.testing.assert_allclose(loaded.predict_proba(X), fitted.predict_proba(X))
    again = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_allclose(again.predict_proba(X), fitted.predict_proba(X))


def test_two_classes_keep_the_labels_and_the_threshold():
    X, y = three_classes(160, 3)
    keep = y != "flat"
    X2 = [x for x, k in zip(X, keep) if k]
    y2 = np.where(y[keep] == "up", 1, 0)
    est = recur.SequenceClassifier(model_type="lstm-fcn", shuffle=False, hidden_size=4,
                                   filters=(8, 8, 8), dropout=0.0, epochs=10, batch_size=16)
    est.fit(X2, y2)
    assert list(est.classes_) == [0, 1]
    p = est.predict_proba(X2)
    assert p.shape == (len(X2), 2)
    assert set(est.predict(X2)) <= {0, 1}
    assert 0.0 <= est.threshold_ <= 1.0
    assert clone(est).get_params() == est.get_params()


def test_nan_is_a_missing_value_filled_within_its_channel(fitted):
    """NaN (as aeon and sktime mark a missing value) is filled as the `?`
    of a .ts file is: linearly between the nearest known values of its
    channel, held at the ends."""
    X, _ = three_classes(3, 5)
    x = X[0].copy()
    holes = x.copy()
    holes[[0, 3, 4, len(x) - 1], 1] = np.nan
    filled = x.copy()
    filled[0, 1] = x[1, 1]
    filled[3, 1] = x[2, 1] + (x[5, 1] - x[2, 1]) / 3
    filled[4, 1] = x[2, 1] + 2 * (x[5, 1] - x[2, 1]) / 3
    filled[-1, 1] = x[-2, 1]
    np.testing.assert_allclose(fitted.predict_proba([holes]), fitted.predict_proba([filled]), atol=1e-12)
    # The holes mattered: the original series scores otherwise.
    diff = np.log(fitted.predict_proba([holes])) - np.log(fitted.predict_proba([x]))
    assert np.abs(diff).max() > 1e-9


def test_bad_input_says_what_is_wrong(fitted):
    with pytest.raises(ValueError, match="one label per series"):
        recur.SequenceClassifier().fit([np.zeros((5, 1))] * 3, [0, 1])
    with pytest.raises(ValueError, match=r"y\[1\] is missing"):
        recur.SequenceClassifier(epochs=1).fit([np.random.rand(5, 1) for _ in range(4)], [0.0, np.nan, 1.0, 0.0])
    with pytest.raises(ValueError, match="at least two"):
        recur.SequenceClassifier(epochs=1).fit([np.random.rand(5, 1) for _ in range(10)], ["a"] * 10)
    with pytest.raises(ValueError, match="not a finite number"):
        fitted.predict_proba([np.array([[0.0, np.inf]] * 5)])
    with pytest.raises(ValueError, match="every value of channel 1 is NaN"):
        fitted.predict_proba([np.array([[0.0, np.nan]] * 5)])
    with pytest.raises(ValueError, match="trained on 2"):
        fitted.predict_proba([np.zeros((5, 3))])
    with pytest.raises(ValueError, match="at least one step"):
        fitted.predict_proba([np.zeros((0, 2))])
    with pytest.raises(ValueError, match="X is one value"):
        fitted.predict(np.float64(1))
    # Not an array at all: scikit-learn's TypeError.
    for bad in [None, "x", {}]:
        with pytest.raises(TypeError, match="X is"):
            fitted.predict_proba(bad)
    with pytest.raises(TypeError, match="y is NoneType"):
        recur.SequenceClassifier().fit([np.zeros((5, 2))] * 4, None)
    # A setting's error names the keyword, without serde's position in
    # the JSON the user never saw.
    with pytest.raises(ValueError, match=r"model.hidden_size \(the keyword hidden_size\)") as e:
        recur.SequenceClassifier(hidden_size=-3).fit([np.zeros((5, 2))] * 4, [0, 1] * 2)
    assert "column" not in str(e.value)
    # Both settings of a message that names two.
    with pytest.raises(ValueError, match=r"\(the keywords hidden_size, num_layers\)"):
        recur.SequenceClassifier(num_layers=0).fit([np.zeros((5, 2))] * 4, [0, 1] * 2)
    with pytest.raises(TypeError, match="progress is str 'no'"):
        recur.SequenceClassifier(progress="no").fit([np.zeros((5, 2))] * 4, [0, 1] * 2)
    with pytest.raises(recur._sequence.NotFittedError):
        recur.SequenceClassifier().predict_proba([np.zeros((5, 2))])


TINY = dict(hidden_size=2, epochs=1, filters=(4, 4, 4), kernels=(3, 3, 1), batch_size=16)


@pytest.mark.parametrize("y", [np.array([0, 1] * 30), np.array([0, 1, 2] * 20), np.array(["neg", "pos"] * 30),
                               np.array([1.5, 2.5] * 30)])
def test_a_loaded_model_has_the_callers_classes(y, tmp_path):
    X = np.random.default_rng(0).normal(size=(60, 12, 1))
    m = recur.SequenceClassifier(**TINY).fit(X, y)
    assert list(m.classes_) == sorted(set(y.tolist()))
    m.save(tmp_path / "m")
    for again in [recur.load(tmp_path / "m"), pickle.loads(pickle.dumps(recur.load(tmp_path / "m")))]:
        assert list(again.classes_) == list(m.classes_) and again.classes_.dtype == m.classes_.dtype
        assert list(again.predict(X)) == list(m.predict(X))
        assert again.predict(X).dtype == m.classes_.dtype


def test_labels_keep_their_dtype_and_a_continuous_target_is_refused(tmp_path):
    """float32 or int8 labels came back float64 or int64; a continuous y
    (every value its own) trained a softmax of as many classes."""
    X = np.random.default_rng(0).normal(size=(60, 12, 1))
    for y in [np.array([1, 2, 3] * 20, dtype=np.float32), np.array([0, 1] * 30, dtype=np.int8),
              np.array(["b", "a"] * 30, dtype=object),
              np.array([np.int64(1), np.int64(0)] * 30, dtype=object)]:
        m = recur.SequenceClassifier(**TINY).fit(X, y)
        assert m.classes_.dtype == y.dtype and m.predict(X).dtype == y.dtype
        # As np.unique gives them (object labels came back as text, <U1).
        assert m.classes_.dtype == np.unique(y).dtype
        where = tmp_path / f"{y.dtype.name}-{type(y[0]).__name__}"
        m.save(where)
        again = recur.load(where)
        assert again.classes_.dtype == y.dtype
        # The values too (NumPy scalars in an object array came back as text).
        assert list(again.classes_) == list(m.classes_)
    with pytest.raises(ValueError, match="a continuous target"):
        recur.SequenceClassifier(**TINY).fit(X, np.random.default_rng(1).normal(size=60))


def test_a_frame_is_a_2d_array_and_complex_is_refused():
    import pandas as pd
    from sklearn.exceptions import DataConversionWarning

    X = np.random.default_rng(1).normal(size=(40, 12))
    y = np.array([0, 1] * 20)
    with pytest.warns(DataConversionWarning):
        m = recur.SequenceClassifier(**TINY).fit(pd.DataFrame(X), y.reshape(-1, 1))
    assert m.n_features_in_ == 1
    np.testing.assert_array_equal(m.predict_proba(pd.DataFrame(X)), m.predict_proba(X))
    for bad in [X.astype(complex), [X[0].astype(complex)], pd.DataFrame(X.astype(complex))]:
        with pytest.raises(ValueError, match="complex numbers"):
            m.predict_proba(bad)
    with pytest.raises(ValueError, match="column 'a' .* numbers are needed"):
        m.predict_proba(pd.DataFrame({"a": ["x", "y"], "b": [1.0, 2.0]}))


def test_tags_say_3d_and_nan():
    tags = recur.SequenceClassifier().__sklearn_tags__()
    assert tags.input_tags.three_d_array and tags.input_tags.allow_nan


@pytest.mark.parametrize("y, kw", [(np.array(["a", "b"] * 30), {"positive_label": "a"}),
                                   (np.array(["9", "10"] * 30), {}),
                                   (np.array(["1", "9", "10"] * 20), {})])
def test_classes_are_in_numpys_order_as_scikit_learns_scorers_read_them(y, kw):
    """`classes_` is `np.unique(y)`, and `predict_proba`'s columns follow
    it: scikit-learn's scorers pair the columns with sorted classes (a
    perfect model scored ROC AUC 0.0 with the positive label first, or
    with '9' before '10')."""
    from sklearn.metrics import get_scorer

    rng = np.random.default_rng(0)
    codes = np.unique(y, return_inverse=True)[1]
    X = rng.normal(size=(len(y), 16, 1)) * 0.1 + 2.0 * codes[:, None, None]
    m = recur.SequenceClassifier(model_type="lstm", hidden_size=8, dropout=0.0, learning_rate=0.02,
                                 epochs=40, batch_size=16, **kw).fit(X, y)
    assert list(m.classes_) == list(np.unique(y))
    p = m.predict_proba(X)
    assert list(m.classes_[p.argmax(axis=1)]) == list(y)
    assert list(m.predict(X)) == list(y)
    scorer = "roc_auc" if len(m.classes_) == 2 else "roc_auc_ovr"
    assert get_scorer(scorer)(m, X, y) > 0.99
    if len(m.classes_) == 2:
        # threshold_ applies to positive_class_'s column, wherever it is.
        col = list(m.classes_).index(m.positive_class_)
        assert m.positive_class_ == kw.get("positive_label", m.positive_class_)
        assert list(p[:, col] >= m.threshold_) == list(m.predict(X) == m.positive_class_)


def test_a_value_beyond_float32_is_refused_when_scoring(fitted):
    """As fit refuses it: the float32 cast made it infinite and the
    probabilities NaN, which predict read as the first class."""
    X, _ = three_classes(2, 9)
    X[0][3, 0] = 1e39
    for f in (fitted.predict_proba, fitted.predict):
        with pytest.raises(ValueError, match="series 0, step 3, dimension 0: 1e39 is beyond float32"):
            f(X)


def test_array_likes_sparse_and_a_numeric_positive_label(fitted):
    """An object with numpy's __array__ only scores as its array (it was
    "'AL' object is not iterable"); a sparse matrix is refused by name;
    positive_label=1 names the class numpy writes 1.0."""
    m = fitted
    X, _ = three_classes(6, 5, lengths=(16, 17))

    class ArrayLike:
        def __init__(self, a):
            self.a = a

        def __array__(self, dtype=None, copy=None):
            return np.asarray(self.a, dtype=dtype)

    dense = np.array(X)
    assert dense.shape == (6, 16, 2)
    assert np.array_equal(m.predict_proba(ArrayLike(dense)), m.predict_proba(dense))
    import scipy.sparse as sparse
    with pytest.raises(ValueError, match="sparse matrix"):
        m.predict_proba(sparse.csr_matrix(dense[:, :, 0]))

    rng = np.random.default_rng(3)
    Xs = rng.standard_normal((40, 12, 1))
    y = np.array([0.0, 1.0] * 20)
    Xs[y == 1] += np.linspace(0, 2, 12)[None, :, None]
    c = recur.SequenceClassifier(model_type="lstm", epochs=2, hidden_size=4, batch_size=8, positive_label=1)
    c.fit(Xs, y)
    assert list(c.classes_) == [0.0, 1.0]


def test_pandas_na_masked_entries_and_matrices(fitted):
    import pandas as pd

    X = [np.random.RandomState(i).rand(6, 1) for i in range(6)]
    y = pd.Series(["a", "b", pd.NA, "a", "b", "a"], dtype="string")
    with pytest.raises(ValueError, match=r"y\[2\] is missing"):
        recur.SequenceClassifier(epochs=1).fit(X, y)
    # A masked entry is a missing value, as NaN is for this estimator.
    Xf, _ = three_classes(4, 7, lengths=(12, 13))
    a = np.ma.masked_array(np.array(Xf), mask=np.zeros((4, 12, 2), dtype=bool))
    a[0, 3, 1] = np.ma.masked
    filled = np.array(Xf)
    filled[0, 3, 1] = np.nan
    assert np.array_equal(fitted.predict_proba(a), fitted.predict_proba(filled))
    # An np.matrix [n, T] is the 2-D array it holds (one channel).
    one = recur.SequenceClassifier(epochs=1, hidden_size=4).fit(
        np.random.RandomState(0).rand(20, 8), [0, 1] * 10
    )
    M = np.random.RandomState(1).rand(5, 8)
    assert np.array_equal(one.predict_proba(np.matrix(M)), one.predict_proba(M))


def test_a_copy_without_the_hidden_sidecar_says_its_classes_are_text(tmp_path):
    import shutil
    import warnings

    X = np.random.RandomState(0).rand(30, 8)
    y = np.array([3, 7, 10] * 10)
    m = recur.SequenceClassifier(epochs=1, hidden_size=4).fit(X, y)
    m.save(tmp_path / "m")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert recur.load(tmp_path / "m").classes_.tolist() == [3, 7, 10]
    # `cp dir/*` leaves hidden files behind.
    (tmp_path / "copy").mkdir()
    for f in (tmp_path / "m").iterdir():
        if not f.name.startswith("."):
            shutil.copy(f, tmp_path / "copy" / f.name)
    with pytest.warns(UserWarning, match="lacks .recur-python.json"):
        again = recur.load(tmp_path / "copy")
    assert again.classes_.tolist() == ["10", "3", "7"]

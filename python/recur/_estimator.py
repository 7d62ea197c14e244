"""`LSTMClassifier`: recur's Job A model as a scikit-learn estimator.

`fit(X, y)` trains the whole model that `recur train` trains (feature
selection, the LSTM, trees, the blend, calibration, the threshold) into a
model directory; `predict_proba`, `predict` and `decision_function` apply
all of it, as `recur predict` does. The rows of `X` are in time order.

Alignment: a window needs `sequence_length - 1` earlier rows (more with
lags or smoothing), so the first rows of `X` have no prediction. Every
method returns one value per row of `X`, NaN where there is none: row `i`
of the output is the CLI's `row` `i` of the same table. `score_rows(X)`
gives the CLI's whole `recur predict` table.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sys
import tarfile
import tempfile
import weakref
from typing import Any

import numpy as np

from . import _config
from . import _recur

try:  # scikit-learn conventions when it is installed
    from sklearn.base import BaseEstimator, ClassifierMixin
    from sklearn.exceptions import NotFittedError
except ImportError:  # pragma: no cover - the package works without it
    import inspect

    class BaseEstimator:  # type: ignore[no-redef]
        """get_params / set_params as scikit-learn's, without it."""

        def get_params(self, deep: bool = True) -> dict:
            names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
            return {n: getattr(self, n) for n in names}

        def set_params(self, **params: Any) -> "BaseEstimator":
            valid = self.get_params()
            for k, v in params.items():
                if k not in valid:
                    raise ValueError(f"invalid parameter {k!r} for {type(self).__name__}")
                setattr(self, k, v)
            return self

    class ClassifierMixin:  # type: ignore[no-redef]
        pass

    class NotFittedError(ValueError, AttributeError):  # type: ignore[no-redef]
        pass


def _progress_callback(progress: Any):
    """None, a callable `f(event, text, n)`, or True for a tqdm bar (or
    lines on stderr without tqdm)."""
    if not progress:
        return None
    if callable(progress):
        return progress
    try:
        from tqdm.auto import tqdm
    except ImportError:
        tqdm = None
    state: dict[str, Any] = {"bar": None}

    def cb(event: str, text: str, n: int) -> None:
        if event == "start":
            if tqdm is not None:
                state["bar"] = tqdm(total=n or None, desc=text, leave=False)
        elif event == "advance" and state["bar"] is not None:
            state["bar"].update(n)
            if text:
                state["bar"].set_postfix_str(text)
        elif event == "finish" and state["bar"] is not None:
            state["bar"].close()
            state["bar"] = None
        elif event == "note":
            print(text, file=sys.stderr)

    return cb


def _columns(X: Any, what: str) -> tuple[list[str], list[Any], bool]:
    """Names and columns of `X` (a DataFrame, a 2-D array, or a dict of
    columns): float64 arrays for numbers, lists of str for the rest."""
    names: list[str]
    cols: list[Any] = []
    from_frame = False
    if hasattr(X, "columns") and hasattr(X, "__getitem__"):  # pandas
        from_frame = True
        names = [str(c) for c in X.columns]
        for c in X.columns:
            s = X[c]
            kind = getattr(s.dtype, "kind", "O")
            if kind in "biuf":
                cols.append(np.ascontiguousarray(s.to_numpy(dtype=np.float64, na_value=np.nan)))
            elif kind == "M":
                cols.append([str(v) for v in s.astype(str)])
            else:
                cols.append([str(v) for v in s])
    elif isinstance(X, dict):
        names = [str(k) for k in X]
        for v in X.values():
            a = np.asarray(v)
            cols.append(np.ascontiguousarray(a, dtype=np.float64) if a.dtype.kind in "biuf" else [str(x) for x in a])
    else:
        a = np.asarray(X)
        if a.ndim != 2:
            raise ValueError(f"{what}: give a DataFrame or a 2-D array of rows, not an array of shape {a.shape}")
        if a.dtype.kind not in "biuf":
            raise ValueError(f"{what}: a numeric array is needed, not dtype {a.dtype}")
        names = [f"x{j}" for j in range(a.shape[1])]
        cols = [np.ascontiguousarray(a[:, j], dtype=np.float64) for j in range(a.shape[1])]
    return names, cols, from_frame


def _tar_dir(path: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name in sorted(os.listdir(path)):
            tar.add(os.path.join(path, name), arcname=name)
    return buf.getvalue()


def _untar_dir(data: bytes) -> str:
    dest = tempfile.mkdtemp(prefix="recur-model-")
    with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
        for m in tar.getmembers():
            if not (m.isfile() or m.isdir()) or m.name.startswith(("/", "..")) or ".." in m.name.split("/"):
                raise ValueError(f"the pickled model directory holds an unexpected entry {m.name!r}")
        tar.extractall(dest)
    return dest


class _Fitted:
    """The trained model directory (a private folder, removed with the
    estimator) and the loaded model."""

    def __init__(self, path: str, owned: bool):
        self.path = path
        self.model = _recur.Classifier.load(path)
        if owned:
            weakref.finalize(self, shutil.rmtree, path, True)


def _init_source() -> str:
    args = ", ".join(f"{n}={_config.DEFAULTS[n]!r}" for n, _, _ in _config.PARAMS)
    body = "\n".join(f"    self.{n} = {n}" for n, _, _ in _config.PARAMS)
    return f"def __init__(self, *, {args}, progress=False):\n{body}\n    self.progress = progress\n"


class _ModelDirEstimator:
    """What the estimators share about moving a fitted model: `save`
    writes its model directory (atomically: a temporary folder beside the
    target, then one rename), and pickling carries the directory's bytes
    (a tar), so a pickled estimator loads as `recur.load` would."""

    def save(self, path: str) -> None:
        """Writes the model directory to `path` (a new or empty folder),
        which `recur predict --model PATH` and `recur.load` open."""
        self._model()
        path = os.fspath(path)
        if os.path.exists(path) and (not os.path.isdir(path) or os.listdir(path)):
            raise OSError(f"{path} exists and is not an empty folder: choose a new one")
        parent = os.path.dirname(os.path.abspath(path))
        # Missing folders on the way are made, as the CLI makes them.
        os.makedirs(parent, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=".recur-save-", dir=parent)
        try:
            for name in os.listdir(self._fitted.path):
                src = os.path.join(self._fitted.path, name)
                if os.path.isfile(src):
                    shutil.copy2(src, os.path.join(tmp, name))
            if os.path.isdir(path):
                os.rmdir(path)
            os.replace(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        f = state.pop("_fitted", None)
        if f is not None:
            state["_model_dir_tar"] = _tar_dir(f.path)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        data = state.pop("_model_dir_tar", None)
        self.__dict__.update(state)
        if data is not None:
            self._fitted = _Fitted(_untar_dir(data), owned=True)


class LSTMClassifier(_ModelDirEstimator, ClassifierMixin, BaseEstimator):
    """recur's time-series classifier (Job A) with scikit-learn's
    conventions. Every keyword is a key of recur's config (see
    `recur.config_params` for a config file's keywords); `progress`
    (False, True for a tqdm bar, or a callable `f(event, text, n)`)
    reports training.

    Fitted attributes: `classes_`, `n_features_in_`, `feature_names_in_`
    (DataFrames only), `features_` (the features the model kept),
    `threshold_`, `sequence_length_`, `first_row_` (the first row any of
    its models scores: the trees may score rows before the LSTM's first
    full window, and `predict_proba`, the deployed model's probability,
    starts where every model it blends has a score), `deployed_`,
    `report_` (the training report as a dict) and `report_text_` (as
    `recur train` prints it).
    """

    # __init__ is written from the table of keywords, so that every config
    # key is an explicit keyword with the library's default, as
    # scikit-learn's get_params / set_params / clone need.
    exec(_init_source())

    # -- fitting --------------------------------------------------------

    def fit(self, X: Any, y: Any = None) -> "LSTMClassifier":
        """Trains on the rows of `X`, in time order. `y` is the label
        column (0/1, or classes with `positive_label`), or the price
        column when `price_column` is set; without `y`, `X` holds the
        column `target_column` (or `price_column`) itself."""
        names, cols, from_frame = _columns(X, "X")
        n_x = len(names)
        params = self.get_params()
        if y is not None:
            y_arr = np.asarray(y)
            if y_arr.ndim != 1 or len(y_arr) != (len(cols[0]) if cols else 0):
                raise ValueError(f"y has shape {y_arr.shape}; give one value per row of X")
            target = params["price_column"] or params["target_column"] or getattr(y, "name", None) or "target"
            target = str(target)
            if target in names:
                raise ValueError(f"y is named `{target}`, a column of X too: drop it from X or pass y=None")
            if params["price_column"]:
                params["price_column"] = target
            else:
                params["target_column"] = target
            names = names + [target]
            cols = cols + [np.ascontiguousarray(y_arr, dtype=np.float64) if y_arr.dtype.kind in "biuf" else [str(v) for v in y_arr]]
            if params["features"] is None:
                params["features"] = names[:n_x]
        elif not (params["target_column"] or params["price_column"]):
            raise ValueError("fit needs y, or target_column (or price_column) naming a column of X")
        cfg = _config.to_config(params)
        out = tempfile.mkdtemp(prefix="recur-model-")
        try:
            report_json, report_text = _recur.train_classifier(
                _config.to_yaml(cfg), names, cols, out, _progress_callback(self.progress)
            )
        except BaseException:
            shutil.rmtree(out, ignore_errors=True)
            raise
        self._set_fitted(_Fitted(out, owned=True), report_json, report_text)
        self.n_features_in_ = n_x
        if from_frame:
            self.feature_names_in_ = np.asarray(names[:n_x], dtype=object)
        return self

    def _set_fitted(self, fitted: _Fitted, report_json: str, report_text: str) -> None:
        m = fitted.model
        self._fitted = fitted
        self.classes_ = np.array([0, 1])
        self.features_ = list(m.features)
        self.threshold_ = m.threshold
        self.sequence_length_ = m.sequence_length
        self.first_row_ = m.first_row
        self.deployed_ = m.deployed
        self.report_ = json.loads(report_json)
        self.report_text_ = report_text

    def _model(self):
        f = getattr(self, "_fitted", None)
        if f is None:
            raise NotFittedError(
                "This LSTMClassifier instance is not fitted yet. Call 'fit' with appropriate arguments before using this estimator."
            )
        return f.model

    # -- predicting -----------------------------------------------------

    def score_rows(self, X: Any) -> dict[str, np.ndarray]:
        """What `recur predict` writes, as arrays: `row` (the row of `X`),
        `label`, `p_lstm`, `p_trees`, `p_ensemble` (raw), `probability`
        (calibrated, the deployed model's) and `decision`, for the rows
        the model scores; NaN where a value is missing."""
        return self._score(X, check=False)[1]

    def _score(self, X: Any, check: bool = True) -> tuple[int, dict]:
        """The row count of `X` and the model's scores. A float32
        C-contiguous array with one column per feature of the model (in
        `features_` order) is read where it lies, with no copy (the trees
        then split float32-rounded values, which can move their
        probabilities near a split: give float64 for `recur predict`'s
        numbers exactly); a DataFrame becomes float64 columns matched by
        name, any other array float64 columns in `features_` order."""
        m = self._model()
        if (
            isinstance(X, np.ndarray)
            and X.ndim == 2
            and X.dtype == np.float32
            and X.flags.c_contiguous
            and X.shape[1] == len(m.features)
        ):
            n = X.shape[0]
            if check:
                self._check_rows(n)
            return n, m.score_array(X)
        names, cols, from_frame = _columns(X, "X")
        if not from_frame and not isinstance(X, dict):
            # An array's columns are positional, whatever its dtype or
            # memory layout (as scikit-learn reads an array given to a
            # model fitted on a DataFrame): the columns fit saw (the model
            # then reads the features it kept), or the kept features alone.
            fitted_names = list(getattr(self, "feature_names_in_", []))
            n_in = getattr(self, "n_features_in_", None)
            if n_in is not None and len(cols) == n_in:
                names = fitted_names or [f"x{j}" for j in range(n_in)]
            elif len(cols) == len(m.features):
                names = list(m.features)
            else:
                seen = f"the {n_in} columns fit saw, or " if n_in is not None else ""
                raise ValueError(
                    f"X has {len(cols)} columns; give {seen}the {len(m.features)} features "
                    f"the model reads, in this order: {', '.join(m.features)}"
                )
        n = len(cols[0]) if cols else 0
        if check:
            self._check_rows(n)
        return n, m.score(names, cols)

    def _check_rows(self, n: int) -> None:
        m = self._model()
        if n < m.min_rows:
            raise ValueError(
                f"X has {n} rows; the model needs at least {m.min_rows} (a window of "
                f"{m.sequence_length} rows and its warm-up) before its first probability"
            )

    def _scored(self, X: Any, key: str) -> np.ndarray:
        n, s = self._score(X)
        out = np.full(n, np.nan)
        out[s["row"]] = s[key]
        return out

    def predict_proba(self, X: Any) -> np.ndarray:
        """`(n, 2)`: the calibrated probability of class 0 and class 1 for
        each row of `X`; NaN on the first rows, which have no window. A
        float32 C-contiguous array with one column per feature (in
        `features_` order) is read in place, without a copy."""
        p = self._scored(X, "probability")
        return np.column_stack([1.0 - p, p])

    def predict(self, X: Any) -> np.ndarray:
        """The saved decision (1 when the probability reaches the
        threshold chosen by expected value on validation) for each row;
        NaN where there is no prediction."""
        return self._scored(X, "decision")

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """The accuracy of `predict` against `y` (0/1), on the rows that
        have a prediction: the first rows, before the first full window,
        have none and are left out (scikit-learn's `ClassifierMixin.score`
        failed on their NaN)."""
        from sklearn.metrics import accuracy_score

        p = self.predict(X)
        y = np.asarray(y)
        if y.shape != p.shape:
            raise ValueError(f"y has shape {y.shape}; give one label per row of X ({p.shape[0]})")
        positive = self.get_params().get("positive_label")
        if positive is not None:
            # Labels as named (or numbered): the positive one is 1.
            y = (y.astype(str) == str(positive)).astype(np.float64)
        elif y.dtype.kind not in "biuf":
            try:
                y = y.astype(np.float64)
            except (TypeError, ValueError):
                raise ValueError("y holds names: give 0/1 labels, or set positive_label") from None
        keep = ~np.isnan(p)
        w = None
        if sample_weight is not None:
            w = np.asarray(sample_weight, dtype=np.float64)
            if w.shape != p.shape:
                raise ValueError(f"sample_weight has shape {w.shape}; give one weight per row of X ({p.shape[0]})")
            w = w[keep]
        return float(accuracy_score(y[keep].astype(np.float64), p[keep], sample_weight=w))

    def decision_function(self, X: Any) -> np.ndarray:
        """The log-odds of the calibrated probability, per row (NaN where
        there is none)."""
        p = np.clip(self._scored(X, "probability"), 1e-12, 1 - 1e-12)
        return np.log(p) - np.log1p(-p)

    # -- moving models --------------------------------------------------

    @classmethod
    def _from_dir(cls, path: str, owned: bool = False) -> "LSTMClassifier":
        fitted = _Fitted(path, owned)
        est = cls(**_config.from_config(json.loads(fitted.model.config_json)))
        report = os.path.join(path, "report.json")
        with open(report, encoding="utf-8") as f:
            report_json = f.read()
        est._set_fitted(fitted, report_json, "")
        est.n_features_in_ = len(est.features_)
        return est


def config_params(path: str) -> dict[str, Any]:
    """The `LSTMClassifier` keywords of a recur config file:
    `LSTMClassifier(**config_params("configs/rainfall.yaml"))` trains what
    `recur train --config configs/rainfall.yaml` trains."""
    return _config.from_config(json.loads(_recur.read_config(os.fspath(path))))

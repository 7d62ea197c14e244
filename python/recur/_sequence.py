"""`SequenceClassifier`: recur's classifier of whole series (the
sequences layout: UCR/UEA-style data) as a scikit-learn estimator.

`X` is one series per sample: a 3-D array `[n, T, F]`, a 2-D array
`[n, T]` (one channel), or a list of arrays `[T_i, F]` (or `[T_i]`) whose
lengths may differ; NaN marks a missing value, filled as the `?` of a
`.ts` file is (linearly within its channel, held at the ends). `y` holds
any labels; two classes train a sigmoid
head with the saved decision threshold, more a softmax head with a
temperature fit on validation (see the README's "More than two classes").
Series of different lengths are never padded: recur batches them by
length, so a series gets the same probabilities alone or with others.

The estimator trains the model `recur train` trains on a `.ts` file and
saves the same model directory (`save`, `recur.load`, pickling), which
`recur predict` and `recur eval` open.
"""

from __future__ import annotations

import json
import re
import warnings
import shutil
from typing import Any

import numpy as np

from . import _recur
# scikit-learn's bases when it is installed, the package's own stand-ins
# (get_params/set_params) when not: one definition, in _estimator.
from ._estimator import (
    BaseEstimator,
    ClassifierMixin,
    NotFittedError,
    _Fitted,
    _new_model_dir,
    _ModelDirEstimator,
    _column_or_1d,
    _contiguous,
    _missing,
    _object_numbers,
    _polars_as_pandas,
    _progress_callback,
    _refuse_sparse,
    SIDECAR,
    _unmasked,
    _unplaced,
    _write_sidecar,
    warn_report,
)


def _with_keywords(e: ValueError, est: Any) -> ValueError:
    """recur's error with each config key it names followed by the
    keyword that sets it (`model.hidden_size` is `hidden_size`, the split
    is `split_val`), without serde's position in a serialisation the user
    never saw (LSTMClassifier's errors say so already)."""
    msg = _unplaced(str(e))

    def named(m: "re.Match[str]") -> str:
        # `model.hidden_size / num_layers` names two settings.
        key = m.group(0)
        first, *more = key.split(" / ")
        names = [first.rsplit(".", 1)[-1], *more]
        if first.startswith("data.split."):
            kws = ["split_val"]
        else:
            kws = [n for n in names if n in est.get_params()]
        if not kws:
            return key
        return f"{key} (the keyword{'s' if len(kws) > 1 else ''} {', '.join(kws)})"

    msg = re.sub(r"\b(?:model|training|data\.split)\.[a-z_]+(?: / [a-z_]+)*", named, msg)
    return ValueError(msg) if msg != str(e) else e


def _no_json(v: Any) -> Any:
    """json.dumps' `default` for a value JSON cannot hold: its TypeError."""
    raise TypeError(f"{type(v).__name__} is not JSON serializable")


def _numeric_text(name: str) -> bool:
    """Whether a class name is a number written as text."""
    try:
        float(name)
        return True
    except ValueError:
        return False


def _numeric(kind: str, where: str) -> None:
    if kind == "c":
        raise ValueError(f"{where} holds complex numbers: give real values (a channel each for the real and imaginary parts)")
    if kind not in "biuf":
        raise ValueError(f"{where}: numbers are needed")


def _series(X: Any, what: str = "X") -> list[np.ndarray]:
    """`X` as a list of C-contiguous float64 arrays `[T_i, F]`."""
    _refuse_sparse(X, what)
    # NaN is this estimator's missing marker: a masked entry is one.
    X = _unmasked(_polars_as_pandas(X, what), what, fill=True)
    if isinstance(X, np.matrix):
        # Its rows would be 1 x T matrices, not series.
        X = np.asarray(X)
    if isinstance(X, np.ndarray) and X.dtype == object and X.ndim >= 2:
        X = _object_numbers(X)
    if hasattr(X, "columns") and hasattr(X, "to_numpy"):
        # A DataFrame: one series a row, one time step a column, as a 2-D
        # array `[n, T]` is.
        if not X.columns.is_unique:
            raise ValueError(f"{what}: two columns are named {X.columns[X.columns.duplicated()][0]!r}")
        for c in X.columns:
            _numeric(getattr(X[c].dtype, "kind", "O"), f"{what}: column {c!r} (dtype {X[c].dtype})")
        X = X.to_numpy(dtype=np.float64)
    if isinstance(X, np.ndarray) and X.dtype != object:
        _numeric(X.dtype.kind, f"{what} (dtype {X.dtype})")
        if X.ndim == 3:
            return [_contiguous(x, dtype=np.float64) for x in X]
        if X.ndim == 2:
            return [_contiguous(x, dtype=np.float64)[:, None] for x in X]
        raise ValueError(
            f"{what} has shape {X.shape}; give [n, T, F], [n, T] or a list of [T_i, F] arrays"
        )
    if not isinstance(X, (list, tuple, np.ndarray)) and hasattr(X, "__array__"):
        # An array-like (numpy's protocol only, a numpy scalar too): read
        # as the array it is.
        a = np.asarray(X)
        if a.ndim:
            return _series(a, what)
    if X is None or isinstance(X, (str, bytes, dict)):
        # Not an array of any shape (scikit-learn's TypeError).
        raise TypeError(
            f"{what} is {type(X).__name__}; give an array [n, T, F], [n, T] or a list of [T_i, F] arrays"
        )
    if not isinstance(X, (list, tuple)) and np.ndim(X) == 0:
        raise ValueError(
            f"{what} is one value ({type(X).__name__}); give [n, T, F], [n, T] or a list of [T_i, F] arrays"
        )
    out = []
    for i, x in enumerate(X):
        a = np.asarray(_unmasked(x, f"{what}[{i}]", fill=True))
        _numeric(a.dtype.kind, f"{what}[{i}] (dtype {a.dtype})")
        if a.ndim == 1:
            a = a[:, None]
        if a.ndim != 2:
            raise ValueError(f"{what}[{i}] has shape {a.shape}; a series is [T] or [T, F]")
        out.append(_contiguous(a, dtype=np.float64))
    if not out:
        raise ValueError(f"{what} holds no series")
    return out


class SequenceClassifier(_ModelDirEstimator, ClassifierMixin, BaseEstimator):
    """Whole-series classification (LSTM or LSTM-FCN) with scikit-learn's
    conventions. Keywords are recur's config keys (`model_type` is
    `model.type`; `split_val` the share of the training series kept for
    early stopping and calibration); `progress` (False, True for a tqdm
    bar, or a callable `f(event, text, n)`) reports training.

    Fitted attributes: `classes_` (sorted, as `np.unique(y)` sorts them,
    the order of `predict_proba`'s columns), `n_features_in_` (channels), `report_` (the
    training report as a dict), `report_text_` (as `recur train` prints
    it), `temperature_` (more than two classes) and `threshold_` (two:
    applied to the probability of `positive_class_`, which `classes_`'
    sorted order may put in either column).
    """

    def __init__(
        self,
        *,
        model_type: str = "lstm-fcn",
        hidden_size: int = 8,
        num_layers: int = 1,
        dropout: float = 0.8,
        shuffle: bool = True,
        filters: tuple = (128, 256, 128),
        kernels: tuple = (8, 5, 3),
        learning_rate: float = 0.001,
        weight_decay: float = 0.0,
        batch_size: int = 16,
        epochs: int = 150,
        early_stopping_patience: int = 40,
        grad_clip: float = 1.0,
        pos_weight: Any = "auto",
        class_weight: str = "auto",
        positive_label: Any = None,
        split_val: float = 0.2,
        seed: int = 42,
        precision: str = "f32",
        progress: Any = False,
    ):
        self.model_type = model_type
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.dropout = dropout
        self.shuffle = shuffle
        self.filters = filters
        self.kernels = kernels
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.epochs = epochs
        self.early_stopping_patience = early_stopping_patience
        self.grad_clip = grad_clip
        self.pos_weight = pos_weight
        self.class_weight = class_weight
        self.positive_label = positive_label
        self.split_val = split_val
        self.seed = seed
        self.precision = precision
        self.progress = progress

    def _config(self) -> dict[str, Any]:
        target = {} if self.positive_label is None else {"positive_label": str(self.positive_label)}
        return {
            "data": {
                "layout": "sequences",
                "target": target,
                "split": {"train": 1.0 - self.split_val, "val": self.split_val, "test": 0.0, "shuffle": True},
            },
            "model": {
                "type": self.model_type,
                "hidden_size": self.hidden_size,
                "num_layers": self.num_layers,
                "dropout": self.dropout,
                "shuffle": self.shuffle,
                "filters": list(self.filters),
                "kernels": list(self.kernels),
            },
            "training": {
                "learning_rate": self.learning_rate,
                "weight_decay": self.weight_decay,
                "batch_size": self.batch_size,
                "epochs": self.epochs,
                "early_stopping_patience": self.early_stopping_patience,
                "grad_clip": self.grad_clip,
                "pos_weight": self.pos_weight,
                "class_weight": self.class_weight,
                "seed": self.seed,
                "precision": self.precision,
            },
        }

    def fit(self, X: Any, y: Any) -> "SequenceClassifier":
        """Trains on the series `X` with labels `y` (one a series)."""
        series = _series(X)
        if y is None or isinstance(y, (str, bytes, dict)):
            raise TypeError(f"y is {type(y).__name__}; give one label per series, an array")
        y_arr = _column_or_1d(y)
        if y_arr.ndim != 1 or len(y_arr) != len(series):
            raise ValueError(f"y has shape {y_arr.shape}; give one label per series ({len(series)})")
        # A missing label is not a class (as scikit-learn refuses it).
        missing = [i for i, v in enumerate(y_arr.tolist()) if _missing(v)]
        if missing:
            raise ValueError(f"y[{missing[0]}] is missing (NaN, None or pandas' NA); give every series a label")
        if (y_arr.dtype.kind == "f" and np.any(y_arr != np.round(y_arr))
                and len(np.unique(y_arr)) > len(y_arr) / 2):
            # A continuous target (scikit-learn refuses it): 120 values
            # made a 120-class softmax. Fractional labels that repeat
            # (1.5 and 2.5) stay classes.
            raise ValueError(
                f"y holds {len(np.unique(y_arr))} distinct numbers that are not whole in "
                f"{len(y_arr)} labels: a continuous target; SequenceClassifier classifies, so "
                "give class labels"
            )
        labels = [str(v) for v in y_arr]
        # numpy's own scalars, so that the classes keep y's dtype (float32
        # labels came back float64).
        originals: dict[str, Any] = {}
        for s, v in zip(labels, y_arr):
            originals.setdefault(s, v)
        parent, out = _new_model_dir()
        try:
            try:
                report_json, report_text = _recur.train_sequences(
                    json.dumps(self._config()), series, labels, out, _progress_callback(self.progress)
                )
            except ValueError as e:
                raise _with_keywords(e, self) from None
            # The caller's class values and their dtype, which recur (that
            # keeps labels as text) does not: `recur.load` gives them back.
            # Object labels stay object (np.unique's dtype for them), not text.
            classes = np.array(list(originals.values()), dtype=object if y_arr.dtype == object else None)
            try:
                # An object array's tolist() keeps NumPy scalars as they
                # are (np.int64 labels): JSON takes their Python values.
                meta = json.dumps(
                    {"values": classes.tolist(), "dtype": classes.dtype.str},
                    default=lambda v: v.item() if isinstance(v, np.generic) else _no_json(v),
                )
            except (TypeError, ValueError):
                meta = None  # values JSON cannot hold: loaded, they are text
            if meta is not None:
                _write_sidecar(out, {"estimator": "SequenceClassifier", "classes": json.loads(meta)})
        except BaseException:
            shutil.rmtree(parent, ignore_errors=True)
            raise
        self._set_fitted(
            _Fitted(out, owned=True, remove=parent), report_json, report_text, originals, classes.dtype.str
        )
        warn_report(self.report_)
        return self

    def _set_fitted(
        self, fitted: _Fitted, report_json: str, report_text: str, originals=None, dtype=None
    ) -> None:
        m = fitted.model
        self._fitted = fitted
        self.report_ = json.loads(report_json)
        self.report_text_ = report_text
        self.n_features_in_ = len(m.features)
        lost = False
        if originals is None:
            # The values fit saw, kept beside the model by this package.
            saved = fitted.meta.get("classes")
            # Fit from Python, but its hidden sidecar did not travel with
            # the copy (`cp dir/*`): said below when the classes look like
            # numbers, which then come back as text.
            lost = saved is None and json.loads(m.config_json).get("data", {}).get("path") is None
            saved = saved or {}
            values = saved.get("values") or []
            originals = {str(v): v for v in values}
            dtype = saved.get("dtype")
        data = fitted.json("data.json") or {}
        if m.classes:
            names: list[Any] = list(m.classes)
            self.temperature_ = self.report_.get("temperature", {}).get("temperature", 1.0)
        else:
            pos = m.positive_label
            # The other class: data.json's `negative_label` where recur
            # records it (older models lack it), else the values fit saw.
            neg = data.get("negative_label")
            if neg is None:
                others = [c for c in originals if c != pos]
                neg = others[0] if others else f"not {pos}"
            names = [neg, pos]
            self.threshold_ = m.threshold
            # `threshold_` applies to this class's probability, whichever
            # column of predict_proba `classes_`' order gives it.
            self.positive_class_ = originals.get(pos, pos)
        if lost and all(_numeric_text(n) for n in names):
            warnings.warn(
                f"{fitted.path}: this copy lacks {SIDECAR}, where fit kept the classes' values "
                "and dtype; classes_ are the labels as text (copy the folder with its hidden "
                "files, e.g. cp -r)",
                UserWarning,
                stacklevel=4,
            )
        values = [originals.get(n, n) for n in names]
        classes = np.array(values)
        if dtype is not None and all(n in originals for n in names):
            try:
                classes = np.array(values, dtype=np.dtype(dtype))
            except (TypeError, ValueError):
                pass
        # scikit-learn's order (np.unique's: its scorers read
        # predict_proba's columns as sorted classes), where recur keeps
        # its own (numbers by value, a binary model's positive class
        # last): `_order` takes recur's columns to `classes_`'.
        try:
            order = np.argsort(classes, kind="stable")
        except TypeError:  # values that do not compare: recur's order
            order = np.arange(len(classes))
        self._order = order
        self._recur_classes = classes
        self.classes_ = classes[order]

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        # Pickles of the version before classes_ was sorted kept recur's
        # order, with the columns in it.
        if "classes_" in self.__dict__ and "_order" not in self.__dict__:
            self._order = np.arange(len(self.classes_))
            self._recur_classes = self.classes_

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # [n, T, F] series, NaN a missing value (filled within its channel).
        tags.input_tags.three_d_array = True
        tags.input_tags.allow_nan = True
        return tags

    def _more_tags(self) -> dict:  # scikit-learn before 1.6
        return {"allow_nan": True, "X_types": ["2darray", "3darray"]}

    def _model(self):
        f = getattr(self, "_fitted", None)
        if f is None:
            raise NotFittedError(
                "This SequenceClassifier instance is not fitted yet. Call 'fit' with appropriate arguments before using this estimator."
            )
        return f.model

    def predict_proba(self, X: Any) -> np.ndarray:
        """`(n, K)`: each class's calibrated probability for each series,
        columns in `classes_` order."""
        m = self._model()
        s = m.score_series(_series(X))
        if m.classes:
            proba = s["class_probabilities"]
        else:
            p = s["probability"]
            proba = np.column_stack([1.0 - p, p])
        return proba[:, self._order]

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each series (two classes: the
        positive one when its probability reaches the saved threshold)."""
        m = self._model()
        s = m.score_series(_series(X))
        if m.classes:
            return self._recur_classes[np.argmax(s["class_probabilities"], axis=1)]
        return self._recur_classes[s["decision"].astype(int)]

    @classmethod
    def _from_dir(cls, path: str) -> "SequenceClassifier":
        fitted = _Fitted(path, owned=False)
        cfg = json.loads(fitted.model.config_json)
        m, t = cfg.get("model", {}), cfg.get("training", {})
        keys = cls().get_params() if hasattr(cls, "get_params") else {}
        kw = {k: v for k, v in {**m, **t}.items() if k in keys}
        if "type" in m:
            kw["model_type"] = m["type"]
        for k in ("filters", "kernels"):
            if k in kw:
                kw[k] = tuple(kw[k])
        est = cls(**kw)
        report = fitted.files.get("report.json", b"{}").decode("utf-8")
        est._set_fitted(fitted, report, _recur.report_text(report, "classifier"))
        return est

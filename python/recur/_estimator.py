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

import hashlib
import io
import json
import os
import re
import shutil
import sys
import tarfile
import tempfile
import warnings
import weakref
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np

from . import _config
from . import _recur

# A path as the entry points take it (os.fsdecode reads each).
StrPath = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]


def _path(p: Any, name: str, what: str) -> str:
    """The argument `name` as a str path (`str`, `bytes` or
    `os.PathLike`); anything else is a TypeError saying to give `what`."""
    if not isinstance(p, (str, bytes, os.PathLike)):
        raise TypeError(f"{name} is {type(p).__name__}: give {what}")
    return os.fsdecode(p)


def _refuse_sparse(X: Any, what: str) -> None:
    """A SciPy sparse matrix (or array) is refused by name: the models
    read dense rows, and numpy saw it as one object of shape ()."""
    if hasattr(X, "toarray") and hasattr(X, "nnz"):
        raise ValueError(
            f"{what} is a sparse matrix ({type(X).__name__}); recur reads dense values: "
            f"give {what}.toarray()"
        )


def _polars_as_pandas(X: Any, what: str) -> Any:
    """A polars DataFrame (a LazyFrame collected first) as the pandas one
    it converts to (its columns keep their names and kinds): the frame code
    reads pandas' API, and a
    polars frame with a text or datetime column failed inside it with an
    AttributeError. Anything else is returned as it is."""
    if type(X).__module__.split(".")[0] != "polars":
        return X
    if type(X).__name__ == "LazyFrame" and hasattr(X, "collect"):
        X = X.collect()  # the frame it describes
    if not (hasattr(X, "to_pandas") and hasattr(X, "columns")):
        return X
    try:
        return X.to_pandas()
    except ImportError as e:
        raise TypeError(
            f"{what} is a polars DataFrame, which recur reads through pandas: install pandas and "
            f"pyarrow (pip install pandas pyarrow), or give {what}.to_numpy() ({e})"
        ) from None


def _contiguous(a: Any, dtype: Any = None) -> np.ndarray:
    """`a` as a C-contiguous, aligned array of `dtype`, copied only when it
    is not one already. Aligned too: the bindings read numpy memory in
    place and refuse an unaligned array (a memmap at an odd offset, a
    `frombuffer` slice), which `np.ascontiguousarray` leaves as it is.
    A 0-d value stays 0-d, so that shape errors name the shape given."""
    return np.require(np.asarray(a, dtype=dtype), requirements=["C", "A"])


def _fsync_dir(path: str) -> None:
    """Makes a folder's entries durable (a rename into it, files made in
    it), where the platform can open a folder; elsewhere nothing."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _unmasked(a: Any, what: str, fill: bool = False) -> Any:
    """A numpy masked array's values, which numpy's conversions read as
    numbers, masked entries and all: with nothing masked, its data; with
    `fill`, float64 with NaN (the missing marker) where masked; else
    refused, naming the first masked entry. Anything else as it is."""
    if not isinstance(a, np.ma.MaskedArray):
        return a
    mask = np.ma.getmaskarray(a)
    if not mask.any():
        return np.asarray(a.data)
    if fill and a.dtype.kind in "biuf":
        return np.ma.filled(a.astype(np.float64), np.nan)
    at = [int(i) for i in np.argwhere(mask)[0]]
    raise ValueError(
        f"{what} is a masked array with {int(mask.sum())} masked entries (the first at {at}): "
        f"recur does not read masked values; fill them ({what}.filled(value)) or drop those rows"
    )


def _object_numbers(a: np.ndarray) -> np.ndarray:
    """An object array of numbers as float64, as scikit-learn's
    `check_array` converts it; anything else as it is (and refused by the
    caller's dtype check)."""
    if a.dtype == object:
        # Complex items would lose their imaginary part with a warning only.
        if any(isinstance(v, (complex, np.complexfloating)) for v in a.flat):
            return a
        try:
            return a.astype(np.float64)
        except (TypeError, ValueError):
            return a
    return a

try:  # scikit-learn conventions when it is installed
    from sklearn.base import BaseEstimator, ClassifierMixin
    from sklearn.exceptions import DataConversionWarning, NotFittedError
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

    class DataConversionWarning(UserWarning):  # type: ignore[no-redef]
        pass


def _progress_callback(progress: Any):
    """None, a callable `f(event, text, n)`, or True for a tqdm bar (or
    lines on stderr without tqdm)."""
    # Booleans, and whole numbers as a verbosity is (0 off, else on).
    flag = isinstance(progress, (bool, np.bool_, int, np.integer))
    if progress is None or (flag and not progress):
        return None
    if callable(progress):
        return progress
    if not flag:
        # "no" (or any other object) read as True and printed.
        raise TypeError(
            f"progress is {type(progress).__name__} {progress!r}: give True, False, None or a "
            "callable f(event, text, n)"
        )
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


def _number(v: Any) -> float:
    """`v` as a float: NaN for a missing value (None, NaN, pandas' NA, an
    empty string, as a CSV's empty cell),
    ValueError for text that is not a number."""
    if v is None or (isinstance(v, float) and v != v) or str(v) in ("<NA>", "NaT"):
        return float("nan")
    # An empty cell, as a CSV's is read.
    if isinstance(v, str) and not v.strip():
        return float("nan")
    # Complex values are refused, as everywhere (float() would drop the
    # imaginary part of a numpy complex with a warning only).
    if isinstance(v, (complex, np.complexfloating)):
        raise ValueError(v)
    if isinstance(v, (str, int, float, np.number)) or hasattr(v, "__float__"):
        return float(v)
    raise ValueError(v)


def _as_numbers(values: Any) -> tuple[Optional[np.ndarray], Optional[int]]:
    """Values held as objects, strings or categories as float64 when
    each is a number or missing (Decimal, `"0.5"`, None), as
    scikit-learn's `check_array` converts them; else None and the index
    of the first that is not (text: a time column, labels)."""
    out = np.empty(len(values), dtype=np.float64)
    known = False
    for i, v in enumerate(values):
        try:
            out[i] = _number(v)
        except (TypeError, ValueError, OverflowError):
            return None, i
        known = known or out[i] == out[i]
    return (out, None) if known else (None, None)


def _missing(v: Any) -> bool:
    """Whether `v` is a missing value (None, NaN, NaT, pandas' NA)."""
    if v is None or type(v).__name__ in ("NAType", "NaTType"):
        return True
    if isinstance(v, (float, np.floating)):
        return bool(np.isnan(v))
    if isinstance(v, (np.datetime64, np.timedelta64)):
        return bool(np.isnat(v))
    return False


def _texts(texts: list[str], missing: Any) -> list[str]:
    """`texts` with the missing ones empty, as an empty cell of a CSV
    reads: `str` wrote them `nan`, `None` or `NaT`, which a time column
    refused as "not a date" where `recur predict` on the same file took
    the row in file order."""
    return ["" if m else t for t, m in zip(texts, missing)]


def _numbers_held_as_objects(s: Any) -> Optional[np.ndarray]:
    """A pandas column (or a 1-D array) of objects, strings or categories
    as float64 where every value is a number or missing (see
    `_as_numbers`), else None."""
    vals = s.astype(object).tolist() if hasattr(s, "astype") else list(s)
    return _as_numbers(vals)[0]


def _unplaced(msg: str) -> str:
    """`msg` without the position serde gives, which is in the JSON or
    YAML the estimator's settings went through, never seen by the user."""
    return re.sub(r" at line \d+ column \d+", "", msg)


def _with_keywords(e: ValueError) -> ValueError:
    """recur's error with each config key it names followed by the
    estimator's keyword for it (`data.target.price_column` is
    `price_column`)."""
    msg = _unplaced(str(e))
    for kw, path, _ in sorted(_config.PARAMS, key=lambda p: -len(".".join(p[1]))):
        key = ".".join(path)
        if len(path) > 1 and key in msg and kw != key:
            msg = msg.replace(key, f"{key} (the keyword {kw})")
    return ValueError(msg) if msg != str(e) else e


def _columns(X: Any, what: str, time_column: Optional[str] = None) -> tuple[list[str], list[Any], bool]:
    """Names and columns of `X` (a DataFrame, a 2-D array, or a dict of
    columns): float64 arrays for numbers, lists of str for the rest. The
    `time_column`, held as text, stays text (`"01022000"` is a date)."""
    names: list[str]
    cols: list[Any] = []
    from_frame = False
    _refuse_sparse(X, what)
    X = _unmasked(_polars_as_pandas(X, what), what)
    if hasattr(X, "columns") and hasattr(X, "__getitem__"):  # pandas
        from_frame = True
        names = [str(c) for c in X.columns]
        seen: set[str] = set()
        for n in names:
            if n in seen:
                raise ValueError(f"{what}: two columns are named {n!r}; give each column its own name")
            seen.add(n)
        for c in X.columns:
            s = X[c]
            kind = getattr(s.dtype, "kind", "O")
            if kind in "biuf":
                cols.append(_contiguous(s.to_numpy(dtype=np.float64, na_value=np.nan)))
            elif kind == "M":
                cols.append(_texts(s.astype(str).tolist(), s.isna().to_numpy()))
            else:
                num = None if str(c) == time_column else _numbers_held_as_objects(s)
                cols.append(num if num is not None else _texts([str(v) for v in s], s.isna().to_numpy()))
    elif isinstance(X, dict):
        names = [str(k) for k in X]
        if len(set(names)) != len(names):
            dup = next(n for n in names if names.count(n) > 1)
            raise ValueError(f"{what}: two columns are named {dup!r}; give each column its own name")
        for name, v in zip(names, X.values()):
            v = _unmasked(v, f"{what}[{name!r}]")
            # One value a column is one row, as it was read before.
            a = np.atleast_1d(np.asarray(v))
            if a.dtype.kind in "biuf":
                cols.append(_contiguous(a, dtype=np.float64))
                continue
            # As a frame's columns: numbers held as objects or text are
            # numbers, and missing values are seen on the values given
            # (np.asarray of ["2000-01-01", nan] holds the text "nan").
            given = list(a) if isinstance(v, np.ndarray) or np.ndim(v) == 0 else list(v)
            numeric = name != time_column and a.dtype.kind in "OSU"
            num = _numbers_held_as_objects(given) if numeric else None
            cols.append(num if num is not None else _texts([str(x) for x in a], [_missing(x) for x in given]))
        lengths = {len(c) for c in cols}
        if len(lengths) > 1:
            # Said here, before a row count read off the first column.
            rows = ", ".join(f"`{n}` {len(c)}" for n, c in zip(names, cols))
            raise ValueError(f"{what}: the columns have different lengths ({rows}); give each the same rows")
    else:
        if X is None or isinstance(X, (str, bytes)):
            raise TypeError(
                f"{what} is {type(X).__name__}: give a DataFrame, a dict of columns or a 2-D array of rows"
            )
        a = _object_numbers(np.asarray(X))
        if a.ndim != 2:
            raise ValueError(f"{what}: give a DataFrame or a 2-D array of rows, not an array of shape {a.shape}")
        if a.dtype.kind not in "biuf":
            raise ValueError(f"{what}: a numeric array is needed, not dtype {a.dtype}")
        names = [f"x{j}" for j in range(a.shape[1])]
        cols = [_contiguous(a[:, j], dtype=np.float64) for j in range(a.shape[1])]
    return names, cols, from_frame


MANIFEST = "manifest.json"
# What this package knows of a model that the model directory does not
# record (the columns fit saw, the caller's class values and their dtype),
# written beside the model's files when the estimator fits. A hidden file:
# recur's manifest does not list it, recur's loading does not read it, and `recur
# train --out` neither asks about it nor keeps it when it replaces the
# directory. It names the manifest's run, so a copy beside another run's
# files is ignored.
SIDECAR = ".recur-python.json"
# recur's own files beside a model that its manifest does not list.
_BESIDE = ("report.html",)


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _plain_file(d: str, p: str) -> bool:
    """Whether `p`, a file no manifest hash vouches for (`report.html`, an
    old directory's files), is carried into pickles and saves: a file, and
    if a link, one into the model directory itself. A link out of it (to
    `~/.ssh/id_rsa`) would carry what it points at: left out, with a
    warning."""
    if not os.path.isfile(p):
        return False
    if not os.path.islink(p):
        return True
    inside = os.path.realpath(p).startswith(os.path.realpath(d) + os.sep)
    if not inside:
        warnings.warn(f"{p} links out of the model directory: left out of its pickles and saves")
    return inside


def _own_files(path: str) -> dict[str, bytes]:
    """The model's own files, read into memory: `manifest.json`, every file
    it lists (checked against its SHA-256) and `report.html`; without a
    manifest (an old directory), the top-level files. Folders inside the
    directory (the demo keeps other models there) and lock files are not
    the model's. The package's sidecar comes along when it names the
    manifest's run."""
    files: dict[str, bytes] = {}
    man = os.path.join(path, MANIFEST)
    if os.path.isfile(man):
        raw = _read(man)
        files[MANIFEST] = raw
        manifest = json.loads(raw)
        for name, sha in sorted(manifest.get("files", {}).items()):
            if os.path.basename(name) != name or name.startswith("."):
                raise OSError(f"{path}: {MANIFEST} lists {name!r}, which is not a file name")
            data = _read(os.path.join(path, name))
            if hashlib.sha256(data).hexdigest() != sha:
                raise OSError(
                    f"{path}: {name} differs from {MANIFEST}: the directory changed while the "
                    "model was read; load it again"
                )
            files[name] = data
        for name in _BESIDE:
            p = os.path.join(path, name)
            if _plain_file(path, p):
                files[name] = _read(p)
    else:
        for name in sorted(os.listdir(path)):
            p = os.path.join(path, name)
            if not name.startswith(".") and _plain_file(path, p):
                files[name] = _read(p)
    # The sidecar is carried only when it names the manifest's run, so it
    # may be read through a link.
    side = os.path.join(path, SIDECAR)
    if os.path.isfile(side):
        data = _read(side)
        if _sidecar_of(files, data) is not None:
            files[SIDECAR] = data
    return files


def _run_of(files: dict[str, bytes]) -> Optional[str]:
    raw = files.get(MANIFEST)
    if raw is None:
        return None
    try:
        return json.loads(raw).get("run")
    except ValueError:
        return None


def _sidecar_of(files: dict[str, bytes], data: Optional[bytes] = None) -> Optional[dict]:
    """The sidecar's contents when it belongs to these files (it names
    their manifest's run), else None."""
    data = files.get(SIDECAR) if data is None else data
    if data is None:
        return None
    try:
        meta = json.loads(data)
    except ValueError:
        return None
    run = _run_of(files)
    if not isinstance(meta, dict) or run is None or meta.get("run") != run:
        return None
    return meta


def _write_sidecar(path: str, meta: dict) -> None:
    """Writes the package's sidecar into the model directory `path` (a
    folder this package owns), naming its manifest's run."""
    run = _run_of({MANIFEST: _read(os.path.join(path, MANIFEST))})
    with open(os.path.join(path, SIDECAR), "w", encoding="utf-8") as f:
        json.dump({"run": run, **meta}, f)


def _tar_files(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _untar_dir(data: bytes) -> str:
    dest = tempfile.mkdtemp(prefix="recur-model-")
    try:
        # Plain tar only, as _tar_dir writes it: a compressed payload could
        # expand to gigabytes on disk from a small pickle.
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            for m in tar.getmembers():
                if not (m.isfile() or m.isdir()) or m.name.startswith(("/", "..")) or ".." in m.name.split("/"):
                    raise ValueError(f"the pickled model directory holds an unexpected entry {m.name!r}")
            if hasattr(tarfile, "data_filter"):
                tar.extractall(dest, filter="data")
            else:  # pragma: no cover - Python before 3.9.17 / 3.10.12 / 3.11.4
                tar.extractall(dest)
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    return dest


def _new_model_dir() -> tuple[str, str]:
    """A private folder for a fit, and the model directory to write in it:
    recur leaves its lock file beside the directory it writes, which is
    then inside the folder (removed with it), not in the temp directory."""
    parent = tempfile.mkdtemp(prefix="recur-model-")
    return parent, os.path.join(parent, "model")


class _Fitted:
    """The loaded model and its files: the model's own files are read into
    memory when it loads (they are small), so that `save` and pickling
    carry the model that scores, whatever becomes of its folder later.
    `owned` folders (private ones: a fit's output, an unpickled model) are
    removed with the estimator."""

    def __init__(self, path: str, owned: bool, remove: Optional[str] = None):
        self.path = path
        if owned:
            weakref.finalize(self, shutil.rmtree, remove or path, True)
        man = os.path.join(path, MANIFEST)
        before = _read(man) if os.path.isfile(man) else None
        # recur checks the directory against its manifest as it loads (its
        # errors name the files); the bytes read then are those it checked
        # when the manifest is the same before and after.
        self.model = _recur.Classifier.load(path)
        self.files = _own_files(path)
        if self.files.get(MANIFEST) != before:
            raise OSError(f"{path}: the model directory changed while it was loaded; load it again")
        self.meta = _sidecar_of(self.files) or {}

    def json(self, name: str) -> Any:
        """One of the model's JSON files, parsed (None when it has none)."""
        data = self.files.get(name)
        return None if data is None else json.loads(data)


def _column_or_1d(y: Any, what: str = "y") -> np.ndarray:
    """`y` as a 1-D array; a column vector `(n, 1)` is taken with
    scikit-learn's DataConversionWarning, as scikit-learn's estimators
    take it."""
    a = np.asarray(_unmasked(y, what))
    if a.ndim == 2 and a.shape[1] == 1:
        warnings.warn(
            f"A column-vector {what} was passed when a 1d array was expected. Please change the shape "
            f"of {what} to (n_samples,), for example using ravel().",
            DataConversionWarning,
            stacklevel=3,
        )
        a = a[:, 0]
    return a


class _ModelDirEstimator:
    """What the estimators share about moving a fitted model: `save`
    writes its model directory (atomically: a temporary folder beside the
    target, then one rename), and pickling carries the directory's bytes
    (a tar of the model's own files, as they were when it was fitted or
    loaded), so a pickled estimator loads as `recur.load` would."""

    # Each estimator's own: the fitted model, or NotFittedError.
    _model: Callable[[], Any]
    _fitted: _Fitted

    def save(self, path: StrPath) -> None:
        """Writes the model directory to `path` (a new or empty folder, or
        a link to one), which `recur predict --model PATH` and
        `recur.load` open. The files are the model's as it was fitted or
        loaded, whatever became of the folder it was loaded from."""
        self._model()
        path = _path(path, "path", "the folder to write the model directory to")
        if not path:
            raise ValueError("path is empty: give the folder to write the model directory to")
        if os.path.islink(path):
            # Written where the link points; the link then names the model.
            path = os.path.realpath(path)
        if os.path.exists(path) and (not os.path.isdir(path) or os.listdir(path)):
            raise OSError(f"{path} exists and is not an empty folder: choose a new one")
        if os.path.isdir(path) and not os.access(path, os.W_OK | os.X_OK):
            # The empty folder is replaced by the written one, which its
            # permissions would otherwise not allow.
            raise PermissionError(f"{path} is not writable: choose a folder you may write to")
        parent = os.path.dirname(os.path.abspath(path))
        # Missing folders on the way are made, as the CLI makes them.
        os.makedirs(parent, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=".recur-save-", dir=parent)
        try:
            for name, data in self._fitted.files.items():
                dst = os.path.join(tmp, name)
                with open(dst, "wb") as f:
                    f.write(data)
                    # On disk before the rename, as the CLI writes: after a
                    # power cut the folder is whole, or absent.
                    f.flush()
                    os.fsync(f.fileno())
                os.chmod(dst, 0o644)
            os.chmod(tmp, 0o755)  # as recur writes a model directory
            _fsync_dir(tmp)
            if os.path.isdir(path):
                os.rmdir(path)
            os.replace(tmp, path)
            _fsync_dir(parent)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        f = state.pop("_fitted", None)
        if f is not None:
            state["_model_dir_tar"] = _tar_files(f.files)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        data = state.pop("_model_dir_tar", None)
        self.__dict__.update(state)
        if data is not None:
            self._fitted = _Fitted(_untar_dir(data), owned=True)



class TrainingWarning(UserWarning):
    """What training found worth saying about a model it still wrote: a
    fit that learnt nothing, a feature constant on the training rows, a
    decision threshold the cost matrix defeats. The same lines are in
    `report_["warnings"]` and in `report_text_`."""


def warn_report(report: dict) -> None:
    """Raises each of the training report's warnings as a
    `TrainingWarning`, pointing at the caller's `fit`: the default
    features left out as constant (`recur train` prints them as warnings
    beside the report's notes), then the notes."""
    for name, v in report.get("constant_columns", []):
        shown = int(v) if float(v).is_integer() else v
        warnings.warn(
            f"`{name}` never changes on the training rows ({shown}, to its sums' rounding): "
            "left out of the features (give `features` to choose them yourself)",
            TrainingWarning,
            stacklevel=3,
        )
    for w in report.get("warnings", []):
        warnings.warn(w, TrainingWarning, stacklevel=3)

class LSTMClassifier(_ModelDirEstimator, ClassifierMixin, BaseEstimator):
    """recur's time-series classifier (Job A) with scikit-learn's
    conventions. Every keyword is a key of recur's config (see
    `recur.config_params` for a config file's keywords); `progress`
    (False, True for a tqdm bar, or a callable `f(event, text, n)`)
    reports training. The label is binary (0/1, or derived from a price):
    `classes_` is `[0, 1]`.

    Fitted attributes: `classes_`, `n_features_in_`, `feature_names_in_`
    (DataFrames only; a model `recur.load` opens that the CLI wrote has
    its `features_` there), `features_` (the features the model kept),
    `threshold_`, `sequence_length_`, `first_row_` (the first row any of
    its models scores: the trees may score rows before the LSTM's first
    full window, and `predict_proba`, the deployed model's probability,
    starts where every model it blends has a score), `deployed_`,
    `report_` (the training report as a dict) and `report_text_` (as
    `recur train` prints it).

    scikit-learn's built-in scorers (`scoring="roc_auc"`, `"accuracy"`,
    ...) read `predict_proba` / `predict` against `y` as given: the rows
    before the first full window are NaN there, and `y[t]` is not the
    label of row `t` when `horizon > 0`, so they give NaN (or a wrong
    number). Use the estimator's own `score` (`scoring=None`), or a
    callable scorer on `score_rows(X, y)`, whose `label` is the label of
    each scored row:

        def roc_auc(est, X, y):
            r = est.score_rows(X, y)
            ok = ~np.isnan(r["label"]) & ~np.isnan(r["probability"])
            return roc_auc_score(r["label"][ok], r["probability"][ok])
    """

    # Every config key is an explicit keyword with the library's default,
    # as scikit-learn's get_params / set_params / clone need, written out
    # (not generated) so that type checkers and `inspect` see them; a test
    # holds this list to `_config.PARAMS`, in order, defaults included.
    def __init__(
        self,
        *,
        features: Optional[Sequence[str]] = None,
        time_column: Optional[str] = None,
        target_column: Optional[str] = None,
        horizon: int = 0,
        price_column: Optional[str] = None,
        price_k: float = 0.5,
        price_vol_window: int = 20,
        price_tau_min: float = 0.001,
        price_tau_max: float = 0.1,
        price_drop_neutral: bool = False,
        positive_label: Any = None,
        split_train: float = 0.7,
        split_val: float = 0.15,
        split_test: float = 0.15,
        split_gap: Optional[int] = None,
        model_type: str = 'lstm',
        sequence_length: int = 32,
        hidden_size: int = 64,
        num_layers: int = 1,
        dropout: float = 0.3,
        shuffle: bool = True,
        filters: Sequence[int] = (128, 256, 128),
        kernels: Sequence[int] = (8, 5, 3),
        learning_rate: float = 0.0005,
        weight_decay: float = 0.0,
        batch_size: int = 512,
        epochs: int = 30,
        early_stopping_patience: int = 5,
        grad_clip: float = 1.0,
        pos_weight: Union[float, str] = 'auto',
        class_weight: str = 'auto',
        seed: int = 42,
        precision: str = 'f32',
        selection: bool = False,
        selection_min_abs_autocorr: float = 0.1,
        selection_max_noise_ratio: float = 5.0,
        selection_max_outlier_share: float = 0.01,
        selection_outlier_z: float = 5.0,
        selection_min_trend: Optional[float] = None,
        selection_max_features: int = 50,
        selection_ewma_span: int = 5,
        trees: bool = False,
        trees_lags: Sequence[int] = (),
        trees_iterations: int = 500,
        trees_learning_rate: float = 0.05,
        trees_max_depth: int = 4,
        trees_early_stopping_rounds: int = 25,
        trees_xgboost_model: Optional[str] = None,
        calibration: str = 'isotonic',
        cost_tp: float = 0.005,
        cost_fp: float = -0.003,
        cost_tn: float = 0.0,
        cost_fn: float = -0.001,
        ensemble: bool = False,
        ensemble_weights: str = 'fixed',
        ensemble_trees: float = 0.7,
        ensemble_lstm: float = 0.3,
        ensemble_min_weight: float = 0.1,
        ensemble_max_weight: float = 0.9,
        progress: Any = False,
    ) -> None:
        self.features = features
        self.time_column = time_column
        self.target_column = target_column
        self.horizon = horizon
        self.price_column = price_column
        self.price_k = price_k
        self.price_vol_window = price_vol_window
        self.price_tau_min = price_tau_min
        self.price_tau_max = price_tau_max
        self.price_drop_neutral = price_drop_neutral
        self.positive_label = positive_label
        self.split_train = split_train
        self.split_val = split_val
        self.split_test = split_test
        self.split_gap = split_gap
        self.model_type = model_type
        self.sequence_length = sequence_length
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
        self.seed = seed
        self.precision = precision
        self.selection = selection
        self.selection_min_abs_autocorr = selection_min_abs_autocorr
        self.selection_max_noise_ratio = selection_max_noise_ratio
        self.selection_max_outlier_share = selection_max_outlier_share
        self.selection_outlier_z = selection_outlier_z
        self.selection_min_trend = selection_min_trend
        self.selection_max_features = selection_max_features
        self.selection_ewma_span = selection_ewma_span
        self.trees = trees
        self.trees_lags = trees_lags
        self.trees_iterations = trees_iterations
        self.trees_learning_rate = trees_learning_rate
        self.trees_max_depth = trees_max_depth
        self.trees_early_stopping_rounds = trees_early_stopping_rounds
        self.trees_xgboost_model = trees_xgboost_model
        self.calibration = calibration
        self.cost_tp = cost_tp
        self.cost_fp = cost_fp
        self.cost_tn = cost_tn
        self.cost_fn = cost_fn
        self.ensemble = ensemble
        self.ensemble_weights = ensemble_weights
        self.ensemble_trees = ensemble_trees
        self.ensemble_lstm = ensemble_lstm
        self.ensemble_min_weight = ensemble_min_weight
        self.ensemble_max_weight = ensemble_max_weight
        self.progress = progress

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # Binary only: the label is 0/1 (or a price's up/down).
        tags.classifier_tags.multi_class = False
        return tags

    def _more_tags(self) -> dict:  # scikit-learn before 1.6
        return {"binary_only": True}

    # -- fitting --------------------------------------------------------

    def fit(self, X: Any, y: Any = None) -> "LSTMClassifier":
        """Trains on the rows of `X`, in time order. `y` is the label
        column (0/1: the label of row `t` is `y[t + horizon]`), or the
        price column when `price_column` is set; without `y`, `X` holds
        the column `target_column` (or `price_column`) itself. Without
        `features`, the features are what `recur train` takes: every
        numeric column of `X` but the target, `time_column` and unnamed
        index columns (`Unnamed: 0`), whether `y` is given apart or not.
        (`positive_label` belongs to `SequenceClassifier`: this label is
        0/1 already.)"""
        params = self.get_params()
        if params["positive_label"] is not None:
            raise ValueError(
                f"positive_label is {params['positive_label']!r}, but it applies to whole series only "
                "(SequenceClassifier, the sequences layout): this classifier's label is 0/1 (or a price). "
                "Give y as 0/1, e.g. (y == 'wet').astype(int), and leave positive_label None"
            )
        names, cols, from_frame = _columns(X, "X", params["time_column"])
        n_x = len(names)
        if not cols:
            raise ValueError("X has no columns; give the feature columns (and the target, without y)")
        if isinstance(y, (str, bytes, dict)):
            # A column name where the column belongs: name it in X instead.
            raise TypeError(
                f"y is {type(y).__name__}; give the target's values, one per row of X (or leave "
                "y out and keep the target column in X)"
            )
        if y is not None:
            y_arr = _column_or_1d(y)
            if y_arr.ndim != 1 or len(y_arr) != (len(cols[0]) if cols else 0):
                raise ValueError(f"y has shape {y_arr.shape}; give one value per row of X")
            given = params["price_column"] or params["target_column"]
            y_name = getattr(y, "name", None)
            target = str(given or (y_name if y_name is not None else "target"))
            if target in names:
                # Among columns the user named (a frame's or a dict's), the
                # clash is most likely the label left among the features:
                # refused, whoever named y.
                named_x = from_frame or isinstance(X, dict)
                if given or (y_name is not None and named_x):
                    raise ValueError(f"y is named `{target}`, a column of X too: drop it from X or pass y=None")
                if named_x:
                    raise ValueError(
                        f"X has a column `{target}`, the name an unnamed y takes: if it is the label, "
                        "drop it from X; else give y as a pandas Series of another name, or set target_column"
                    )
                # Otherwise the name is only the package's (X's columns x0,
                # x1, ... of an array): take a free one.
                base, k = target, 1
                while target in names:
                    target, k = f"{base}_{k}", k + 1
            if params["price_column"]:
                params["price_column"] = target
            else:
                params["target_column"] = target
            col = _target_column(y_arr)
            bad: Any
            if isinstance(col, np.ndarray):
                bad = np.flatnonzero(~np.isfinite(col))
            else:
                bad = [_as_numbers(y_arr.tolist())[1] or 0]
            if len(bad):
                what = "prices" if params["price_column"] else "labels 0/1"
                raise ValueError(f"y[{bad[0]}] is {np.asarray(y_arr[bad[0]]).item()!r}: y holds {what}, a finite number on every row")
            names = names + [target]
            cols = cols + [col]
            # Without `features`, recur's default rule picks them, as it
            # does from X with the target inside.
        elif not (params["target_column"] or params["price_column"]):
            raise ValueError("fit needs y, or target_column (or price_column) naming a column of X")
        cfg = _config.to_config(params)
        parent, out = _new_model_dir()
        try:
            try:
                report_json, report_text = _recur.train_classifier(
                    _config.to_yaml(cfg), names, cols, out, _progress_callback(self.progress)
                )
            except ValueError as e:
                if y is not None:
                    # The target was added to X's columns from y.
                    e = ValueError(str(e).replace(f"X: target column `{target}`", f"y (the target `{target}`)"))
                raise _with_keywords(e) from None
            _write_sidecar(out, {
                "estimator": "LSTMClassifier",
                "n_features_in": n_x,
                "feature_names_in": names[:n_x] if from_frame else None,
            })
        except BaseException:
            shutil.rmtree(parent, ignore_errors=True)
            raise
        self._set_fitted(_Fitted(out, owned=True, remove=parent), report_json, report_text)
        warn_report(self.report_)
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
        # The columns fit saw, as the package recorded them; a model the
        # CLI wrote read its features by name from a table.
        meta = fitted.meta
        if "n_features_in" in meta:
            self.n_features_in_ = int(meta["n_features_in"])
            names = meta.get("feature_names_in")
        else:
            self.n_features_in_ = len(self.features_)
            names = self.features_
        if names is not None:
            self.feature_names_in_ = np.asarray(names, dtype=object)
        elif "feature_names_in_" in self.__dict__:
            # scikit-learn's rule: X without names leaves none behind.
            del self.feature_names_in_

    def _state(self) -> "_Fitted":
        """The fitted model with what fit recorded of it, read once: a
        call that reads the model here and the columns from attributes
        could see an old model with a refit's new column names (another
        thread refitting), and score swapped columns without an error."""
        f = getattr(self, "_fitted", None)
        if f is None:
            raise NotFittedError(
                "This LSTMClassifier instance is not fitted yet. Call 'fit' with appropriate arguments before using this estimator."
            )
        return f

    def _model(self):
        return self._state().model

    # -- predicting -----------------------------------------------------

    def score_rows(self, X: Any, y: Any = None) -> dict[str, np.ndarray]:
        """What `recur predict` writes, as arrays: `row` (the row of `X`),
        `label`, `p_lstm`, `p_trees`, `p_ensemble` (raw), `probability`
        (calibrated, the deployed model's) and `decision`, for the rows
        the model scores; NaN where a value is missing. `label` is the
        label of the row as fit made it (the target `horizon` rows later,
        or the price rule's) where `X` holds the target column or `y`
        gives it (as `fit` takes it), else NaN."""
        s = self._score(X, check=False, y=y, labels=True)[1]
        time_column = self._params_of_model()["time_column"]
        if time_column is not None and not isinstance(X, np.ndarray):
            # The time of each scored row, as `recur predict` writes it
            # beside `row`, with X's own values.
            have = list(X.columns) if hasattr(X, "columns") else list(X) if isinstance(X, dict) else []
            at = [c for c in have if str(c) == time_column]
            if at:
                col = X[at[0]]
                times = col.to_numpy() if hasattr(col, "to_numpy") else np.asarray(col)
                s = {"row": s["row"], time_column: times[s["row"]], **{k: v for k, v in s.items() if k != "row"}}
        return s

    def _params_of_model(self, f: Optional["_Fitted"] = None) -> dict:
        """The keywords of the fitted model's config (its time column,
        target), as `recur.config_params` reads them."""
        return _config.from_config(json.loads((f or self._state()).model.config_json))

    @staticmethod
    def _columns_fit_saw(f: "_Fitted") -> tuple[int, Optional[list[str]]]:
        """How many columns fit saw and their names (None for an array),
        from the fitted state itself (what `_set_fitted` makes
        `n_features_in_` and `feature_names_in_` of)."""
        meta = f.meta
        if "n_features_in" in meta:
            names = meta.get("feature_names_in")
            return int(meta["n_features_in"]), None if names is None else [str(c) for c in names]
        feats = list(f.model.features)
        return len(feats), feats

    def _array_names(self, k: int, f: "_Fitted") -> list[str]:
        """The names of an array's `k` columns, which are positional: the
        columns fit saw (the model then reads the features it kept), or
        the kept features alone, in `features_` order."""
        feats = list(f.model.features)
        n_in, fitted_names = self._columns_fit_saw(f)
        if k == n_in:
            return fitted_names or [f"x{j}" for j in range(n_in)]
        if k == len(feats):
            return feats
        seen = f"the {n_in} columns fit saw, or " if n_in is not None else ""
        raise ValueError(
            f"X has {k} columns; give {seen}the {len(feats)} features "
            f"the model reads, in this order: {', '.join(feats)}"
        )

    def _score(self, X: Any, check: bool = True, y: Any = None, labels: bool = False) -> tuple[int, dict]:
        """The row count of `X` and the model's scores. A float32
        C-contiguous array whose columns are the model's features in
        `features_` order goes to the scorer with no float64 conversion (the trees
        then split float32-rounded values, which can move their
        probabilities near a split: give float64 for `recur predict`'s
        numbers exactly); a DataFrame becomes float64 columns matched by
        name, any other array float64 columns taken positionally (see
        `_array_names`). With `y`, the target column is added, so that
        `label` is the label of each row."""
        f = self._state()
        m = f.model
        X = _unmasked(X, "X")
        params = self._params_of_model(f)
        if isinstance(X, np.ndarray) and X.ndim == 2 and X.dtype.kind in "biuf":
            names = self._array_names(X.shape[1], f)
            n = X.shape[0]
            # The labels come from the target (or price) column of a table
            # only: where they are wanted (`score_rows`), an array holding
            # one as a feature goes that way too, so that `label` is filled.
            target, price = params["target_column"], params["price_column"]
            fast = (
                y is None
                and not (labels and {target, price} & set(names))
                and price not in names
                and names == list(m.features)
                and X.dtype == np.float32
                and X.flags.c_contiguous
                and X.flags.aligned
            )
            # Too few rows go the general way, whose error says how many
            # the first prediction needs (here they gave an empty table).
            if fast and n > m.first_row:
                if check:
                    self._check_rows(n)
                if target in names:
                    # Checked as the table path checks it, on the column
                    # as it is.
                    v = X[:, names.index(target)]
                    bad = np.flatnonzero(~(np.isnan(v) | (v == 0) | (v == 1)))
                    if bad.size:
                        raise ValueError(
                            f"X: target column {target!r} must be binary (0 or 1): "
                            f"row {int(bad[0])} holds {float(v[bad[0]]):g}"
                        )
                return n, m.score_array(X)
        names, cols, from_frame = _columns(X, "X", params["time_column"])
        if from_frame and self._fitted_without_names(names, len(cols), f):
            # scikit-learn's rule: the columns are then taken by position.
            warnings.warn(
                f"X has feature names, but {type(self).__name__} was fitted without feature names",
                UserWarning,
                stacklevel=4,
            )
            from_frame = False
        if not from_frame and not isinstance(X, dict):
            names = self._array_names(len(cols), f)
        if not cols:
            raise ValueError(
                f"X has no columns; give the {len(m.features)} features the model reads: {', '.join(m.features)}"
            )
        n = len(cols[0])
        if y is not None:
            names, cols = self._with_target(names, cols, n, y, f)
        if check:
            self._check_rows(n)
        return n, m.score(names, cols)

    def _fitted_without_names(self, names: list[str], k: int, f: "_Fitted") -> bool:
        """Whether a frame of columns `names` (`k` of them) comes to a
        model fitted on an array, whose positional names it lacks."""
        meta = f.meta
        return (
            "n_features_in" in meta
            and meta.get("feature_names_in") is None
            and k == int(meta["n_features_in"])
            and not set(f.model.features) <= set(names)
        )

    def _with_target(
        self, names: list[str], cols: list[Any], n: int, y: Any, f: "_Fitted"
    ) -> tuple[list[str], list[Any]]:
        """`names` and `cols` with `y` as the model's target column (the
        label column, or the price with `price_column`), from which recur
        makes each row's label as fit made it."""
        if isinstance(y, (str, bytes, dict)):
            raise TypeError(
                f"y is {type(y).__name__}; give the target's values, one per row of X (or leave "
                "y out and keep the target column in X)"
            )
        y_arr = _column_or_1d(y)
        if y_arr.shape != (n,):
            raise ValueError(f"y has shape {y_arr.shape}; give one value per row of X ({n})")
        cfg = self._params_of_model(f)
        target = cfg["price_column"] or cfg["target_column"]
        if not target:
            raise ValueError("the model's config names no target column, so y cannot be labelled")
        col = _target_column(y_arr)
        if target in names:
            have = cols[names.index(target)]
            a, b = np.asarray(have), np.asarray(col)
            equal = a.shape == b.shape and (
                bool(np.all((a == b) | (np.isnan(a) & np.isnan(b)))) if a.dtype.kind == "f" == b.dtype.kind
                else bool(np.all(a == b))
            )
            if not equal:
                raise ValueError(
                    f"X holds the column `{target}`, the model's target, and y differs from it: give one of them"
                )
            return names, cols
        return names + [target], cols + [col]

    def _check_rows(self, n: int) -> None:
        m = self._model()
        if n < m.min_rows:
            raise ValueError(
                f"X has {n} row{'' if n == 1 else 's'}; the model needs at least {m.min_rows} (a window of "
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
        float32 C-contiguous array whose columns are the features in
        `features_` order is scored without a float64 conversion."""
        p = self._scored(X, "probability")
        return np.column_stack([1.0 - p, p])

    def predict(self, X: Any) -> np.ndarray:
        """The saved decision (1 when the probability reaches the
        threshold chosen by expected value on validation) for each row;
        NaN where there is no prediction."""
        return self._scored(X, "decision")

    def score(self, X: Any, y: Any = None, sample_weight: Any = None) -> float:
        """The accuracy of `predict` on the rows that have both a
        prediction and a label. `y` is what `fit` takes: the raw target
        column (0/1), or the price with `price_column`, one value per row
        of `X`; without it, the labels come from the target (or price)
        column in `X`; row `t`'s decision is compared with row `t`'s label as
        fit made it (`y[t + horizon]`, or the price rule's), not with
        `y[t]`. The first rows (before the first full window) and the
        last `horizon` rows (no label yet) are left out.
        `sample_weight` is one weight per row of `X`."""
        n, s = self._score(X, y=y, labels=True)
        label, decision = np.asarray(s["label"], dtype=np.float64), np.asarray(s["decision"], dtype=np.float64)
        keep = ~np.isnan(label) & ~np.isnan(decision)
        if not keep.any():
            if np.isnan(label).all():
                # More rows would not help: there is nothing to score against.
                raise ValueError(
                    "no row of X has a label to score against: give y (or X with the target "
                    "or price column) with labels known; an empty value is a label not known yet"
                )
            raise ValueError("no row of X has both a prediction and a label: give more rows")
        w = None
        if sample_weight is not None:
            w = np.asarray(_unmasked(sample_weight, "sample_weight"), dtype=np.float64)
            if w.shape != (n,):
                raise ValueError(f"sample_weight has shape {w.shape}; give one weight per row of X ({n})")
            if not np.all(np.isfinite(w)):
                i = int(np.flatnonzero(~np.isfinite(w))[0])
                raise ValueError(f"sample_weight[{i}] is {float(w[i])!r}: give finite weights")
            w = w[np.asarray(s["row"])[keep]]
            if w.sum() == 0:
                raise ValueError(
                    "sample_weight sums to 0 over the rows that have both a prediction and a "
                    "label: nothing to score"
                )
        return float(np.average(label[keep] == decision[keep], weights=w))

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
        report = fitted.files.get("report.json", b"{}").decode("utf-8")
        est._set_fitted(fitted, report, _recur.report_text(report, "classifier"))
        return est


def _target_column(y: np.ndarray) -> Any:
    """A target column as recur takes it: float64 numbers (numbers held
    as objects or text too), else text."""
    if y.dtype.kind in "biuf":
        return _contiguous(y, dtype=np.float64)
    num = _numbers_held_as_objects(y)
    return num if num is not None else [str(v) for v in y]


def config_params(path: StrPath) -> dict[str, Any]:
    """The `LSTMClassifier` keywords of a recur config file:
    `LSTMClassifier(**config_params("configs/rainfall.yaml"))` trains what
    `recur train --config configs/rainfall.yaml` trains."""
    return _config.from_config(json.loads(_recur.read_config(_path(path, "path", "a config file's path"))))

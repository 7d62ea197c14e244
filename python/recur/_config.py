"""The estimator's keywords and where each goes in recur's Job A config.

Every key of the model, training, selection, trees, ensemble, calibration
and cost sections (and the data keys that say what to predict) is one flat
keyword, with the default the Rust library gives it (`tests` check them
against `recur._recur.default_config()`). A section that is off by default
(selection, trees, ensemble) has a switch keyword of its own name.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

# (keyword, path in the config, default)
PARAMS: list[tuple[str, tuple[str, ...], Any]] = [
    # data: what to predict and from which columns
    ("features", ("data", "features"), None),
    ("time_column", ("data", "time_column"), None),
    ("target_column", ("data", "target", "column"), None),
    ("horizon", ("data", "target", "horizon"), 0),
    ("price_column", ("data", "target", "price_column"), None),
    ("price_k", ("data", "target", "k"), 0.5),
    ("price_vol_window", ("data", "target", "vol_window"), 20),
    ("price_tau_min", ("data", "target", "tau_min"), 0.001),
    ("price_tau_max", ("data", "target", "tau_max"), 0.10),
    ("price_drop_neutral", ("data", "target", "drop_neutral"), False),
    ("positive_label", ("data", "target", "positive_label"), None),
    ("split_train", ("data", "split", "train"), 0.70),
    ("split_val", ("data", "split", "val"), 0.15),
    ("split_test", ("data", "split", "test"), 0.15),
    ("split_gap", ("data", "split", "gap"), None),
    # model
    ("model_type", ("model", "type"), "lstm"),
    ("sequence_length", ("model", "sequence_length"), 32),
    ("hidden_size", ("model", "hidden_size"), 64),
    ("num_layers", ("model", "num_layers"), 1),
    ("dropout", ("model", "dropout"), 0.3),
    ("shuffle", ("model", "shuffle"), True),
    ("filters", ("model", "filters"), (128, 256, 128)),
    ("kernels", ("model", "kernels"), (8, 5, 3)),
    # training
    ("learning_rate", ("training", "learning_rate"), 0.0005),
    ("weight_decay", ("training", "weight_decay"), 0.0),
    ("batch_size", ("training", "batch_size"), 512),
    ("epochs", ("training", "epochs"), 30),
    ("early_stopping_patience", ("training", "early_stopping_patience"), 5),
    ("grad_clip", ("training", "grad_clip"), 1.0),
    ("pos_weight", ("training", "pos_weight"), "auto"),
    ("class_weight", ("training", "class_weight"), "auto"),
    ("seed", ("training", "seed"), 42),
    ("precision", ("training", "precision"), "f32"),
    # temporal feature selection (off unless selection=True)
    ("selection", ("selection",), False),
    ("selection_min_abs_autocorr", ("selection", "min_abs_autocorr"), 0.1),
    ("selection_max_noise_ratio", ("selection", "max_noise_ratio"), 5.0),
    ("selection_max_outlier_share", ("selection", "max_outlier_share"), 0.01),
    ("selection_outlier_z", ("selection", "outlier_z"), 5.0),
    ("selection_min_trend", ("selection", "min_trend"), None),
    ("selection_max_features", ("selection", "max_features"), 50),
    ("selection_ewma_span", ("selection", "ewma_span"), 5),
    # gradient-boosted trees (off unless trees=True)
    ("trees", ("trees",), False),
    ("trees_lags", ("trees", "lags"), ()),
    ("trees_iterations", ("trees", "iterations"), 500),
    ("trees_learning_rate", ("trees", "learning_rate"), 0.05),
    ("trees_max_depth", ("trees", "max_depth"), 4),
    ("trees_early_stopping_rounds", ("trees", "early_stopping_rounds"), 25),
    ("trees_xgboost_model", ("trees", "xgboost_model"), None),
    # calibration and the decision's values
    ("calibration", ("calibration",), "isotonic"),
    ("cost_tp", ("cost", "tp"), 0.005),
    ("cost_fp", ("cost", "fp"), -0.003),
    ("cost_tn", ("cost", "tn"), 0.0),
    ("cost_fn", ("cost", "fn"), -0.001),
    # the blend of trees and LSTM (off unless ensemble=True; needs trees)
    ("ensemble", ("ensemble",), False),
    ("ensemble_weights", ("ensemble", "weights"), "fixed"),
    ("ensemble_trees", ("ensemble", "trees"), 0.7),
    ("ensemble_lstm", ("ensemble", "lstm"), 0.3),
    ("ensemble_min_weight", ("ensemble", "min_weight"), 0.1),
    ("ensemble_max_weight", ("ensemble", "max_weight"), 0.9),
]

SWITCHES = ("selection", "trees", "ensemble")
DEFAULTS = {name: default for name, _, default in PARAMS}


def to_config(params: dict[str, Any]) -> dict[str, Any]:
    """The nested config of the keywords `params`."""
    cfg: dict[str, Any] = {"model": {"type": "lstm"}}
    for name, path, _ in PARAMS:
        if name in SWITCHES:
            continue
        if path[0] in SWITCHES and not params[path[0]]:
            continue
        value = params[name]
        if isinstance(value, (float, np.floating)) and np.isnan(value):
            raise ValueError(f"{name} is NaN: give a number")
        if isinstance(value, tuple):
            value = list(value)
        if hasattr(value, "tolist"):
            value = value.tolist()
        node = cfg
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
    for s in SWITCHES:
        if params[s]:
            cfg.setdefault(s, {})
    return cfg


def from_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """The keywords of a nested config (a model directory's config.yaml,
    or a config file read with `yaml.safe_load`)."""
    out: dict[str, Any] = {}
    for name, path, default in PARAMS:
        if name in SWITCHES:
            out[name] = cfg.get(name) is not None
            continue
        node: Any = cfg
        for key in path:
            if not isinstance(node, dict) or key not in node or node[key] is None:
                node = default
                break
            node = node[key]
        if isinstance(default, tuple) and isinstance(node, list):
            node = tuple(node)
        if isinstance(node, str) and node in ("inf", "-inf") and isinstance(default, float):
            node = float(node)
        out[name] = node
    return out


_INF = "__recur_inf__"


def _finite(v: Any) -> Any:
    if isinstance(v, float) and math.isinf(v):
        return _INF if v > 0 else "-" + _INF
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_finite(x) for x in v]
    return v


def to_yaml(cfg: dict[str, Any]) -> str:
    """YAML text of `cfg` (JSON, which YAML reads, with infinities as
    YAML's `.inf`, which JSON cannot write)."""
    text = json.dumps(_finite(cfg))
    return text.replace(f'"-{_INF}"', "-.inf").replace(f'"{_INF}"', ".inf")

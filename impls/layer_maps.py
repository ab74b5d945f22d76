"""Weight mapping by layer kind: one layer's tensors, torch's or Keras's, to and from the canonical
layout of fixtures/expected.py (Keras's own layout: kernels (..., in, out), a GRU's gates z, r, h).

A map is a fact about a layer kind, never about a network: a conv, a dense layer, an embedding, a
BatchNorm (its running statistics included), a GRU, an LSTM. Each direction is a function of the
layer's tensors by their own names, numpy only, so it serves the adapters, ``python -m
impls.convert`` and a user's own pair alike. Every map is a permutation of values (bit-exact both
ways) except where the frameworks hold different numbers of tensors:

- **BatchNorm.** torch's ``num_batches_tracked`` has no Keras counterpart: it is dropped going to
  the canonical layout and left as it is coming back. It changes nothing while ``momentum`` is a
  number (it counts steps only for ``momentum=None``, the cumulative average, which has no Keras
  twin).
- **LSTM.** torch carries ``bias_ih`` and ``bias_hh``; every gate reads only their sum, which is
  Keras's one ``bias``. Coming back, the sum goes to ``bias_ih`` and ``bias_hh`` is zero, so
  canonical -> torch -> canonical is bit-exact, and torch -> canonical -> torch keeps the sum
  (the split itself cannot be recovered: it never changes an output).
- **GRU.** Keras's ``reset_after=True`` (its default) is the formula torch computes, with a
  (2, 3H) bias: the input bias and the recurrent one, which torch keeps apart because the reset
  gate multiplies the recurrent bias. The gate blocks are reordered (torch r, z, n; Keras z, r, h).
  A Keras GRU with ``reset_after=False`` has a (3H,) bias and another formula: it has no torch
  twin, and the map says so.

Only a single-layer, one-direction torch recurrent layer maps onto one Keras layer; a stacked or
bidirectional one is refused with its tensors named.
"""

from __future__ import annotations

import numpy as np

KINDS = ("conv", "dense", "embedding", "batchnorm", "gru", "lstm")


class LayerMapError(ValueError):
    """A layer's tensors do not fit its kind's map: the message names the tensor and the fix."""


def _names(kind: str, got: dict, known: tuple, framework: str, needed: tuple = ()) -> None:
    """Refuse a tensor the kind does not hold, and a missing one of ``needed``."""
    odd = sorted(set(got) - set(known))
    if odd:
        raise LayerMapError(f"{framework} {kind} tensor(s) {', '.join(odd)} have no counterpart in the other "
                            f"framework (a {kind} layer holds {', '.join(known)})")
    missing = [k for k in needed if k not in got]
    if missing:
        raise LayerMapError(f"{framework} {kind} layer without {', '.join(missing)}: a {kind} layer holds "
                            f"{', '.join(known)}")


def _conv_to_canonical(w: np.ndarray) -> np.ndarray:
    """torch (out, in, *k) to (*k, in, out), for 1-, 2- and 3-D convolutions."""
    return np.ascontiguousarray(w.transpose(*range(2, w.ndim), 1, 0))


def _conv_from_canonical(w: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(w.transpose(w.ndim - 1, w.ndim - 2, *range(w.ndim - 2)))


def _gates(w: np.ndarray, order: tuple, axis: int) -> np.ndarray:
    """The gate blocks of ``w`` along ``axis`` (3H or 4H long) taken in ``order``."""
    blocks = np.split(w, len(order), axis=axis)
    return np.ascontiguousarray(np.concatenate([blocks[i] for i in order], axis=axis))


_GRU_ORDER = (1, 0, 2)   # torch r, z, n -> Keras z, r, h (and back: the swap is its own inverse)
_TORCH_RNN = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")
_TORCH_BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
# A torch BatchNorm's tensors by name -> their canonical names (torch_adapter maps BN tensor by tensor
# with it: a gradient carries weight and bias without the running statistics).
TORCH_BATCHNORM = _BN = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean",
                         "running_var": "moving_variance"}
KERAS_TENSORS = _KERAS = {  # a Keras layer's weights by kind, by their short names: the canonical names
    "conv": ("kernel", "bias"),
    "dense": ("kernel", "bias"),
    "embedding": ("embeddings",),
    "batchnorm": ("gamma", "beta", "moving_mean", "moving_variance"),
    "gru": ("kernel", "recurrent_kernel", "bias"),
    "lstm": ("kernel", "recurrent_kernel", "bias"),
}


# A kind's tensors that are state, not parameters: no gradient, never stepped by an optimizer.
STATE = {"batchnorm": ("moving_mean", "moving_variance")}

# What a layer of each kind cannot lack (a bias, BatchNorm's gamma and beta may be absent).
_NEEDED = {"conv": ("kernel",), "dense": ("kernel",), "embedding": ("embeddings",),
           "batchnorm": ("moving_mean", "moving_variance"), "gru": ("kernel", "recurrent_kernel"),
           "lstm": ("kernel", "recurrent_kernel")}


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise LayerMapError(f"no weight map for a layer of kind {kind!r}; the kinds mapped are {', '.join(KINDS)}")


def _check_recurrent(kind: str, tensors: dict) -> None:
    projected = sorted(k for k in tensors if k.startswith("weight_hr"))
    if projected:
        raise LayerMapError(f"torch {kind} tensor(s) {', '.join(projected)}: an LSTM with proj_size > 0 has no "
                            "Keras twin; build it with proj_size=0")
    deeper = sorted(k for k in tensors if k not in _TORCH_RNN)
    if deeper:
        raise LayerMapError(f"torch {kind} tensor(s) {', '.join(deeper)}: a stacked or bidirectional layer has no "
                            f"one Keras twin; build one nn.{kind.upper()} per layer and direction "
                            f"(num_layers=1, bidirectional=False) and a Keras layer for each")


def require_running_stats(torch_tensors) -> None:
    """Refuse a torch BatchNorm without running statistics (its tensors' names given)."""
    if "running_mean" not in torch_tensors or "running_var" not in torch_tensors:
        raise LayerMapError("a BatchNorm without running_mean and running_var (track_running_stats=False) "
                            "normalises with the batch's statistics in evaluation too, which no Keras layer "
                            "does; build it with track_running_stats=True")


def torch_to_canonical(kind: str, tensors: dict) -> dict:
    """{canonical name: value} of one torch layer's tensors (parameters and buffers, by the names
    ``named_parameters``/``named_buffers`` give them with ``recurse=False``)."""
    _check_kind(kind)
    t = {k: np.asarray(v) for k, v in tensors.items()}
    if kind in ("conv", "dense"):
        _names(kind, t, ("weight", "bias"), "torch", needed=("weight",))
        out = {"kernel": _conv_to_canonical(t["weight"]) if kind == "conv" else np.ascontiguousarray(t["weight"].T)}
        if "bias" in t:
            out["bias"] = t["bias"].copy()
        return out
    if kind == "embedding":
        _names(kind, t, ("weight",), "torch", needed=("weight",))
        return {"embeddings": t["weight"].copy()}
    if kind == "batchnorm":
        _names(kind, t, _TORCH_BN, "torch")
        require_running_stats(t)
        return {_BN[k]: v.copy() for k, v in t.items() if k in _BN}
    _check_recurrent(kind, t)
    _names(kind, t, _TORCH_RNN, "torch", needed=("weight_ih_l0", "weight_hh_l0"))
    order = _GRU_ORDER if kind == "gru" else (0, 1, 2, 3)
    out = {"kernel": _gates(t["weight_ih_l0"], order, 0).T.copy(),
           "recurrent_kernel": _gates(t["weight_hh_l0"], order, 0).T.copy()}
    if "bias_ih_l0" in t or "bias_hh_l0" in t:
        if not ("bias_ih_l0" in t and "bias_hh_l0" in t):
            raise LayerMapError(f"torch {kind} has one of bias_ih_l0 and bias_hh_l0: a torch layer holds both or neither")
        b_ih, b_hh = _gates(t["bias_ih_l0"], order, 0), _gates(t["bias_hh_l0"], order, 0)
        out["bias"] = np.stack([b_ih, b_hh]) if kind == "gru" else b_ih + b_hh
    return out


def canonical_to_torch(kind: str, canonical: dict) -> dict:
    """{torch tensor name: value} for one layer from its canonical tensors; the inverse of
    ``torch_to_canonical`` (for an LSTM's biases, up to their split: see the module's note)."""
    _check_kind(kind)
    c = {k: np.asarray(v) for k, v in canonical.items()}
    _names(kind, c, _KERAS[kind], "canonical", needed=_NEEDED[kind])
    if kind in ("conv", "dense"):
        out = {"weight": _conv_from_canonical(c["kernel"]) if kind == "conv" else np.ascontiguousarray(c["kernel"].T)}
        if "bias" in c:
            out["bias"] = c["bias"].copy()
        return out
    if kind == "embedding":
        return {"weight": c["embeddings"].copy()}
    if kind == "batchnorm":
        back = {v: k for k, v in _BN.items()}
        return {back[k]: v.copy() for k, v in c.items()}
    order = _GRU_ORDER if kind == "gru" else (0, 1, 2, 3)
    out = {"weight_ih_l0": _gates(c["kernel"].T, order, 0), "weight_hh_l0": _gates(c["recurrent_kernel"].T, order, 0)}
    if "bias" in c:
        bias = c["bias"]
        if kind == "gru":
            if bias.ndim != 2 or bias.shape[0] != 2:
                raise LayerMapError(f"a GRU bias of shape {bias.shape}: Keras's reset_after=False form, another "
                                    "formula than torch's nn.GRU; build the Keras GRU with reset_after=True (the default)")
            out["bias_ih_l0"], out["bias_hh_l0"] = _gates(bias[0], order, 0), _gates(bias[1], order, 0)
        else:
            out["bias_ih_l0"], out["bias_hh_l0"] = bias.copy(), np.zeros_like(bias)
    return out


def keras_to_canonical(kind: str, weights: dict) -> dict:
    """{canonical name: value} of one Keras layer's weights by their short names (the canonical
    layout is Keras's: the names are checked, the values copied)."""
    _check_kind(kind)
    w = {k: np.asarray(v) for k, v in weights.items()}
    _names(kind, w, _KERAS[kind], "keras", needed=_NEEDED[kind])
    if kind == "gru" and "bias" in w and w["bias"].ndim != 2:
        raise LayerMapError(f"a Keras GRU with a bias of shape {w['bias'].shape} (reset_after=False) computes "
                            "another formula than torch's nn.GRU; build it with reset_after=True (the default)")
    return {k: v.copy() for k, v in w.items()}


def canonical_to_keras(kind: str, canonical: dict) -> dict:
    """{Keras weight short name: value} for one layer from its canonical tensors."""
    return keras_to_canonical(kind, canonical)

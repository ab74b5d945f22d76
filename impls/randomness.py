"""Shared training-time randomness: one stream of masks and noise for both twins.

In training mode a twin's stochastic ops (dropout of every kind, Gaussian noise) are intercepted
by its adapter and fed from a ``Stream``: masks and noise drawn from one seed, in call order, in
the canonical layout (NHWC; features flattened in (H, W, C) order). Two twins that apply the same
ops at the same places therefore see the same masks, and their training-mode outputs, losses and
gradients can be compared at the eval-mode tolerances. What each op was (kind, granularity,
rate, the parameterised layer it follows) is recorded for the structural check.

A random draw inside a training-mode forward that is not one of the intercepted ops (a torch
generator that advanced, a Keras random function called) is recorded as ``unrecognised``: such
a twin cannot be compared with shared masks and fails with the layer named.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class StochasticOp:
    """One stochastic op seen in a training-mode forward pass."""

    kind: str         # "dropout" | "gaussian_noise" | "gaussian_dropout"
    granularity: str  # "element" | "channel" (one draw per sample and channel: Dropout2d, SpatialDropout2D) | "sample"
    rate: float       # drop probability (dropout) or stddev (noise)
    after: str        # the canonical parameterised layer it follows ("input" before the first)
    where: str = ""   # the framework's name for it (a layer, or the function called)

    def describe(self) -> str:
        what = {"dropout": "dropout", "gaussian_noise": "Gaussian noise", "gaussian_dropout": "Gaussian dropout"}
        return f"{self.granularity}-wise {what.get(self.kind, self.kind)} {self.rate:g} after {self.after}"

    def signature(self) -> tuple:
        return (self.kind, self.granularity, round(self.rate, 9), self.after)


@dataclass
class Stream:
    """Masks and noise from one seed, consumed in call order, in canonical layout."""

    seed: int
    ops: list = field(default_factory=list)
    unrecognised: list = field(default_factory=list)  # names of layers/functions that drew random numbers
    after: str = "input"  # the adapter updates it as parameterised layers run

    def __post_init__(self):
        self.rng = np.random.RandomState(self.seed)

    def keep_mask(self, canonical_shape: tuple, rate: float) -> np.ndarray:
        """float32 {0, 1}: 1 keeps the element, with probability 1 - rate."""
        return (self.rng.random_sample(canonical_shape) >= rate).astype(np.float32)

    def normal(self, canonical_shape: tuple) -> np.ndarray:
        return self.rng.standard_normal(canonical_shape).astype(np.float32)

    def record(self, kind: str, granularity: str, rate: float, where: str) -> None:
        self.ops.append(StochasticOp(kind, granularity, float(rate), self.after, where))


def noise_granularity(canonical_noise_shape: tuple, canonical_shape: tuple) -> str:
    """"element" when the noise varies over every axis; "channel" when it is shared over the
    spatial (or sequence) axes of each sample and channel; "sample" when each sample draws once
    (torch's Dropout1d on a (N, features) batch, which it reads as one unbatched (C, L))."""
    if tuple(canonical_noise_shape) == tuple(canonical_shape):
        return "element"
    shared = [i for i, (a, b) in enumerate(zip(canonical_noise_shape, canonical_shape)) if a == 1 and b != 1]
    if len(canonical_shape) >= 2 and shared == list(range(1, len(canonical_shape))):
        return "sample"
    return "channel" if shared and 0 not in shared and len(canonical_shape) - 1 not in shared else "other"


def apply(stream: Stream, kind: str, rate: float, canonical_noise_shape: tuple,
          canonical_shape: tuple, where: str) -> np.ndarray:
    """The multiplicative or additive noise (canonical layout, broadcastable to the input) for one
    intercepted op, recorded in the stream: dropout gives mask / (1 - rate); Gaussian dropout
    1 + rate * N(0, 1); Gaussian noise rate * N(0, 1) (added, not multiplied)."""
    stream.record(kind, noise_granularity(canonical_noise_shape, canonical_shape), rate, where)
    if kind == "dropout":
        if rate >= 1:
            return np.zeros(canonical_noise_shape, np.float32)
        return stream.keep_mask(canonical_noise_shape, rate) / np.float32(1 - rate)
    z = stream.normal(canonical_noise_shape)
    return (np.float32(1) + np.float32(rate) * z) if kind == "gaussian_dropout" else np.float32(rate) * z


def step_seed(base: int, step: int) -> int:
    """The stream seed of one training step (both twins draw the same)."""
    return (base * 1_000_003 + step) % (2 ** 31 - 1)


# The process-wide generators a random draw outside the shared masks can come from.
GLOBAL_GENERATORS = ("torch", "numpy", "random", "tensorflow")


def reseed(generator: str, seed: int) -> None:
    """Reseed one global generator (the determinism probe reseeds each in turn). TensorFlow's is
    its global seed (ops without one of their own derive theirs from it); a machine without
    TensorFlow has nothing to reseed there."""
    if generator == "numpy":
        np.random.seed(seed)
    elif generator == "random":
        import random

        random.seed(seed)
    elif generator == "torch":
        from twinbench.impls import frameworks

        frameworks.torch.manual_seed(seed)
    elif generator == "tensorflow":
        from twinbench.impls import frameworks

        if frameworks.tf is not None:
            frameworks.tf.random.set_seed(seed)
    else:
        raise ValueError(f"unknown generator {generator!r}; one of {', '.join(GLOBAL_GENERATORS)}")

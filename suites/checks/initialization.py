"""Initialisation: a freshly built candidate's weights are drawn from the reference's law.

Every other check copies the reference's weights in first, so a port left at its framework's
default initialisers (Keras: glorot-uniform kernels, zero biases, embeddings U(+-0.05)) would
conform there, although it starts training from another distribution. This check builds the
candidate afresh, seed after seed, and holds each canonical weight's values to the law written
in ``fixtures/expected.INIT_LAWS`` with a one-sample Kolmogorov-Smirnov test: the law's exact CDF
stands in for the reference sample, which is the two-sample test's limit and has no sampling
noise on the reference side.

What the test needs no list for: any initialiser, written in any way (an initializer object, a
``reset_parameters``, a loop of ``uniform_`` calls, weights loaded from a file), is judged by the
values it produces. A weight identical in two builds (an initialiser with a fixed seed) counts
once: it is one draw. A weight whose elements are all equal (a constant such as Keras's zero bias,
which no continuous law draws) counts in every build, so a constant is rejected however small.
A user who ports trained weights only deselects the family (``-m "not initialization"``).
"""

from __future__ import annotations

import hashlib
import math

import numpy as np

from twinbench.fixtures import tolerances as T
from twinbench.impls import networks, registry
from twinbench.suites import runstate
from twinbench.suites.helpers import failure


def _erf(x: np.ndarray) -> np.ndarray:
    """erf to 1.5e-7 (Abramowitz and Stegun 7.1.26): far below the smallest critical distance the
    test meets (1.6e-3 at a million values)."""
    s = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return s * (1.0 - poly * np.exp(-a * a))


def law_cdf(law: tuple):
    """The CDF of a law of ``INIT_LAWS`` as a vectorised function."""
    kind = law[0]
    if kind == "uniform":
        bound = float(law[1])
        return lambda x: np.clip((x + bound) / (2 * bound), 0.0, 1.0)
    if kind == "normal":
        mean, std = float(law[1]), float(law[2])
        return lambda x: 0.5 * (1.0 + _erf((x - mean) / (std * math.sqrt(2.0))))
    if kind == "constant":
        value = float(law[1])
        return lambda x: (np.asarray(x) >= value).astype(np.float64)
    raise ValueError(f"initialisation law {law!r}: its kind must be 'uniform', 'normal' or 'constant' "
                     "(fixtures/expected.py)")


def describe_law(law: tuple) -> str:
    if law[0] == "uniform":
        return f"U(+-{law[1]:.4g})"
    if law[0] == "constant":
        return f"the constant {law[1]:.4g}"
    return f"N({law[1]:.4g}, {law[2]:.4g})"


def law_distance(values: np.ndarray, law: tuple) -> tuple[float, float]:
    """(distance, critical distance) of ``values`` from ``law``: the KS test of a continuous law;
    for a constant (a BatchNorm's gamma 1, its moving variance 1), the share of values that are not
    exactly it, held to less than one value (a constant is not drawn: any other value is a fault)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    if law[0] == "constant":
        return float(np.mean(v != float(law[1]))), 0.5 / len(v)
    return ks_distance(v, law_cdf(law)), ks_critical(len(v), T.INIT_ALPHA)


def ks_distance(values: np.ndarray, cdf) -> float:
    """The largest distance between the empirical CDF of ``values`` and ``cdf``."""
    x = np.sort(np.asarray(values, dtype=np.float64).ravel())
    n = len(x)
    f = cdf(x)
    above = np.arange(1, n + 1) / n - f
    below = f - np.arange(0, n) / n
    return float(max(above.max(), below.max()))


def ks_critical(n: int, alpha: float) -> float:
    """The distance the KS statistic of ``n`` values exceeds with probability ``alpha`` under the
    law (Kolmogorov's limit, 2 exp(-2 lambda^2), with Stephens's finite-n factor
    sqrt(n) + 0.12 + 0.11 / sqrt(n))."""
    lam = math.sqrt(math.log(2.0 / alpha) / 2.0)
    return lam / (math.sqrt(n) + 0.12 + 0.11 / math.sqrt(n))


def fresh_samples(spec, network: str, first_seed: int | None = None) -> tuple[dict, int]:
    """{canonical weight: values pooled over fresh builds (seeds from ``first_seed``, by default
    T.INIT_FIRST_SEED)}, and the number of builds made. The latest subject's are kept in the run
    state, so that diagnosis fits the law to the values the check judged, without building again."""
    first_seed = T.INIT_FIRST_SEED if first_seed is None else first_seed
    kept, key = runstate.current().init_samples, (repr(spec), network, first_seed)
    if kept.get("key") != key:
        kept.clear()
        kept.update(key=key, value=_build_samples(spec, network, first_seed))
    return kept["value"]


def _build_samples(spec, network: str, first_seed: int) -> tuple[dict, int]:
    laws = networks.get(network).init_laws
    pooled = {name: [] for name in laws}
    count = dict.fromkeys(laws, 0)
    seen = {name: set() for name in laws}
    builds = 0
    while builds < T.INIT_MAX_BUILDS and min(count.values()) < T.INIT_MIN_SAMPLES:
        weights = registry.build(spec, seed=first_seed + builds).get_weights()
        builds += 1
        for name in laws:
            if count[name] >= T.INIT_MIN_SAMPLES and builds > 1:
                continue
            v = np.asarray(weights[name]).ravel()
            constant = v.size > 0 and v.min() == v.max()
            digest = hashlib.sha1(np.ascontiguousarray(v).tobytes()).hexdigest()
            if digest in seen[name] and not constant:
                continue  # the same draw again: an initialiser with its own fixed seed
            seen[name].add(digest)
            pooled[name].append(v)
            count[name] += v.size
    return {name: np.concatenate(parts) for name, parts in pooled.items()}, builds


def judge(spec, network: str, first_seed: int | None = None) -> tuple[list, int]:
    """[(weight, law, n values, distance, critical distance, the values' summary)] and builds."""
    samples, builds = fresh_samples(spec, network, first_seed)
    rows = []
    for name, law in networks.get(network).init_laws.items():
        v = samples[name]
        d, crit = law_distance(v, law)
        summary = f"min {v.min():.4g}, max {v.max():.4g}, mean {v.mean():.3g}, std {v.std():.4g}"
        rows.append((name, law, len(v), d, crit, summary))
    return rows, builds


def check_initial_weights_law(twin):
    """Every canonical weight of fresh builds against the reference's initialisation law."""
    spec = getattr(twin, "spec", None)
    if spec is None:
        raise ValueError(f"{twin.name}: the twin was not built by impls.registry.build, so it cannot be built afresh")
    rows, builds = judge(spec, twin.network)
    worst = max(rows, key=lambda r: r[3] / r[4])
    measured = {"margin": round(worst[3] / worst[4], 4), "init_builds": builds,
                "init_worst_weight": worst[0], "init_ks_distance": round(worst[3], 6)}
    bad = sorted((r for r in rows if r[3] > r[4]), key=lambda r: -r[3] / r[4])
    if bad:
        lines = [f"{name}: {n:,} values from {builds} fresh build(s) ({summary}) are not drawn from "
                 f"{describe_law(law)}: KS distance {d:.3g} > {crit:.3g} (level {T.INIT_ALPHA:g}), margin {d / crit:.3g}"
                 for name, law, n, d, crit, summary in bad]
        raise failure(f"{twin.name}: the initial weights do not follow the reference's law:\n  " + "\n  ".join(lines)
                      + "\n  Initialise as the torch reference does: kaiming_uniform_(a=sqrt(5)) kernels and "
                        "U(+-1/sqrt(fan_in)) biases (Keras: VarianceScaling(1/3, 'fan_in', 'uniform') and "
                        "RandomUniform(-b, b)), N(0, 1) embeddings; a port of trained weights only deselects this "
                        "family (-m 'not initialization')", **measured)
    return measured


# ------------------------------------------------------------------------------------------
# Diagnosis: which law the values follow (suites/diagnosis.py names the cause with it)
# ------------------------------------------------------------------------------------------
def _fans(shape: tuple) -> tuple[int, int]:
    """(fan_in, fan_out) of a canonical kernel: (kh, kw, in, out) or (in, out)."""
    receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    return receptive * shape[-2], receptive * shape[-1]


def named_laws(shape: tuple) -> dict:
    """The well-known uniform initialisers' bounds for a canonical kernel of ``shape``."""
    if len(shape) < 2:
        return {}
    fan_in, fan_out = _fans(shape)
    return {"glorot_uniform (Keras's default kernel initialiser; torch's xavier_uniform_)": math.sqrt(6 / (fan_in + fan_out)),
            "he_uniform (kaiming_uniform_ with a=0)": math.sqrt(6 / fan_in),
            "lecun_uniform": math.sqrt(3 / fan_in),
            "torch's default (kaiming_uniform_ with a=sqrt(5))": 1 / math.sqrt(fan_in),
            "RandomUniform(-0.05, 0.05) (Keras's default embedding initialiser)": 0.05}


def fitted_law(values: np.ndarray, shape: tuple) -> str:
    """The values' law in words: a constant, or the better fitting of a symmetric uniform and a
    normal law with the magnitude fitted, named when it is a well-known initialiser's."""
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.min() == v.max():
        return f"the constant {v[0]:.4g}"
    bound = float(np.abs(v).max())
    d_uniform = ks_distance(v, law_cdf(("uniform", bound)))
    d_normal = ks_distance(v, law_cdf(("normal", float(v.mean()), float(v.std()))))
    if d_uniform <= d_normal:
        names = [n for n, b in named_laws(shape).items() if abs(b - bound) <= 0.02 * b]
        return f"U(+-{bound:.4g})" + (f", the bound of {names[0]}" if names else "")
    return f"N({v.mean():.3g}, {v.std():.4g})"


def findings(spec, network: str, shapes: dict) -> list[str]:
    """One sentence per weight whose fresh values break its law: the law they follow instead."""
    samples, builds = fresh_samples(spec, network)
    out = []
    for name, law in networks.get(network).init_laws.items():
        v = samples[name]
        d, crit = law_distance(v, law)
        if d > crit:
            out.append(f"{name} is drawn as {fitted_law(v, shapes.get(name, v.shape))} where the reference draws "
                       f"{describe_law(law)} (KS margin {d / crit:.3g})")
    return out

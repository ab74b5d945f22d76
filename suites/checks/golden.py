"""Golden outputs: today's logits against the ones recorded with the pinned versions.

A framework upgrade that moves the numerics beyond the tolerance fails here, with the first
layer whose output moved and by how much (fixtures/golden.py says what is recorded). Runs for
every reference twin (each build style against its framework's recording) and for --impl
candidates (against their framework's recording, the torch one for a candidate that could not
be built).
"""

import numpy as np

from twinbench.fixtures import golden as G
from twinbench.fixtures import tolerances as T
from twinbench.impls.adapter import from_logits, to_log_probs
from twinbench.suites.helpers import failure, max_violation


def _first_moved_layer(twin, arrays, framework) -> str:
    x = arrays["inputs"][:G.LAYER_EXAMPLES]
    trace = twin.trace(x, keep_values=True).param_layers()
    for rec, (ref, *_rest) in zip(trace, twin.net.param_layers):
        want = arrays.get(f"layer_{framework}_{ref}")
        if want is None or rec.out_value is None or np.shape(rec.out_value) != want.shape:
            return f"layer {ref} cannot be compared (shape {np.shape(rec.out_value)} vs recorded {getattr(want, 'shape', None)})"
        diff, idx, ok = max_violation(rec.out_value, want, T.GOLDEN_ATOL, T.GOLDEN_RTOL)
        if not ok:
            return f"first moved at layer {ref} ({rec.name}): max |diff| {diff:.3g} at {idx} on the first {len(x)} inputs"
    return "every parameterised layer's output matches; the change is after the last one"


def check_golden_outputs(twin):
    arrays, info = G.load(twin.network)
    framework = twin.framework if twin.framework in ("torch", "keras") else "torch"
    twin.set_weights(G.weights(twin.network))
    got, recorded_logits = twin.forward(arrays["inputs"]), arrays[f"logits_{framework}"]
    if twin.output == "logits" and got.shape[-1] > 1:  # softmax logits are defined up to a per-row constant:
        got, want = to_log_probs(got, "logits"), to_log_probs(recorded_logits, "logits")  # log-probs declared
    else:                                                                                 # as logits conform
        want = from_logits(recorded_logits, twin.output)
    assert got.shape == want.shape, f"{twin.name}: output shape {got.shape}, the recording has {want.shape}"
    diff, worst, ok = max_violation(got, want, T.GOLDEN_ATOL, T.GOLDEN_RTOL)
    margin = float(np.max(np.abs(np.asarray(got, np.float64) - want) / (T.GOLDEN_ATOL + T.GOLDEN_RTOL * np.abs(want))))
    recorded = ", ".join(f"{k} {v}" for k, v in info["versions"].items() if k in ("torch", "tensorflow", "keras"))
    if not ok:
        raise failure(f"{twin.name}: outputs moved from the golden {framework} recording ({recorded}): max |diff| "
                      f"{diff:.3g} at {worst} (got {got[worst]:.7g}, recorded {want[worst]:.7g}), tolerance atol "
                      f"{T.GOLDEN_ATOL} + rtol {T.GOLDEN_RTOL}; {_first_moved_layer(twin, arrays, framework)}",
                      golden_max_abs_diff=diff, margin=margin)
    return {"golden_max_abs_diff": diff, "margin": margin}

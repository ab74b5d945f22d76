"""Shapes: every layer's input and output shape against the literal tables in fixtures/."""

import numpy as np
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from twinbench.impls import networks
from twinbench.suites.helpers import batch_shape, sample_input


def _layer_problems(network, rec, row, batch) -> list[str]:
    """What differs between one observed layer and its row (ref, kind, in, out) of the spec's param_layers."""
    ref, kind, in_shape, out_shape = row
    problems = []
    where = f"layer {rec.name} ({rec.type}, reference {ref})"
    if rec.kind != kind:
        problems.append(f"{where}: is a {rec.kind} layer, expected {kind}")
    fused = networks.get(network).fused_layers.get(ref)
    for what, got, want in (("input", rec.in_shape, in_shape), ("output", rec.out_shape, out_shape)):
        want = batch_shape(want, batch)
        if what == "output" and fused and got is not None and tuple(got) == batch_shape(fused[1], batch):
            continue  # e.g. EmbeddingBag: lookup and mean pool in one layer
        if got is not None and tuple(got) != want:
            problems.append(f"{where}: {what} shape {tuple(got)}, expected {want}")
    return problems


def _param_layer_problems(network, observed, batch) -> list[str]:
    """The layers with parameters, in order, against the spec's param_layers: missing, extra or misshapen."""
    problems = []
    expected = networks.get(network).param_layers
    for rec, row in zip(observed, expected):
        problems += _layer_problems(network, rec, row, batch)
    for ref, kind, _, _ in expected[len(observed):]:
        problems.append(f"reference layer {ref} ({kind}): no matching layer ran")
    for rec in observed[len(expected):]:
        problems.append(f"layer {rec.name} ({rec.type}): a {rec.kind} layer the reference does not have")
    return problems


def _optional_kind_problems(kind, got, want, batch) -> list[str]:
    """The layers of one optional kind (pool, dropout, flatten) against the reference's: count, then shapes."""
    if len(got) != len(want):
        return [f"{len(got)} {kind} layers ({', '.join(r.name for r in got)}), "
                f"the reference has {len(want)} ({', '.join(r for r, _ in want)})"]
    problems = []
    for rec, (ref, shape) in zip(got, want):
        shape = batch_shape(shape, batch)
        if tuple(rec.out_shape) != shape:
            problems.append(f"layer {rec.name} ({rec.type}, reference {ref}): output shape "
                            f"{tuple(rec.out_shape)}, expected {shape}")
    return problems


def _optional_layer_problems(network, layers, batch) -> list[str]:
    """The layers without parameters that the spec's optional_layers lists, where the twin has them as layers."""
    problems = []
    optional = networks.get(network).optional_layers
    for kind in dict.fromkeys(k for _, k, _ in optional):
        want = [(ref, shape) for ref, k, shape in optional if k == kind]
        got = [r for r in layers if r.kind == kind]
        if not got:
            continue  # written functionally (F.max_pool2d, torch.flatten): judged via the next layer's input
        problems += _optional_kind_problems(kind, got, want, batch)
    return problems


def shape_problems(twin, x) -> list[str]:
    """Compare one eval-mode forward pass with the literal tables; return what differs."""
    batch = len(x)
    trace = twin.trace(x)
    observed = trace.param_layers()  # a layer called twice is judged on its first call
    problems = _param_layer_problems(twin.network, observed, batch)
    problems += _optional_layer_problems(twin.network, trace.layers, batch)
    if trace.error:
        problems.append(f"forward pass at batch {batch} raised: {trace.error}")
    return problems


def check_output_shape(twin, batch):
    x = sample_input(twin.network, batch)
    out = twin.forward(x)
    want = batch_shape(twin.net.output_shape, batch)
    assert tuple(out.shape) == want, f"{twin.name}: output shape {tuple(out.shape)} at batch {batch}, expected {want}"
    assert out.dtype == np.float32, f"{twin.name}: output dtype {out.dtype}, expected float32"


def check_layer_shapes(twin, batch):
    problems = shape_problems(twin, sample_input(twin.network, batch))
    assert not problems, f"{twin.name} at batch {batch}:\n  " + "\n  ".join(problems)


def check_layer_shapes_hypothesis(twin):
    """Random batch sizes and, for token inputs, ids anywhere in [0, vocab), the edges included."""
    spec = twin.net.input
    if spec.kind != "tokens":
        inputs = st.integers(1, 80).map(lambda b: sample_input(twin.network, b, seed=b))
    else:
        (length,), top = spec.shape, spec.vocab - 1
        ids = st.integers(0, top) | st.sampled_from([spec.pad_id, 1, top])
        inputs = st.integers(1, 40).flatmap(
            lambda b: st.lists(st.lists(ids, min_size=length, max_size=length),
                               min_size=b, max_size=b)).map(lambda rows: np.array(rows, dtype=np.int64))

    # No shrinking: a failing draw is reported as drawn (shrinking a crash costs minutes).
    @settings(max_examples=8, deadline=None, derandomize=True, database=None,
              phases=[Phase.explicit, Phase.generate], report_multiple_bugs=False,
              suppress_health_check=list(HealthCheck))
    @given(inputs)
    def run(x):
        problems = shape_problems(twin, x)
        assert not problems, f"{twin.name} at batch {len(x)}:\n  " + "\n  ".join(problems)

    run()

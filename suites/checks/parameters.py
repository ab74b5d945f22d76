"""Parameters: per-layer and total counts, all trainable, against literals in fixtures/."""

from twinbench.suites.helpers import fmt


def check_param_count_per_layer(twin):
    layers = twin.param_layers()
    want = list(twin.net.param_counts.items())
    problems = []
    for i, (ref, count) in enumerate(want):
        if i >= len(layers):
            problems.append(f"reference layer {ref} ({fmt(count)} parameters) has no counterpart")
            continue
        got = layers[i].trainable + layers[i].non_trainable
        if got != count:
            problems.append(f"layer {layers[i].name} ({layers[i].type}, reference {ref}): {fmt(got)} parameters, "
                            f"expected {fmt(count)} (shapes {layers[i].params})")
    for layer in layers[len(want):]:
        problems.append(f"layer {layer.name} ({layer.type}): {fmt(layer.trainable + layer.non_trainable)} "
                        "parameters in a layer the reference does not have")
    assert not problems, f"{twin.name}:\n  " + "\n  ".join(problems)


def check_param_count_total(twin):
    total = sum(layer.trainable + layer.non_trainable for layer in twin.param_layers())
    want = twin.net.total_params
    assert total == want, f"{twin.name}: {fmt(total)} parameters in all, expected {fmt(want)} (off by {fmt(total - want)})"
    return {"param_count_total": total}


def check_all_trainable(twin):
    frozen = [(layer.name, layer.non_trainable) for layer in twin.param_layers() if layer.non_trainable]
    want = twin.net.non_trainable_params
    assert sum(n for _, n in frozen) == want, (
        f"{twin.name}: non-trainable parameters or buffers in {frozen}; the reference has {want}")

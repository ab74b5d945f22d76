"""Options: the candidate's optimizer configured as the reference's, option by option.

Every option of the candidate's optimizer is compared with the reference's of the same framework:
Keras's ``get_config()``; torch's settings of every param group (the parameters it holds named).
An option that differs fails with its name and both values, unless
``fixtures/options_harmless.json`` lists it, with the reason it cannot change training or the
check that judges it by value instead. No list of known options: one a framework adds is compared
from the day it exists. What this catches that per-step checks may not: an option that acts late
(Keras's EMA overwrites the weights at the end of ``fit``; gradient accumulation), clipping that
binds only on large gradients, and a second param group with settings of its own.
"""

from __future__ import annotations

import json
from pathlib import Path

from impls import registry
from impls.adapter import NoRecipe
from suites.helpers import failure

HARMLESS = json.loads((Path(__file__).resolve().parents[2] / "fixtures" / "options_harmless.json").read_text())


def optimizer_options(twin) -> list:
    """[(options, the parameters the group holds or None)] per param group (Keras: one group)."""
    if not twin.has_recipe:
        raise NoRecipe(f"{twin.name} carries no optimizer (model-only)")
    if twin.framework == "torch":
        opt = twin.optimizer_fn(twin.model.parameters())  # a throwaway: no step is taken
        names = {id(p): n for n, p in twin.model.named_parameters()}
        return [({k: v for k, v in group.items() if k != "params"}, sorted(names.get(id(p), "?") for p in group["params"]))
                for group in opt.param_groups]
    return [(dict(twin.model.optimizer.get_config()), None)]


def _differences(got: dict, want: dict, harmless: dict) -> list:
    keys = sorted((set(got) | set(want)) - set(harmless))
    missing = object()
    return [(k, got.get(k, missing), want.get(k, missing)) for k in keys if got.get(k, missing) != want.get(k, missing)]


def _show(value) -> str:
    return "not set" if type(value) is object else repr(value)


def check_optimizer_options(twin):
    """Every option of every param group against the reference optimizer's, but the harmless ones."""
    mine = optimizer_options(twin)
    if twin.framework not in HARMLESS:  # a twin of neither framework fails elsewhere (its factory)
        return {"param_groups": len(mine)}
    reference = registry.build(registry.reference(twin.framework, twin.network), seed=1)
    (want, _), = optimizer_options(reference)
    problems = []
    for i, (options, params) in enumerate(mine):
        where = "" if len(mine) == 1 else f"param group {i + 1} of {len(mine)} ({', '.join(params[:4])}" + \
            (", ..." if len(params) > 4 else "") + "): "
        problems += [f"{where}{name} {_show(a)}, the reference's {_show(b)}"
                     for name, a, b in _differences(options, want, HARMLESS[twin.framework])]
    if problems:
        raise failure(f"{twin.name}: the optimizer's options differ from the {twin.framework} reference's: "
                      + "; ".join(problems[:6]) + ("" if len(problems) <= 6 else f"; and {len(problems) - 6} more")
                      + ". Set them as the reference does (the options shown not to change training are listed, "
                        "with the reason, in fixtures/options_harmless.json)", options_differing=len(problems))
    return {"param_groups": len(mine), "options_compared": len(set(want) - set(HARMLESS[twin.framework]))}

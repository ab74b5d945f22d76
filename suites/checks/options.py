"""Options: the candidate's optimizer configured as the reference's, option by option.

Every option of the candidate's optimizer is compared with the reference's of the same framework:
Keras's ``get_config()``; torch's settings of every param group (the parameters it holds named).
An option that differs fails with its name and both values, unless
``fixtures/options_harmless.json`` lists it, with the reason it cannot change training or the
check that judges it by value instead. No list of known options: one a framework adds is compared
from the day it exists. What this catches that per-step checks may not: an option that acts late
(Keras's EMA overwrites the weights at the end of ``fit``; gradient accumulation), clipping that
binds only on large gradients, and a second param group with settings of its own.

A torch scheduler may change any setting of a param group, not only its learning rate (OneCycleLR
cycles momentum or betas; a hand-written one may anneal weight decay), and only at a later epoch.
So torch's settings are compared once more at every epoch of the budget, with the recipe's
scheduler stepped as ``fit_epoch`` steps it, against the torch reference's at the same epoch. The
learning rate is left to check_lr_schedule_parity there, which judges it by value at every step
(a schedule written as another class may differ from the recipe's by an ulp). Keras's settings do
not change between epochs (its schedules are learning-rate schedules, compared by value).
Not seen: a scheduler that decides from the optimizer's state (its step count), since the
throwaway optimizer takes no step, and a scheduler that changes the optimizer's state (clears
Adam's moments) rather than a setting.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

from twinbench.impls import networks, registry
from twinbench.impls.adapter import NoRecipe
from twinbench.suites.helpers import failure

HARMLESS = json.loads((Path(__file__).resolve().parents[2] / "fixtures" / "options_harmless.json").read_text())


def optimizer_options(twin, also=()) -> list:
    """[(options, the parameters the group holds or None)] per param group (Keras: one group).
    torch: the settings the optimizer reads, the keys of its ``defaults`` (and those in ``also``,
    the reference's); a key a user adds to a group for their own use (a ``name`` label) is not one."""
    if not twin.has_recipe:
        raise NoRecipe(f"{twin.name} carries no optimizer (model-only)")
    if twin.framework == "torch":
        opt = twin.optimizer_fn(twin.model.parameters())  # a throwaway: no step is taken
        names = {id(p): n for n, p in twin.model.named_parameters()}
        read = set(opt.defaults) | set(also)
        return [({k: v for k, v in group.items() if k != "params" and k in read},
                 sorted(names.get(id(p), "?") for p in group["params"]))
                for group in opt.param_groups]
    return [(dict(twin.model.optimizer.get_config()), None)]


@functools.lru_cache(maxsize=None)
def _reference_options(framework: str, network: str) -> tuple:
    """The reference optimizer's options, per framework and network: built once per process."""
    return tuple(optimizer_options(registry.build(registry.reference(framework, network), seed=1)))


@functools.lru_cache(maxsize=None)
def _reference_layer_options(framework: str, network: str) -> dict:
    return registry.build(registry.reference(framework, network), seed=1).layer_options()


def _same(a, b) -> bool:
    """Equal settings; a list and a tuple of the same values are the same setting (betas)."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def _differences(got: dict, want: dict, harmless: dict) -> list:
    keys = sorted((set(got) | set(want)) - set(harmless))
    missing = object()
    return [(k, got.get(k, missing), want.get(k, missing)) for k in keys if not _same(got.get(k, missing), want.get(k, missing))]


def _show(value) -> str:
    return "not set" if type(value) is object else repr(value)


def summary(differences: list, shown: int = 6) -> str:
    """The first ``shown`` differences joined, and how many more there are."""
    more = len(differences) - shown
    return "; ".join(differences[:shown]) + (f"; and {more} more" if more > 0 else "")


def _where(i: int, groups: int, params) -> str:
    """'' for a lone param group, else 'param group i of n (its first parameters): '."""
    if groups == 1:
        return ""
    return f"param group {i + 1} of {groups} ({', '.join(params[:4])}" + (", ..." if len(params) > 4 else "") + "): "


def optimizer_differences(twin) -> tuple[list, int, int]:
    """Each option of the candidate's optimizer that differs from the reference's, but the harmless
    ones, as "[param group i of n (its parameters): ]name value, the reference's value"; then, for
    torch, each setting that departs from the reference's at a later epoch of the budget, with
    the first such epoch. Returns them with the number of param groups and of options compared
    per group. A twin of neither framework has none (it fails elsewhere: its factory). Raises
    NoRecipe for a bare model."""
    if twin.framework not in HARMLESS:
        return [], len(optimizer_options(twin)), 0
    (want, _), = _reference_options(twin.framework, twin.network)
    mine = optimizer_options(twin, also=want)
    problems, differing = [], set()
    for i, (options, params) in enumerate(mine):
        for name, a, b in _differences(options, want, HARMLESS[twin.framework]):
            problems.append(f"{_where(i, len(mine), params)}{name} {_show(a)}, the reference's {_show(b)}")
            differing.add((i, name))
    if twin.framework == "torch":
        problems += _epoch_differences(twin, mine, want, differing)
    return problems, len(mine), len(set(want) - set(HARMLESS[twin.framework]))


@functools.lru_cache(maxsize=None)
def _reference_settings_by_epoch(network: str) -> tuple:
    twin = registry.build(registry.reference("torch", network), seed=1)
    return tuple(tuple(groups) for groups in twin.group_settings_by_epoch(networks.get(network).budget_epochs)[1])


def _epoch_differences(twin, built: list, want: dict, already: set) -> list:
    """Each torch param-group setting that differs from the reference's at some epoch of the
    budget (the schedulers stepped), named once, at the first epoch it differs. Compared: the
    settings the optimizer was built with (``built``, the candidate's, and ``want``, the
    reference's); keys a scheduler adds for its own bookkeeping (``initial_lr``, OneCycleLR's
    ``max_lr``) are not settings the optimizer reads. Settings in ``already`` (differing at build)
    are not named again."""
    _, mine = twin.group_settings_by_epoch(twin.net.budget_epochs)
    reference = _reference_settings_by_epoch(twin.network)
    harmless = HARMLESS["torch"] | HARMLESS["torch_by_epoch"]
    problems, seen = [], set(already)
    for epoch, (groups, (theirs, *_)) in enumerate(zip(mine, reference)):
        if len(groups) != len(built):
            problems.append(f"{len(groups)} param groups from epoch {epoch} (the scheduler changed them), "
                            f"{len(built)} when the optimizer was built")
            break
        for i, options in enumerate(groups):
            keys = set(built[i][0]) | set(want)
            for name, a, b in _differences({k: v for k, v in options.items() if k in keys},
                                           {k: v for k, v in theirs.items() if k in keys}, harmless):
                if (i, name) not in seen:
                    seen.add((i, name))
                    when = "the scheduler's construction" if epoch == 0 else f"the scheduler's step {epoch}"
                    problems.append(f"{_where(i, len(groups), built[i][1])}{name} {_show(a)} from epoch {epoch} "
                                    f"(set at {when}), the reference's {_show(b)}")
    return problems


def check_optimizer_options(twin):
    """Every option of every param group against the reference optimizer's, but the harmless ones:
    at build and, for torch, at every epoch of the budget with the recipe's scheduler stepped."""
    problems, groups, compared = optimizer_differences(twin)
    if problems:
        raise failure(f"{twin.name}: the optimizer's options differ from the {twin.framework} reference's: "
                      + summary(problems)
                      + ". Set them as the reference does (the options shown not to change training are listed, "
                        "with the reason, in fixtures/options_harmless.json)", options_differing=len(problems))
    return {"param_groups": groups, "options_compared": compared}


LAYER_HARMLESS = json.loads((Path(__file__).resolve().parents[2] / "fixtures" / "layer_options_harmless.json").read_text())


def layer_differences(twin) -> tuple[list, int, int]:
    """Each option of a parameterised layer that differs from the reference layer's, but the
    harmless ones, as "layer: name value, the reference's value"; with the number of layers and
    of options compared."""
    if twin.framework not in LAYER_HARMLESS:
        return [], 0, 0
    mine = twin.layer_options()
    reference = _reference_layer_options(twin.framework, twin.network)
    harmless = LAYER_HARMLESS[twin.framework]
    problems, compared = [], 0
    for layer, want in reference.items():
        got = mine.get(layer, {})
        shared = {k: v for k, v in want.items() if k in got}
        compared += len(set(shared) - set(harmless))
        problems += [f"{layer}: {name} {_show(a)}, the reference's {_show(b)}"
                     for name, a, b in _differences({k: got[k] for k in shared}, shared, harmless)]
    return problems, len(reference), compared


def check_layer_options(twin):
    """Every option of every parameterised layer (Keras: get_config(); torch: the module's public
    attributes) against the reference layer's of the same framework, but the harmless ones.
    What this catches that the value checks may not: an option that binds only on some inputs or
    after some steps (a weight constraint, an embedding's max_norm, scale_grad_by_freq, LoRA)."""
    problems, layers, compared = layer_differences(twin)
    if problems:
        raise failure(f"{twin.name}: layer options differ from the {twin.framework} reference's: "
                      + summary(problems)
                      + ". Set them as the reference does (the options judged by value instead are listed, with the "
                        "reason, in fixtures/layer_options_harmless.json)", options_differing=len(problems))
    return {"layers": layers, "options_compared": compared}

"""The catalogue: every check twinbench runs, one record each (scikit-learn's ``estimator_checks``).

A check is a plain function ``check_<property>(...)`` in a library module of ``suites/checks/``.
This module is the one list of them: what each compares, the tolerances it is held to (names in
``fixtures/tolerances.py``), the batch sizes and steps it uses, what it needs, and the family
(the conformance matrix's column) it reports under. Everything that needs "the checks" takes
them from here: the test modules (``suites/test_<group>.py`` only parametrize over
``checks_for``), the report's families, the detection self-test, diagnosis and repro scripts,
and ``pytest --list-checks``.

``checks_for(spec, group)`` yields the checks that apply to a subject, as the callables its
test calls: the function itself, or a ``functools.partial`` whose arguments (a batch size, a
partner) show in the test id. The order is the suite's order (a repro script reruns a rejected
candidate's first failing check in that order).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Callable

from twinbench.fixtures import expected as E
from twinbench.fixtures import tolerances as T
from twinbench.suites.checks import (convergence, data, equivalence, golden, gpu, initialization, optimizer, options, parameters,
                           randomness, shapes, summaries, trajectory)

# The conformance matrix's columns, in order. "data" checks the datasets (a section of its own in
# the report); "speed" holds the benchmarks (suites/test_speed.py), which are not checks.
FAMILIES = ("shapes", "parameters", "initialization", "GPU", "forward", "randomness", "loss/gradient", "optimizer", "schedule",
            "trajectory", "convergence", "golden", "speed", "data")
# Families that judge the training recipe: a model-only candidate cannot run them.
RECIPE_FAMILIES = ("loss/gradient", "optimizer", "schedule", "trajectory", "convergence")
# The test modules (suites/test_<group>.py) whose checks run on a twin through ``run_check``; in
# this order they are the suite's order, and the checks a user's --impl gets from them.
TWIN_GROUPS = ("shapes", "parameters", "initialization", "equivalence", "optimizer", "randomness", "trajectory", "golden", "gpu")
# The groups the detection self-test runs on every corpus candidate and mutant (suites/test_detection.py):
# those of a user's --impl, but the GPU one (a corpus candidate is judged on this machine's CPU).
SELFTEST_GROUPS = tuple(g for g in TWIN_GROUPS if g != "gpu")


@dataclass(frozen=True)
class Check:
    """One check: a function and what a user needs to know about it."""

    func: Callable
    group: str                  # the test module that runs it: suites/test_<group>.py
    family: str                 # its column in the conformance matrix
    compares: str               # what it compares, in one line
    tolerances: tuple = ()      # names in fixtures/tolerances.py (T) it is held to; () = exact or literal
    sizes: tuple = ()           # (label, "T.NAME" or "E.NAME") of the batch sizes and steps it uses
    needs: frozenset = field(default_factory=frozenset)  # of "recipe", "partner", "gpu", "pytest"

    @property
    def name(self) -> str:
        return self.func.__name__


def _c(func, group, family, compares, tolerances=(), sizes=(), needs=()) -> Check:
    return Check(func, group, family, compares, tuple(tolerances), tuple(sizes), frozenset(needs))


# The data checks: MNIST's run on each split, the normalisation constants on the train split, the
# tweets' once (data_cases).
MNIST_DATA_CHECKS = (data.check_idx_sha256, data.check_torchvision_equals_tfds, data.check_torchvision_equals_idx_order,
                     data.check_class_counts)
TWEETS_DATA_CHECKS = (data.check_corpus_counts, data.check_binary_dedupe, data.check_binary_split,
                      data.check_no_normalised_text_in_both_splits, data.check_no_token_row_in_both_splits,
                      data.check_token_arrays, data.check_tokenizer_rules)
_FWD = ("FORWARD_ATOL", "FORWARD_RTOL")
CHECKS = (
    _c(shapes.check_output_shape, "shapes", "shapes",
       "the model's output shape and dtype on synthetic input", sizes=[("batch", "E.SHAPE_BATCH_SIZES")]),
    _c(shapes.check_layer_shapes, "shapes", "shapes",
       "each parameterised layer's kind and input/output shapes, and the pool/dropout/flatten layers' output "
       "shapes, against the literal tables", sizes=[("batch", "E.SHAPE_BATCH_SIZES")]),
    _c(shapes.check_layer_shapes_hypothesis, "shapes", "shapes",
       "the same tables on 8 drawn batches (MNIST 1-80 images, tweets 1-40 rows with edge ids)"),
    _c(parameters.check_param_count_per_layer, "parameters", "parameters",
       "each parameterised layer's parameter count against the literal"),
    _c(parameters.check_param_count_total, "parameters", "parameters", "the total parameter count against the literal"),
    _c(parameters.check_all_trainable, "parameters", "parameters",
       "non-trainable parameters and buffers against the literal (none)"),
    _c(options.check_layer_options, "parameters", "parameters",
       "every option of every parameterised layer (Keras: get_config(); torch: module attributes) against the "
       "reference layer's of the same framework, but those fixtures/layer_options_harmless.json names with the reason"),
    _c(initialization.check_initial_weights_law, "initialization", "initialization",
       "each canonical weight of fresh builds against its law in E.INIT_LAWS (Kolmogorov-Smirnov; a constant "
       "counts in every build, a repeated draw once)", ["INIT_ALPHA"],
       [("values", "T.INIT_MIN_SAMPLES per weight"), ("builds", "up to T.INIT_MAX_BUILDS")]),
    _c(equivalence.check_loss_parity, "equivalence", "loss/gradient",
       "the recipe's loss on given outputs against CE/BCE from logits in float64, on 64 rows, the recipe's batch "
       "size and the epoch's last, shorter batch", ["LOSS_ATOL"],
       [("outputs", "64 drawn; the first E.TRAIN_BATCH and E.LAST_BATCH of them")], ["recipe"]),
    _c(equivalence.check_transfer_refuses_bad_shapes, "equivalence", "parameters",
       "set_weights with a misshapen tensor raises and names the parameter"),
    _c(equivalence.check_checkpoint_roundtrip, "equivalence", "parameters",
       "outputs after the framework's own weights save/load (bit-identical)", sizes=[("batch", "64 real")]),
    _c(equivalence.check_forward_parity, "equivalence", "forward",
       "eval-mode outputs against the partner's after weight transfer, into and out of the twin", _FWD,
       [("batch", "T.PARITY_BATCH")], ["partner"]),
    _c(equivalence.check_forward_parity_confident, "equivalence", "forward",
       "the same with the output layer scaled to a trained model's logit range", _FWD + ("CONFIDENT_HEAD_SCALE",
                                                                                          "CONFIDENT_MIN_LOGIT"),
       [("batch", "T.PARITY_BATCH")], ["partner"]),
    _c(equivalence.check_forward_parity_hypothesis, "equivalence", "forward",
       "outputs on 10 drawn batches of 1-9 (blank, saturated, all-padding and edge-id inputs first)", _FWD,
       needs=["partner"]),
    _c(equivalence.check_gradient_parity, "equivalence", "loss/gradient",
       "every parameter's gradient (dropout off) against the partner's, relative to the tensor's largest",
       ["GRAD_RTOL"], [("batch", "T.GRAD_BATCH")], ["recipe", "partner"]),
    _c(equivalence.check_optimizer_step_parity, "equivalence", "optimizer",
       "weights after the same gradient applied OPT_STEPS times, against the partner's", ["OPT_ATOL", "OPT_RTOL"],
       [("batch", "T.GRAD_BATCH"), ("steps", "T.OPT_STEPS")], ["recipe", "partner"]),
    _c(equivalence.check_lr_schedule_parity, "equivalence", "schedule",
       "every param group's learning rate at every step of the budget against the literal recipe and the partner",
       ["LR_ULPS"],
       [("steps", "E.STEPS_PER_EPOCH x E.BUDGET_EPOCHS")], ["recipe", "partner"]),
    _c(equivalence.check_weight_roundtrip, "equivalence", "parameters",
       "twin -> canonical -> partner -> canonical -> twin on random weights (bit-identical)", needs=["partner"]),
    _c(optimizer.check_recipe_declarations, "optimizer", "schedule",
       "a recipe's declared batch_size and epochs against the literal recipe", needs=["recipe"]),
    _c(options.check_optimizer_options, "optimizer", "optimizer",
       "every option of every param group (Keras: get_config()) against the reference optimizer's of the same "
       "framework, but those fixtures/options_harmless.json names with the reason; torch's again at every epoch "
       "of the budget, the recipe's scheduler stepped", needs=["recipe"]),
    _c(optimizer.check_optimizer_dynamics, "optimizer", "optimizer",
       "weights after each of the recorded real gradients against a float64 oracle and the partner",
       ["OPT_DYNAMICS_RTOL"], [("steps", "E.OPTIMIZER_REPLAY_STEPS")], ["recipe", "partner"]),
    _c(randomness.check_stochastic_ops, "randomness", "randomness",
       "kind, granularity, rate and position of every training-time random op against the literal list",
       sizes=[("batch", "16 real")]),
    _c(randomness.check_train_mode_parity, "randomness", "randomness",
       "training-mode outputs, loss value and gradients against the partner's with shared masks",
       _FWD + ("LOSS_ATOL", "GRAD_RTOL"),
       [("batch", "T.GRAD_BATCH")], ["partner"]),
    _c(randomness.check_every_random_draw_is_fed, "randomness", "randomness",
       "a training-mode pass with the masks fed, repeated and with each global generator (torch, numpy, random, "
       "TensorFlow) reseeded: bit-identical", [], [("batch", "T.DETERMINISM_BATCH")], []),
    _c(trajectory.check_trajectory_parity, "trajectory", "trajectory",
       "loss after every step and each layer's weights relative to its movement, in training mode with shared "
       "masks, every run set back to the anchor's weights after each window; two passes over the examples, the "
       "first ending in a batch of the epoch's last-batch size",
       ["TRAJECTORY_LOSS_ATOL_EXACT", "TRAJECTORY_WEIGHT_RTOL_EXACT", "TRAJECTORY_WINDOW"],
       [("batch", "E.TRAIN_BATCH"), ("steps", "T.TRAJECTORY_STEPS"), ("last batch", "E.LAST_BATCH")],
       ["recipe", "partner"]),
    _c(trajectory.check_fit_path_parity, "trajectory", "trajectory",
       "weights after each step of the twin's own fit (Keras: model.fit with what the model overrides) and after "
       "fit returns, against its framework reference's per-step path (shared masks)",
       ["TRAJECTORY_WEIGHT_RTOL_EXACT"], [("batch", "E.TRAIN_BATCH"), ("steps", "T.FIT_STEPS")], ["recipe"]),
    _c(golden.check_golden_outputs, "golden", "golden",
       "outputs from the golden weights against the recording made with the pinned versions (softmax logits as "
       "log-probabilities: a per-row constant is no change)",
       ["GOLDEN_ATOL", "GOLDEN_RTOL"], [("inputs", "the recording's")]),
    _c(gpu.check_forward_parity_on_gpu, "gpu", "GPU", "the GPU forward (TF32 off) against the CPU forward", _FWD,
       [("batch", "T.PARITY_BATCH")], ["gpu"]),
    _c(convergence.check_accuracy_gate, "convergence", "convergence",
       "test accuracy after each epoch reaches the gate within the budget (olympic mean over --seeds)",
       ["CONVERGENCE_MAX_FAILED_RUNS"], [("batch", "E.TRAIN_BATCH"), ("epochs", "E.BUDGET_EPOCHS")],
       ["recipe", "pytest"]),
    _c(convergence.check_framework_agreement, "convergence", "convergence",
       "torch's and Keras's per-epoch accuracy curves over the same epochs (the later half held)",
       ["E.AGREEMENT_POINTS", "E.AGREEMENT_EPOCHS"], [("batch", "E.TRAIN_BATCH"), ("epochs", "E.BUDGET_EPOCHS")],
       ["recipe", "pytest"]),
    _c(summaries.check_summaries_side_by_side, "summaries", "parameters",
       "torchinfo's and keras's summaries, written side by side, against the literal total"),
) + tuple(_c(f, "data", "data", (f.__doc__ or f.__name__[len("check_"):].replace("_", " ")).strip().splitlines()[0])
          for f in MNIST_DATA_CHECKS + (data.check_normalisation_constants,) + TWEETS_DATA_CHECKS)

BY_NAME = {c.name: c for c in CHECKS}
assert len(BY_NAME) == len(CHECKS), "two catalogue records name the same function"


# ------------------------------------------------------------------------------------------
# Names and ids
# ------------------------------------------------------------------------------------------
def name_of(check) -> str:
    """``check_layer_shapes`` or, for a partial, ``check_layer_shapes(batch=7)``."""
    if isinstance(check, functools.partial):
        args = ",".join([repr(a) for a in check.args] + [f"{k}={v!r}" for k, v in check.keywords.items()])
        return f"{check.func.__name__}({args})"
    return check.__name__


def record_of(check) -> Check:
    """The record of a check callable, or of a check's name as ``name_of`` writes it."""
    name = check.split("(", 1)[0] if isinstance(check, str) else getattr(check, "func", check).__name__
    return BY_NAME[name]


def family(check) -> str:
    """The matrix column of a check callable or name (a benchmark's cell, ``speed:...``, is speed;
    anything not in the catalogue is "other", which a test forbids for checks)."""
    name = check if isinstance(check, str) else name_of(check)
    if name.startswith("speed:"):
        return "speed"
    record = BY_NAME.get(name.split("(", 1)[0])
    return record.family if record is not None else "other"


def make_id(subject, check) -> str:
    """The one function that builds test ids: ``torch-mnist_cnn-sequential-check_param_count_total``."""
    return f"{getattr(subject, 'id', subject)}-{name_of(check)}"


def nodeid(group: str, subject_id: str, check) -> str:
    """The pytest node id of ``check`` run on the subject ``subject_id``."""
    return f"suites/test_{group}.py::test_{group}[{make_id(subject_id, check)}]"


# ------------------------------------------------------------------------------------------
# Which checks apply to a subject (sklearn's _yield_all_checks)
# ------------------------------------------------------------------------------------------
def _partners(spec):
    from twinbench.impls import registry

    return registry.partners(spec)


def _yield_shapes(spec):
    yield from (functools.partial(shapes.check_output_shape, batch=b) for b in E.SHAPE_BATCH_SIZES)
    yield from (functools.partial(shapes.check_layer_shapes, batch=b) for b in E.SHAPE_BATCH_SIZES)
    yield shapes.check_layer_shapes_hypothesis


def _yield_parameters(spec):
    yield from (parameters.check_param_count_per_layer, parameters.check_param_count_total,
                parameters.check_all_trainable, options.check_layer_options)


def _yield_initialization(spec):
    yield initialization.check_initial_weights_law


def _yield_equivalence(spec):
    yield from (equivalence.check_loss_parity, equivalence.check_transfer_refuses_bad_shapes,
                equivalence.check_checkpoint_roundtrip)
    for p in _partners(spec):
        yield from (functools.partial(equivalence.check_forward_parity, partner=p.id, direction=d)
                    for d in ("into", "from"))
        yield from (functools.partial(f, partner=p.id) for f in (
            equivalence.check_forward_parity_confident, equivalence.check_forward_parity_hypothesis,
            equivalence.check_gradient_parity, equivalence.check_optimizer_step_parity,
            equivalence.check_lr_schedule_parity, equivalence.check_weight_roundtrip))


def _yield_optimizer(spec):
    yield optimizer.check_recipe_declarations
    yield options.check_optimizer_options
    yield from (functools.partial(optimizer.check_optimizer_dynamics, partner=p.id) for p in _partners(spec))


def _yield_randomness(spec):
    yield randomness.check_stochastic_ops
    yield from (functools.partial(randomness.check_train_mode_parity, partner=p.id) for p in _partners(spec))
    yield randomness.check_every_random_draw_is_fed


def _yield_trajectory(spec):
    yield from (functools.partial(trajectory.check_trajectory_parity, partner=p.id) for p in _partners(spec))
    if spec.framework == "keras":  # torch has no fit of its own: the recipe's loop is the training path
        yield trajectory.check_fit_path_parity


def _yield_golden(spec):
    if spec.role != "known_bad":  # golden outputs are recorded for references and candidates
        yield golden.check_golden_outputs


def _yield_gpu(spec):
    yield gpu.check_forward_parity_on_gpu


_YIELD = {"shapes": _yield_shapes, "parameters": _yield_parameters, "initialization": _yield_initialization,
          "equivalence": _yield_equivalence,
          "optimizer": _yield_optimizer, "randomness": _yield_randomness, "trajectory": _yield_trajectory,
          "golden": _yield_golden, "gpu": _yield_gpu}
assert tuple(_YIELD) == TWIN_GROUPS


def checks_for(spec, groups=TWIN_GROUPS) -> list:
    """The checks of ``groups`` (a test module's group, or several) that apply to the twin ``spec``,
    in suite order."""
    groups = (groups,) if isinstance(groups, str) else groups
    return [c for g in TWIN_GROUPS if g in groups for c in _YIELD[g](spec)]


def find(spec, name: str):
    """The check callable named ``name`` (as ``name_of`` writes it) for the twin ``spec``; None when
    its record needs pytest's own fixtures (a convergence check runs through its test)."""
    record = record_of(name)
    if "pytest" in record.needs:
        return None
    found = [c for c in checks_for(spec, record.group) if name_of(c) == name]
    if not found:
        raise LookupError(f"the catalogue has no check {name} for {spec.id} any more")
    return found[0]


def convergence_cases(candidates) -> list:
    """(subject, check) pairs of the convergence test: each candidate's gate and agreement; without
    candidates each primary reference's gate and each network's agreement."""
    from twinbench.impls import registry

    checks = (convergence.check_accuracy_gate, convergence.check_framework_agreement)
    if candidates:
        return [(c, check) for c in candidates for check in checks]
    return [(registry.reference(fw, net), checks[0]) for net in E.NETWORKS for fw in ("torch", "keras")] + \
        [(net, checks[1]) for net in E.NETWORKS]




def data_cases() -> list:
    """(subject, check) pairs of the data test: the MNIST splits' and the tweets' checks."""
    return [(f"mnist-{split}", c) for split in ("train", "test") for c in MNIST_DATA_CHECKS] + \
        [("mnist-train", data.check_normalisation_constants)] + [("tweets", c) for c in TWEETS_DATA_CHECKS]


# ------------------------------------------------------------------------------------------
# pytest --list-checks
# ------------------------------------------------------------------------------------------
def _value(ref: str) -> str:
    """``T.NAME``/``E.NAME`` (or a product of two) resolved to its literal; other text as written."""
    def one(name):
        module, _, attr = name.partition(".")
        source = {"T": T, "E": E}.get(module)
        return f"{name}={getattr(source, attr)!r}" if source is not None and hasattr(source, attr) else name

    return " x ".join(one(part.strip()) for part in ref.split(" x "))


def tolerance_text(record: Check) -> str:
    if not record.tolerances:
        return "exact / literal"
    return ", ".join(_value(t if t.startswith(("T.", "E.")) else f"T.{t}") for t in record.tolerances)


def table() -> list[str]:
    """The catalogue as lines a user reads: check, family, what it compares, tolerance, sizes."""
    lines = [f"twinbench checks: {len(CHECKS)} in the catalogue (suites/catalogue.py)", ""]
    for record in CHECKS:
        needs = ", ".join(sorted(record.needs)) or "a model"
        sizes = "; ".join(f"{label} {_value(ref)}" for label, ref in record.sizes) or "-"
        lines += [f"{record.name}  [{record.family}]  suites/test_{record.group}.py  (needs {needs})",
                  f"    compares:  {record.compares}",
                  f"    tolerance: {tolerance_text(record)}",
                  f"    sizes:     {sizes}", ""]
    return lines

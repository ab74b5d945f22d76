"""Convergence: accuracy gates, MLPerf-style time-to-accuracy, and the frameworks' agreement.

- ``check_accuracy_gate``: each twin trains under its own recipe, is evaluated on the full test
  split after every epoch, and must reach the gate within the budget. Over ``--seeds N``: the
  olympic mean of epochs-to-target, with at most one run that does not converge (MLPerf).
- ``check_framework_agreement``: torch and Keras train the SAME number of epochs (the earlier one
  to reach the gate trains on) and their per-epoch accuracy curves are compared epoch by epoch;
  under ``--full-recipe`` also the final accuracies; over N >= 3 seeds also the olympic means of
  epochs-to-target.

Runs for each framework's primary reference and for --impl candidates. The runs themselves live
in ``suites/training.py``; ``reports/convergence/<network>.json`` and ``.png`` hold every epoch.
"""

from __future__ import annotations

import numpy as np
import pytest

from twinbench.fixtures import expected as E
from twinbench.fixtures import tolerances as T
from twinbench.impls import frameworks, networks, registry
from twinbench.suites import curves, training
from twinbench.suites.runstate import REPORTS

def _seeds(config) -> list:
    return [E.CONVERGENCE_SEED + i for i in range(config.getoption("--seeds"))]


def _context(network, seeds) -> str:
    v = frameworks.versions()
    return f"[network {network}, seeds {seeds}, torch {v['torch']}, tensorflow {v['tensorflow']}, keras {v['keras']}]"


def _describe(run) -> str:
    best = max(run.epochs, key=lambda e: e["correct"])
    return (f"seed {run.seed}: best {best['correct']}/{best['total']} = {100 * best['accuracy']:.2f}% at epoch "
            f"{best['epoch']} of {len(run.epochs)}")


def _require_gates(network: str) -> None:
    """A pair (--network) whose spec states no gates is not judged on convergence: skipped, with why."""
    spec = networks.get(network)
    if not spec.has_recipe:
        pytest.skip(f"{network} states no recipe: convergence is not judged (the other recipe checks say so too)")
    if spec.data is None:
        pytest.skip(f"{network} has no data (its inputs are drawn from its input description): convergence is not "
                    "judged. Give its spec data=... (a function of 'train' or 'test') to judge its gates")
    if spec.gate_permille is None or spec.agreement_points is None or spec.agreement_epochs is None:
        pytest.skip(f"{network} states no gates: convergence is not judged. Give its spec gate_permille (the "
                    "test accuracy to reach, per mille), agreement_points and agreement_epochs to judge it")


def check_accuracy_gate(spec, config, record):
    """Reach the gate within the budget; over N seeds, the olympic mean with at most one miss."""
    _require_gates(spec.network)
    full = config.getoption("--full-recipe")
    progress = training.progress_printer(config)
    runs = [training.train_to_gate(spec, seed, full, progress) for seed in _seeds(config)]
    gate = networks.get(spec.network).gate_permille / 10
    for r in runs:
        record(f"seed{r.seed}_epochs_to_target", r.epochs_to_target)
        record(f"seed{r.seed}_final_accuracy", r.epochs[-1]["accuracy"])
    score = training.olympic([r.epochs_to_target for r in runs])
    record("olympic_epochs_to_target", score["mean"])
    missed = [r for r in runs if r.epochs_to_target is None]
    if len(runs) == 1:
        assert not missed, f"{spec.id} {_context(spec.network, _seeds(config))}: {_describe(runs[0])}, below the gate {gate}%"
    else:
        assert score["mean"] is not None, (
            f"{spec.id} {_context(spec.network, _seeds(config))}: {len(missed)} of {len(runs)} runs never reached "
            f"{gate}% (at most {T.CONVERGENCE_MAX_FAILED_RUNS} may miss): " + "; ".join(_describe(r) for r in missed))
    if full:
        low = [r for r in runs if not training.meets_gate(r.epochs[-1]["correct"], r.epochs[-1]["total"], spec.network)]
        assert len(low) <= (0 if len(runs) == 1 else T.CONVERGENCE_MAX_FAILED_RUNS), (
            f"{spec.id}: final accuracy after the full budget below {gate}%: "
            + "; ".join(f"seed {r.seed} {100 * r.epochs[-1]['accuracy']:.2f}%" for r in low))


def _pair(subject):
    if isinstance(subject, str):
        return subject, [registry.reference("torch", subject), registry.reference("keras", subject)]
    other = "keras" if subject.framework == "torch" else "torch"
    return subject.network, [subject, registry.reference(other, subject.network)]


def check_framework_agreement(subject, config, record):
    """The two frameworks' per-epoch accuracy curves over the same epochs, within the stated
    points at every epoch (averaged over seeds); final accuracies under --full-recipe; the
    epochs-to-target distributions over N >= 3 seeds."""
    network, specs = _pair(subject)
    _require_gates(network)
    full, seeds, progress = config.getoption("--full-recipe"), _seeds(config), training.progress_printer(config)
    runs = {s.id: [training.train_to_gate(s, seed, full, progress) for seed in seeds] for s in specs}
    n = training.same_epochs([r for rs in runs.values() for r in rs], progress)
    _write_reports(network, runs)
    (a_id, a_runs), (b_id, b_runs) = runs.items()
    gaps = 100 * np.abs(training.mean_curve(a_runs, n) - training.mean_curve(b_runs, n))
    limit = networks.get(network).agreement_points
    held = np.arange(n) >= n // 2  # the later half of the common curve (E.AGREEMENT_POINTS says why)
    worst = int(np.argmax(np.where(held, gaps, -1.0)))
    record("agreement_points_worst_epoch", float(gaps[worst]))
    record("margin", float(gaps[worst] / limit))
    problems = []
    if gaps[worst] > limit:
        problems.append(f"per-epoch test accuracy differs by {gaps[worst]:.2f} points at epoch {worst + 1} of {n} "
                        f"(held from epoch {n // 2 + 1}) "
                        f"(limit {limit}); gaps by epoch: " + ", ".join(f"{g:.2f}" for g in gaps))
    if full:
        final = 100 * abs(np.mean([r.epochs[-1]["accuracy"] for r in a_runs]) -
                          np.mean([r.epochs[-1]["accuracy"] for r in b_runs]))
        record("agreement_points_final", float(final))
        if final > limit:
            problems.append(f"final accuracies after the full budget differ by {final:.2f} points (limit {limit})")
    if len(seeds) >= 3:
        ea, eb = (training.olympic([r.epochs_to_target for r in rs]) for rs in (a_runs, b_runs))
        if ea["mean"] is None or eb["mean"] is None or abs(ea["mean"] - eb["mean"]) > networks.get(network).agreement_epochs:
            problems.append(f"epochs-to-target distributions differ: {a_id} {ea['values']} (olympic mean {ea['mean']}) vs "
                            f"{b_id} {eb['values']} (olympic mean {eb['mean']}), limit {networks.get(network).agreement_epochs} epochs")
    assert not problems, f"{network}: {a_id} vs {b_id} {_context(network, seeds)}: " + "; ".join(problems)


def _write_reports(network, runs):
    gate = networks.get(network).gate_permille / 10
    record = {"network": network, "gate_percent": gate, "versions": frameworks.versions(),
              "summary": {impl: {"final": training.summarise([r.epochs[-1]["accuracy"] for r in rs]),
                                 "epochs_to_target": training.olympic([r.epochs_to_target for r in rs])}
                          for impl, rs in runs.items()},
              "seconds_per_epoch": {impl: float(np.mean([e["train_seconds"] for r in rs for e in r.epochs]))
                                    for impl, rs in runs.items()},
              "runs": [r.record() for rs in runs.values() for r in rs]}
    majority = networks.get(network).majority_percent
    curves.write_convergence(REPORTS, network, record, gate, majority)

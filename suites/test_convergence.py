"""Convergence: accuracy gates, MLPerf-style time-to-accuracy.

Each twin trains under its own recipe, is evaluated on the full test split after every epoch
(correct answers counted exactly), and stops at the first epoch at or above the gate
(``--full-recipe``: runs the whole budget and gates the final accuracy). ``--seeds N`` runs N
shuffling seeds and gates the trimmed mean (best and worst dropped when N >= 5).

Runs for each framework's primary reference and for --impl candidates. Every epoch goes to
``reports/convergence/<network>.json``; the accuracy curves with the gate drawn in go to
``reports/convergence/<network>.png``.
"""

from __future__ import annotations

import functools
import json
import os
import time

import numpy as np
import pytest

from fixtures import data as D
from fixtures import expected as E
from impls import frameworks, registry
from impls.adapter import CandidateError, NoRecipe
from suites.helpers import REPORTS, make_id

pytestmark = pytest.mark.convergence

_RUNS: dict = {}  # (impl id, seed, full) -> run record; each run happens once per session


@functools.lru_cache(maxsize=None)
def _data(network):
    if network == "mnist_cnn":
        xtr, ytr = D.mnist_idx_arrays("train")
        xte, yte = D.mnist_idx_arrays("test")
        return D.normalise(xtr), ytr, D.normalise(xte), yte
    t = D.tweets()
    return t["x_train"], t["y_train"], t["x_test"], t["y_test"]


def _meets_gate(correct: int, total: int, network: str) -> bool:
    return correct * 1000 >= E.GATE_PERMILLE[network] * total


def _progress(config, line):
    """One line per epoch in interactive runs (make conform); quiet under CI."""
    if os.environ.get("CI"):
        return
    reporter = config.pluginmanager.getplugin("terminalreporter")
    capture = config.pluginmanager.getplugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():  # past pytest's output capture, to the terminal
            reporter.write_line(line)


def train_to_gate(spec, seed: int, full: bool, config, device: str = "cpu") -> dict:
    key = (spec.id, seed, full, device)
    if key in _RUNS:
        return _RUNS[key]
    network = spec.network
    twin = registry.build(spec, seed=seed)
    if device != "cpu":
        twin.place(device)
    xtr, ytr, xte, yte = _data(network)
    budget, batch = E.BUDGET_EPOCHS[network], E.TRAIN_BATCH[network]
    epochs, reached, started = [], None, time.perf_counter()
    for epoch in range(budget):
        t0 = time.perf_counter()
        loss = twin.fit_epoch(xtr, ytr, epoch, batch, seed)
        train_s = time.perf_counter() - t0
        correct = twin.count_correct(xte, yte, E.TEST_BATCH)
        epochs.append({"epoch": epoch + 1, "train_loss": loss, "correct": correct, "total": len(yte),
                       "accuracy": correct / len(yte), "train_seconds": train_s,
                       "seconds": time.perf_counter() - t0})
        _progress(config, f"  [{spec.id} seed {seed}] epoch {epoch + 1}/{budget}: loss {loss:.4f}, "
                          f"test {correct}/{len(yte)} = {100 * correct / len(yte):.2f}%, {train_s:.1f} s")
        if reached is None and _meets_gate(correct, len(yte), network):
            reached = epoch + 1
            if not full:
                break
    run = {"impl": spec.id, "framework": spec.framework, "network": network, "seed": seed, "device": device,
           "full_recipe": full, "epochs": epochs, "epochs_to_target": reached,
           "seconds_to_target": (sum(e["seconds"] for e in epochs[:reached]) if reached else None),
           "wall_seconds": time.perf_counter() - started}
    _RUNS[key] = run
    return run


def summarise(accuracies: list[float]) -> dict:
    """MLPerf-style: drop the best and the worst when there are at least 5 runs, then average."""
    acc = sorted(accuracies)
    kept = acc[1:-1] if len(acc) >= 5 else acc
    return {"mean": float(np.mean(kept)), "min": acc[0], "max": acc[-1], "std": float(np.std(acc)),
            "runs": len(acc), "dropped_best_and_worst": len(acc) >= 5}


def _final(run):
    return run["epochs"][-1]


def _seeds(config):
    n = config.getoption("--seeds")
    return [E.CONVERGENCE_SEED + i for i in range(n)]


def _context(spec, seed=None):
    v = frameworks.versions()
    return (f"[{spec.framework} {v[spec.framework if spec.framework == 'torch' else 'keras']}, "
            f"tensorflow {v['tensorflow']}, network {spec.network}" + (f", seed {seed}" if seed is not None else "") + "]")


def check_accuracy_gate(spec, config, record):
    """Reach the gate within the budget (time-to-accuracy), for every seed."""
    full = config.getoption("--full-recipe")
    runs = [train_to_gate(spec, seed, full, config) for seed in _seeds(config)]
    gate = E.GATE_PERMILLE[spec.network] / 10
    summary = summarise([_final(r)["accuracy"] for r in runs])
    for r in runs:
        record(f"seed{r['seed']}_epochs_to_target", r["epochs_to_target"])
        record(f"seed{r['seed']}_final_accuracy", _final(r)["accuracy"])
    failures = []
    for r in runs:
        final = _final(r)
        if r["epochs_to_target"] is None or (full and not _meets_gate(final["correct"], final["total"], spec.network)):
            best = max(r["epochs"], key=lambda e: e["correct"])
            shown = final if full else best
            failures.append(f"seed {r['seed']}: {'final' if full else 'best'} accuracy {shown['correct']}/"
                            f"{shown['total']} = {100 * shown['accuracy']:.2f}% (best at epoch {best['epoch']}) "
                            f"after {len(r['epochs'])} epochs, below the gate {gate}%")
    if len(runs) > 1 and 100 * summary["mean"] < gate:
        failures.append(f"summary over {len(runs)} seeds: mean {100 * summary['mean']:.2f}% below {gate}%")
    assert not failures, f"{spec.id} {_context(spec)}: " + "; ".join(failures)


def check_framework_agreement(subject, config, record):
    """torch and Keras reach the same accuracy within the stated points (a candidate: against
    the other framework's reference)."""
    full = config.getoption("--full-recipe")
    if isinstance(subject, str):
        network = subject
        specs = [registry.reference("torch", network), registry.reference("keras", network)]
    else:
        network = subject.network
        specs = [subject, registry.reference("keras" if subject.framework == "torch" else "torch", network)]
    runs = {s.id: [train_to_gate(s, seed, full, config) for seed in _seeds(config)] for s in specs}
    _write_reports(network, runs)
    (a_id, a), (b_id, b) = [(impl, summarise([_final(r)["accuracy"] for r in rs])["mean"]) for impl, rs in runs.items()]
    gap = abs(a - b) * 100
    record("agreement_points", gap)
    limit = E.AGREEMENT_POINTS[network]
    assert gap <= limit, (f"{network}: {a_id} reaches {100 * a:.2f}% and {b_id} {100 * b:.2f}%, "
                          f"{gap:.2f} points apart (limit {limit}) [seeds {_seeds(config)}, "
                          f"{', '.join(f'{k} {v}' for k, v in frameworks.versions().items())}]")


def pytest_generate_tests(metafunc):
    config = metafunc.config
    candidates = config.twinbench_candidates
    if candidates:
        subjects = [(c, check) for c in candidates for check in (check_accuracy_gate, check_framework_agreement)]
    else:
        subjects = [(registry.reference(fw, net), check_accuracy_gate) for net in E.NETWORKS for fw in ("torch", "keras")]
        subjects += [(net, check_framework_agreement) for net in E.NETWORKS]
    metafunc.parametrize(("subject", "check"), [pytest.param(s, c, id=make_id(s, c)) for s, c in subjects])


def test_convergence(subject, check, request, record_property):
    __tracebackhide__ = True
    failure = None
    try:
        check(subject, request.config, record_property)
    except NoRecipe as exc:
        pytest.skip(str(exc))
    except (AssertionError, CandidateError) as exc:
        failure = str(exc).split("\nassert ")[0]
    if failure is not None:
        pytest.fail(failure, pytrace=False)


def _write_reports(network, runs):
    out = REPORTS / "convergence"
    out.mkdir(parents=True, exist_ok=True)
    gate = E.GATE_PERMILLE[network] / 10
    record = {"network": network, "gate_percent": gate, "versions": frameworks.versions(),
              "summary": {impl: summarise([_final(r)["accuracy"] for r in rs]) for impl, rs in runs.items()},
              "seconds_per_epoch": {impl: float(np.mean([e["train_seconds"] for r in rs for e in r["epochs"]]))
                                    for impl, rs in runs.items()},
              "runs": [r for rs in runs.values() for r in rs]}
    if network == "tweet_fasttext":
        record["majority_class_percent"] = E.TWEETS_MAJORITY_PERCENT
    D.atomic_write_bytes(out / f"{network}.json", json.dumps(record, indent=2).encode())

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for impl, rs in runs.items():
        for r in rs:
            ax.plot([e["epoch"] for e in r["epochs"]], [100 * e["accuracy"] for e in r["epochs"]],
                    marker="o", label=f"{impl} (seed {r['seed']})")
    ax.axhline(gate, color="red", linestyle=":", label=f"gate {gate}%")
    if network == "tweet_fasttext":
        ax.axhline(E.TWEETS_MAJORITY_PERCENT, color="grey", linestyle="--", label="majority class 70.0%")
    ax.set(xlabel="epoch", ylabel="test accuracy (%)", title=f"{network}: time to accuracy")
    ax.legend(fontsize=8)
    tmp = out / f".{network}.partial.png"
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    tmp.replace(out / f"{network}.png")

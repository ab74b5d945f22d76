"""Baselines: one JSON file per run (``pytest --save-baseline NAME``) and the comparison of a
later run with it (``pytest --compare-baseline NAME``), for signing off framework upgrades.

A baseline holds the versions, every test's outcome, what the checks measured (parameter counts,
golden diffs, parity figures), the convergence results and the benchmark medians. The
comparison becomes tests of their own (suites/test_baseline.py), run after everything else:

- a check that passed in the baseline and does not pass now;
- a test-accuracy drop of more than BASELINE_ACCURACY_DROP_POINTS;
- more epochs to the gate than the baseline's + BASELINE_EXTRA_EPOCHS;
- golden drift beyond the golden tolerance;
- a benchmark median slower by more than BASELINE_SLOWDOWN.

Improvements are listed at the end of the run and are not failures.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from twinbench.fixtures.files import atomic_write
from twinbench.fixtures import tolerances as T

FORMAT = 2  # 2: outcomes in the report vocabulary (pass, fail, error, skip, xfail, xpass)


class BaselineError(ValueError):
    """A missing, corrupt or protected baseline file; the message names it and the fix."""


def directory() -> Path:
    return Path(os.environ.get("TWINBENCH_BASELINES", "baselines"))


def path_for(name: str) -> Path:
    if not name or "/" in name or name.startswith("."):
        raise BaselineError(f"baseline name {name!r} must be a plain file name such as 'tf-2.21'")
    return directory() / f"{name}.json"


def writable_path(name: str, force: bool) -> Path:
    path = path_for(name)
    if path.exists() and not force:
        raise BaselineError(f"baseline {path} exists; a baseline is never overwritten without --force "
                            "(or save under another NAME)")
    return path


def load(name: str) -> dict:
    path = path_for(name)
    if not path.is_file():
        have = sorted(p.stem for p in directory().glob("*.json")) if directory().is_dir() else []
        raise BaselineError(f"baseline {path} not found; saved baselines in {directory()}/: "
                            f"{', '.join(have) or 'none'} (make one with --save-baseline {name})")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BaselineError(f"baseline {path} is not valid JSON ({exc}); delete it and save it again") from exc
    missing = [k for k in ("format", "versions", "outcomes", "measured", "convergence", "benchmarks") if k not in data]
    if missing or data.get("format") != FORMAT:
        raise BaselineError(f"baseline {path} is not a twinbench baseline of format {FORMAT} (missing "
                            f"{', '.join(missing) or 'nothing'}, format {data.get('format')!r}); save it again")
    data["name"] = name
    return data


def save(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps({"format": FORMAT, **payload}, indent=2, default=float) + "\n")


def entries(baseline: dict) -> list[tuple]:
    """Everything a later run is held to, as (kind, key, baseline value)."""
    out = []
    for nodeid, outcome in sorted(baseline["outcomes"].items()):
        if outcome == "pass" and "test_baseline.py" not in nodeid:
            out.append(("check", nodeid, outcome))
    for nodeid, measured in sorted(baseline["measured"].items()):
        if "golden_max_abs_diff" in measured:
            out.append(("golden", nodeid, measured["golden_max_abs_diff"]))
    for impl, run in sorted(baseline["convergence"].items()):
        out.append(("accuracy", impl, run["accuracy"]))
        if run.get("epochs_to_target") is not None:
            out.append(("epochs", impl, run["epochs_to_target"]))
    for name, median in sorted(baseline["benchmarks"].items()):
        out.append(("benchmark", name, median))
    return out


def entry_id(entry) -> str:
    kind, key, _ = entry
    return f"{kind}:{key}"


# The regression rules, in one place: the baseline comparison, the improvements and the upgrade
# report all apply these (thresholds: fixtures/tolerances.py).
def accuracy_dropped(then: float, now: float) -> bool:
    return 100 * (then - now) > T.BASELINE_ACCURACY_DROP_POINTS


def epochs_grew(then, now) -> bool:
    return then is not None and (now is None or now > then + T.BASELINE_EXTRA_EPOCHS)


def golden_drifted(diff) -> bool:
    return isinstance(diff, float) and diff > T.GOLDEN_ATOL


def slower(then, now) -> bool:
    return then is not None and now is not None and now > then * (1 + T.BASELINE_SLOWDOWN)


def faster(then, now) -> bool:
    return then is not None and now is not None and now < then * (1 - T.BASELINE_SLOWDOWN)


def _compare_check(key, then, now: dict, baseline_name: str):
    """A check that passed in the baseline must pass now."""
    outcome = now["outcomes"].get(key)
    if outcome is None:
        return "skip", f"{key} was not run in this session (the selection differs from baseline {baseline_name}'s)"
    if outcome != "pass":
        return "fail", f"{key} passed in baseline {baseline_name} and is {outcome} now"
    return "pass", ""


def _compare_golden(key, then, now: dict, baseline_name: str):
    """The golden diff must stay within the golden tolerance."""
    diff = now["measured"].get(key, {}).get("golden_max_abs_diff")
    if diff is None:
        return "skip", f"{key}: no golden diff measured in this session"
    if golden_drifted(diff):
        return "fail", (f"{key}: golden drift {diff:.3g} beyond the tolerance {T.GOLDEN_ATOL:g} "
                        f"(baseline {baseline_name}: {then:.3g})")
    return "pass", ""


def _no_convergence_run(key):
    """The skip of a convergence entry that this session did not train."""
    return "skip", f"{key}: no convergence run in this session"


def _compare_accuracy(key, then, now: dict, baseline_name: str):
    """The test accuracy may drop by at most BASELINE_ACCURACY_DROP_POINTS."""
    run = now["convergence"].get(key)
    if run is None:
        return _no_convergence_run(key)
    if accuracy_dropped(then, run["accuracy"]):
        return "fail", (f"{key}: test accuracy {100 * run['accuracy']:.2f}%, baseline {baseline_name} had "
                        f"{100 * then:.2f}%: a drop of {100 * (then - run['accuracy']):.2f} points, more than "
                        f"{T.BASELINE_ACCURACY_DROP_POINTS}")
    return "pass", ""


def _compare_epochs(key, then, now: dict, baseline_name: str):
    """The epochs to the gate may grow by at most BASELINE_EXTRA_EPOCHS."""
    run = now["convergence"].get(key)
    if run is None:
        return _no_convergence_run(key)
    epochs = run.get("epochs_to_target")
    if epochs_grew(then, epochs):
        return "fail", (f"{key}: {'never reached the gate' if epochs is None else f'{epochs} epochs to the gate'}, "
                        f"baseline {baseline_name} needed {then} (allowed: +{T.BASELINE_EXTRA_EPOCHS})")
    return "pass", ""


def _compare_benchmark(key, then, now: dict, baseline_name: str):
    """A benchmark median may be at most BASELINE_SLOWDOWN slower."""
    median = now["benchmarks"].get(key)
    if median is None:
        return "skip", f"{key}: not timed in this session (benchmarks disabled or not selected)"
    if slower(then, median):
        return "fail", (f"{key}: median {median:.4g} s, baseline {baseline_name} {then:.4g} s: "
                        f"{100 * (median / then - 1):.1f}% slower, more than {100 * T.BASELINE_SLOWDOWN:.0f}%")
    return "pass", ""


_COMPARISONS = {"check": _compare_check, "golden": _compare_golden, "accuracy": _compare_accuracy,
                "epochs": _compare_epochs, "benchmark": _compare_benchmark}


def compare_entry(entry, now: dict, baseline_name: str):
    """(status, message) of one baseline entry against the current run: "pass", "fail", or
    "skip" when this run did not measure it."""
    kind, key, then = entry
    if kind not in _COMPARISONS:
        raise ValueError(f"unknown baseline entry kind {kind!r}")
    return _COMPARISONS[kind](key, then, now, baseline_name)


def improvements(baseline: dict, now: dict) -> list[str]:
    out = []
    for nodeid, outcome in sorted(baseline["outcomes"].items()):
        if outcome in ("fail", "xfail") and now["outcomes"].get(nodeid) == "pass":
            out.append(f"{nodeid}: {outcome} in the baseline, passes now")
    for impl, run in sorted(baseline["convergence"].items()):
        cur = now["convergence"].get(impl)
        if cur and cur["accuracy"] > run["accuracy"]:
            out.append(f"{impl}: test accuracy {100 * run['accuracy']:.2f}% -> {100 * cur['accuracy']:.2f}%")
        if cur and run.get("epochs_to_target") and cur.get("epochs_to_target") and \
                cur["epochs_to_target"] < run["epochs_to_target"]:
            out.append(f"{impl}: epochs to the gate {run['epochs_to_target']} -> {cur['epochs_to_target']}")
    for name, median in sorted(baseline["benchmarks"].items()):
        cur = now["benchmarks"].get(name)
        if faster(median, cur):
            out.append(f"{name}: median {median:.4g} s -> {cur:.4g} s ({100 * (1 - cur / median):.1f}% faster)")
    return out


def current_snapshot(config) -> dict:
    """What this run has measured so far, in the baseline's shape."""
    from twinbench.impls import frameworks
    from twinbench.suites import runstate

    conv = {}
    state = runstate.state(config)
    records = [run.record() for run in state.runs.values()] + state.worker_runs  # pytest-xdist workers' too
    for r in sorted(records, key=lambda r: r["seed"]):
        key = (r["impl"] if r["device"] == "cpu" else f"{r['impl']}@{r['device']}") + \
            ("" if r["variant"] == "eager" else f"-{r['variant']}")
        if key not in conv and r["epochs"]:  # the first (default) seed
            conv[key] = {"accuracy": r["epochs"][-1]["accuracy"], "epochs_to_target": r["epochs_to_target"],
                         "seconds_to_target": r["seconds_to_target"], "seed": r["seed"],
                         "curve": [e["accuracy"] for e in r["epochs"]]}
    bench = getattr(config, "_benchmarksession", None)
    medians = {}
    if bench is not None and not bench.disabled:
        medians = {b.fullname: b.stats.median for b in bench.benchmarks if b.stats and b.stats.data}
    return {"versions": frameworks.versions(), "outcomes": dict(state.outcomes),
            "measured": dict(state.measured), "convergence": conv, "benchmarks": medians}

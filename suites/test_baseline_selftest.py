"""Self-tests of --save-baseline / --compare-baseline: an injected regression is caught, bad
baseline files give clear errors, and a baseline is never overwritten without --force."""

import json
import os
import subprocess
import sys

import pytest

from twinbench.suites import baseline
from twinbench.suites.helpers import at_once

pytestmark = pytest.mark.selftest

SUBSET = ["-m", "golden or parameters", "-k", "torch-mnist_cnn-module"]


def _pytest(tmp_path, *args, reports="reports"):
    env = dict(os.environ, TWINBENCH_BASELINES=str(tmp_path), TWINBENCH_REPORTS=str(tmp_path / reports),
               PYTHONUNBUFFERED="1")
    env.pop("TWINBENCH_IMPL", None)
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args],
                          capture_output=True, text=True, env=env, timeout=600)


@pytest.mark.e2e
def test_injected_regression_is_caught(tmp_path):
    """Save a baseline, then compare a run in which every torch Linear adds 1e-3 to its output."""
    saved = _pytest(tmp_path, *SUBSET, "--save-baseline", "before")
    assert saved.returncode == 0, saved.stdout[-3000:] + saved.stderr[-2000:]
    data = json.loads((tmp_path / "before.json").read_text())
    assert data["versions"]["torch"] and any("golden" in k for k in data["measured"]), data["measured"]
    assert any(v.get("param_count_total") == 1199882 for v in data["measured"].values()), data["measured"]

    clean, broken = at_once(  # two comparisons with the same saved baseline: independent runs
        lambda: _pytest(tmp_path, *SUBSET, "--compare-baseline", "before", reports="reports-clean"),
        lambda: _pytest(tmp_path, *SUBSET, "--compare-baseline", "before", "-p", "twinbench.suites.plugin_samples.add_to_logits",
                        reports="reports-broken"))
    assert clean.returncode == 0, clean.stdout[-3000:]
    out = broken.stdout
    assert broken.returncode == 1, out[-3000:]
    assert "check_golden_outputs] passed in baseline before and is fail now" in out, out[-4000:]
    assert "golden drift" in out and "beyond the tolerance" in out, out[-4000:]
    assert "outputs moved from the golden torch recording" in out and "first moved at layer fc1" in out, out[-4000:]


def test_missing_and_corrupt_baselines_are_clear_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("TWINBENCH_BASELINES", str(tmp_path))
    with pytest.raises(baseline.BaselineError, match=r"not found; saved baselines in .*: none"):
        baseline.load("nope")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(baseline.BaselineError, match="is not valid JSON"):
        baseline.load("bad")
    (tmp_path / "old.json").write_text(json.dumps({"format": 0}))
    with pytest.raises(baseline.BaselineError, match="is not a twinbench baseline"):
        baseline.load("old")
    with pytest.raises(baseline.BaselineError, match="plain file name"):
        baseline.path_for("../x")
    (tmp_path / "kept.json").write_text("{}")
    with pytest.raises(baseline.BaselineError, match="never overwritten without --force"):
        baseline.writable_path("kept", force=False)
    assert baseline.writable_path("kept", force=True) == tmp_path / "kept.json"


def test_comparison_rules():
    now = {"outcomes": {"a": "fail", "b": "pass"}, "measured": {"g": {"golden_max_abs_diff": 2e-5}},
           "convergence": {"m": {"accuracy": 0.9860, "epochs_to_target": 5}}, "benchmarks": {"t": 1.2}}
    assert baseline.compare_entry(("check", "a", "pass"), now, "B")[0] == "fail"
    assert baseline.compare_entry(("check", "b", "pass"), now, "B")[0] == "pass"
    assert baseline.compare_entry(("check", "c", "pass"), now, "B")[0] == "skip"
    assert baseline.compare_entry(("golden", "g", 0.0), now, "B")[0] == "fail"
    assert baseline.compare_entry(("accuracy", "m", 0.9895), now, "B")[0] == "fail"  # a drop of 0.35 points
    assert baseline.compare_entry(("accuracy", "m", 0.9885), now, "B")[0] == "pass"  # 0.25 points
    assert baseline.compare_entry(("epochs", "m", 4), now, "B")[0] == "pass"
    assert baseline.compare_entry(("epochs", "m", 3), now, "B")[0] == "fail"
    assert baseline.compare_entry(("benchmark", "t", 1.0), now, "B")[0] == "fail"
    assert baseline.compare_entry(("benchmark", "t", 1.1), now, "B")[0] == "pass"


@pytest.mark.e2e
def test_interrupted_run_keeps_the_previous_report(tmp_path):
    (tmp_path / "conformance.md").write_text("previous report\n")
    (tmp_path / "before.json").write_text("{}")
    proc = _pytest(tmp_path, "-m", "parameters", f"--conform-report={tmp_path}", "--save-baseline", "interrupted",
                   "-p", "twinbench.suites.plugin_samples.interrupt")
    assert proc.returncode == 2, proc.stdout[-2000:]
    assert "run interrupted: no report, baseline or detection file written" in proc.stdout, proc.stdout[-2000:]
    assert (tmp_path / "conformance.md").read_text() == "previous report\n"
    assert not (tmp_path / "interrupted.json").exists() and not (tmp_path / "conformance.json").exists()

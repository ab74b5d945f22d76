"""The speed report's judgements (suites/speed_report.py): the GPU epoch target, and figures kept
from an earlier run."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.selftest


def test_the_gpu_epoch_target_is_judged_on_the_deterministic_variants():
    """A variant that lets cuDNN choose nondeterministic kernels is reported beside the target's
    judgement, never in its place."""
    from twinbench.suites import speed_report

    def row(variant, seconds):
        name = "torch-module" + ("" if variant == "eager" else f"-{variant}")
        return {"figure": "epoch", "device": "gpu", "framework": "torch", "network": "mnist_cnn", "variant": variant,
                "name": name, "median_s": seconds, "extra_info": {"samples": 60000}}

    rows = [row("eager", 3.38), row("graph", 0.891), row("graph-nondeterministic", 0.59)]
    line = next(x for x in speed_report._gpu_targets(rows, {"gpu": 49665.0}) if "mnist_cnn epoch" in x)
    assert "fastest deterministic torch-module-graph 891 ms; target 0.6 s: **misses**" in line, line
    assert "nondeterministic cuDNN kernels allowed, torch-module-graph-nondeterministic 590 ms (meets)" in line, line
    assert "an epoch would take" in line and "the fastest deterministic takes 10.2x" in line, line
    alone = next(x for x in speed_report._gpu_targets(rows[2:], {"gpu": 49665.0}) if "mnist_cnn epoch" in x)
    assert "no deterministic variant timed in this run (target 0.6 s: not judged)" in alone, alone
    assert "**" not in alone and "torch-module-graph-nondeterministic 590 ms (meets)" in alone, alone
    tweets = next(x for x in speed_report._gpu_targets(rows, {"gpu": 49665.0}) if "tweet_fasttext epoch" in x)
    assert "not measured in this run (not selected)" in tweets, tweets
    assert "no GPU visible" in next(x for x in speed_report._gpu_targets([], {}) if "mnist_cnn epoch" in x)


def test_a_gpu_figure_kept_from_an_earlier_run_says_so():
    """A time-to-gate whose test failed in this run is not re-measured; the row kept from an earlier
    run must not read as this run's result in the targets' lines."""
    from twinbench.suites import speed_report

    now, then = "2026-11-27T11:51:55", "2026-11-26T22:58:40"
    epoch = {"figure": "epoch", "device": "gpu", "framework": "torch", "network": "mnist_cnn", "variant": "graph",
             "name": "torch-module-graph", "median_s": 0.568, "extra_info": {"samples": 60000}, "measured_at": now}
    gate = {"figure": "time-to-gate", "device": "gpu", "framework": "torch", "network": "mnist_cnn",
            "variant": "graph", "name": "torch-module-graph", "median_s": 17.6, "measured_at": then,
            "extra_info": {"seeds": [1, 2, 3], "epochs_to_gate": [4, 5, 3], "seconds_to_gate": [3.7, 4.6, 2.8],
                           "olympic_seconds_to_gate": 3.7, "olympic_epochs_to_gate": 4}}
    lines = speed_report._gpu_targets([epoch, gate], {"gpu": 49665.0})
    epoch_line = next(x for x in lines if "mnist_cnn epoch" in x)
    gate_line = next(x for x in lines if "time to" in x)
    assert "kept from an earlier run" not in epoch_line, epoch_line
    assert gate_line.endswith(f"[kept from an earlier run, measured {then}]"), gate_line
    # Rows of older reports carry "an earlier run", which sorts after every time: still the old ones.
    older = dict(gate, measured_at="an earlier run")
    lines = speed_report._gpu_targets([epoch, older], {"gpu": 49665.0})
    assert "kept" not in next(x for x in lines if "mnist_cnn epoch" in x)
    assert next(x for x in lines if "time to" in x).endswith("[kept from an earlier run]")

"""The run's state: everything one pytest session accumulates, held once in ``config.stash[STATE]``.

Read and written only through ``state(config)``; a pytest-xdist worker hands its controller what
the test reports do not carry with ``RunState.export``, and the controller takes it in with
``RunState.merge`` (suites/plugin/xdist.py).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from suites.status import Status

# Where checks write side products (summaries, plots); `make conform` and `make test` use reports/.
REPORTS = Path(os.environ.get("TWINBENCH_REPORTS", "reports"))


@dataclass
class Cell:
    """The outcome of one (implementation, check) pair."""

    status: Status
    detail: str = ""
    margin: float | None = None  # measured / tolerance of the check's deciding figure (< 1 passes)
    nodeid: str = ""


@dataclass
class RunState:
    """Everything one pytest session accumulates; ``config.stash[STATE]``."""

    candidates: list
    specs: list
    architecture_only: bool = False
    started: float = field(default_factory=time.perf_counter)
    cells: dict = field(default_factory=dict)        # (impl id, check name) -> Cell
    outcomes: dict = field(default_factory=dict)     # nodeid -> status
    measured: dict = field(default_factory=dict)     # nodeid -> {name: value}
    deselected: dict = field(default_factory=dict)   # impl id -> {family}
    detection: dict = field(default_factory=dict)    # corpus id -> record (suites/test_detection.py)
    baseline: dict | None = None                     # --compare-baseline: the loaded baseline
    save_to: Path | None = None                      # --save-baseline: where to write
    saved: Path | None = None
    verdicts: dict = field(default_factory=dict)     # impl id -> (verdict, summary), set at the end
    diagnosis: dict = field(default_factory=dict)    # rejected candidate id -> ["likely cause [...]: ..." lines]
    repro: dict = field(default_factory=dict)        # rejected candidate id -> the repro script written
    worker_runs: list = field(default_factory=list)  # pytest-xdist: the workers' training.Run records

    def export(self) -> str:
        """What a pytest-xdist worker hands its controller (config.workeroutput): what the
        controller cannot see in the test reports it receives: the families deselected, the
        detection records, the training runs and the reference cache's events of this process."""
        from suites import refcache, training

        return json.dumps({"deselected": {k: sorted(v) for k, v in self.deselected.items()},
                           "detection": self.detection, "runs": [r.record() for r in training.runs().values()],
                           "refcache": refcache.events()}, default=float)

    def merge(self, exported: str) -> list:
        """A worker's export merged into the controller's state; returns its reference cache events."""
        got = json.loads(exported)
        for impl, families in got["deselected"].items():
            self.deselected.setdefault(impl, set()).update(families)
        self.detection.update(got["detection"])
        self.worker_runs += got["runs"]
        return got["refcache"]


STATE = pytest.StashKey[RunState]()


def state(config) -> RunState:
    return config.stash[STATE]


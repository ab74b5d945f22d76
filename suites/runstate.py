"""The run's state: everything one pytest session accumulates, held once in ``config.stash[STATE]``.

The plugin reads it through ``state(config)``; the library modules below it (training runs and
trajectories, the reference cache's log, the optimizer replay, the batches a check asked for)
have no config and read the same object through ``current()``: the session in progress
activates its state at configure and deactivates it at unconfigure, so a pytest run started
inside another (pytester) has its own and hands it back. A process outside pytest (a repro
script, a tool) gets a state of its own on first use. A pytest-xdist worker hands its controller
what the test reports do not carry with ``RunState.export``, and the controller takes it in with
``RunState.merge`` (suites/plugin/xdist.py).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from twinbench.suites.status import Status

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
    # Below: what the library modules keep for the session (read through current()).
    plots: bool = True                                 # checks draw their plots (the detection self-test: no)
    runs: dict = field(default_factory=dict)           # training: (impl id, seed, device, variant) -> Run
    trajectories: dict = field(default_factory=dict)   # training: (impl id, dropout) -> a reference's run
    subject: dict = field(default_factory=dict)        # training: the latest subject's trajectory run
    replay: dict = field(default_factory=dict)         # checks/optimizer: the latest subject's replay
    init_samples: dict = field(default_factory=dict)   # checks/initialization: the latest subject's fresh builds
    batches_asked: list = field(default_factory=list)  # helpers.real_batch: the sizes asked for (repro)
    refcache_mode: str = field(default_factory=lambda: os.environ.get("TWINBENCH_REFCACHE", "use"))
    refcache_events: list = field(default_factory=list)   # what the session did with the reference cache
    refcache_pending: dict = field(default_factory=dict)  # entry -> why the stored one was not used

    def export(self) -> str:
        """What a pytest-xdist worker hands its controller (config.workeroutput): what the
        controller cannot see in the test reports it receives: the families deselected, the
        detection records, the training runs and the reference cache's events of this process."""
        return json.dumps({"deselected": {k: sorted(v) for k, v in self.deselected.items()},
                           "detection": self.detection, "runs": [r.record() for r in self.runs.values()],
                           "refcache": self.refcache_events}, default=float)

    def merge(self, exported: str) -> None:
        """A worker's export merged into the controller's state."""
        got = json.loads(exported)
        for impl, families in got["deselected"].items():
            self.deselected.setdefault(impl, set()).update(families)
        self.detection.update(got["detection"])
        self.worker_runs += got["runs"]
        self.refcache_events += got["refcache"]


STATE = pytest.StashKey[RunState]()


def state(config) -> RunState:
    return config.stash[STATE]


_ACTIVE: list = []  # the states of the sessions in progress, innermost last (references, not state)


def activate(run: RunState) -> None:
    _ACTIVE.append(run)


def deactivate(run: RunState) -> None:
    if run in _ACTIVE:
        _ACTIVE.remove(run)


def current() -> RunState:
    """The state of the innermost pytest session in progress; outside pytest, this process's own."""
    if not _ACTIVE:
        _ACTIVE.append(RunState([], []))
    return _ACTIVE[-1]


"""Repro scripts: for a rejected candidate, a standalone script that reruns its first failing check.

``--conform-report DIR`` writes ``DIR/repro/<candidate-id>.py``. The script builds the candidate
from its factory and the references from impls/, runs that one check exactly as the conformance
run did (the same check callable through ``helpers.run_one``, as its pytest test does), and
prints the check's message: the layer, the values, the tolerance. A check that needs pytest's
fixtures (convergence, golden) is run through pytest on its test id instead. It exits 1 while the
fault persists and 0 once it is fixed, so it can guard the fix in a user's CI (2: the check
could not run at all, e.g. the file or factory was renamed). Run with another interpreter, it
re-executes itself with the one that wrote it.

``python -m twinbench.suites.repro SCRIPT...`` runs scripts one after another in one process (the
detection self-test runs every faulty candidate's this way) and prints each one's exit status.
"""

from __future__ import annotations

import contextlib
import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import twinbench
from twinbench.fixtures.files import atomic_write

ROOT = Path(__file__).resolve().parent.parent
IMPORT_ROOT = Path(twinbench.__file__).resolve().parent.parent  # the folder that holds the twinbench package

TEMPLATE = '''#!/usr/bin/env python3
"""twinbench repro: {impl} fails {check}.

Builds the candidate from its factory and the references from impls/, reruns that one check as the
conformance run that wrote this file did, and prints the divergence. Exit status 1 while the fault
persists, 0 once it is fixed, 2 when the check cannot be run any more.
{minimised}

    python {path}
"""
import os
import sys

ROOT = {root!r}
IMPORT_ROOT = {import_root!r}  # where the package twinbench is
PYTHON, PREFIX = {python!r}, {prefix!r}  # the interpreter of the run that wrote this script
IMPL = {impl_arg!r}  # the --impl value
NETWORK = {network_arg!r}  # the --network value of a user's pair (None: a reference network)
CHECK = {check!r}
TEST = {nodeid!r}  # its pytest test: python -m pytest TEST --impl IMPL
ENV = {env!r}  # {minimised}


def main():
    if sys.prefix != PREFIX and os.path.exists(PYTHON):  # another interpreter: rerun with the one that wrote it
        os.execv(PYTHON, [PYTHON, os.path.abspath(__file__)])
    os.chdir(ROOT)
    sys.path.insert(0, IMPORT_ROOT)
    from twinbench.suites.repro import rerun

    return rerun(IMPL, CHECK, TEST, ENV, NETWORK)


if __name__ == "__main__":
    sys.exit(main())
'''


@contextlib.contextmanager
def environ(values: dict):
    """``values`` set in os.environ, every variable restored (or removed) after."""
    before = {k: os.environ.get(k) for k in values}
    os.environ.update({k: str(v) for k, v in values.items()})
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def resolve(spec, check: str):
    """The catalogue's check callable named ``check`` for ``spec``; None when it needs pytest's own
    fixtures (its test is run instead)."""
    from twinbench.suites import catalogue

    return catalogue.find(spec, check)


def rerun(impl: str, check: str, nodeid: str, env: dict, network: str | None = None) -> int:
    """What a repro script does: 1 while ``check`` fails on the candidate ``impl``, 0 once it
    passes, 2 when it cannot be run. ``network``: the --network value of a user's pair, loaded
    first."""
    shown = " ".join(f"{k}={v}" for k, v in env.items())
    print(f"twinbench repro: {check} on --impl {impl}" + (f", with {shown}" if shown else ""), flush=True)
    with environ(env):
        try:
            from twinbench.impls import frameworks, networks, registry
            from twinbench.suites import helpers

            frameworks.set_determinism()
            if network is not None:
                registry.load_network(network)
            spec = registry.parse_impl(impl)
            found = resolve(spec, check)
        except Exception as exc:  # noqa: BLE001 -- renamed file or factory, a check that is gone
            print(f"twinbench repro: the check could not be run ({type(exc).__name__}: {exc}); the candidate's file, "
                  "factory or the check has changed since this script was written: run the conformance again")
            return 2
        if found is None:  # it needs pytest's fixtures: run its test
            # a pair's own twin is a subject of --network alone (its test id is the twin's, not a candidate's)
            own = network is not None and any(r.factory == spec.factory for r in registry.references_of(networks.get(spec.network)))
            # the test file by its absolute path: the run's rootdir (its node ids' base) need not be this one's
            module, sep, test = nodeid.partition("::")
            target = f"{Path(__file__).resolve().parent / Path(module).name}{sep}{test}"
            cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--no-header", "--no-diagnosis",
                   target] + ([] if own else ["--impl", impl]) + (["--network", network] if network is not None else [])
            print("running:", " ".join(cmd), flush=True)
            rc = subprocess.call(cmd, cwd=ROOT)
            return rc if rc in (0, 1) else 2
        result = helpers.run_one(found, lambda: registry.build(spec, seed=0))
    print(f"{result.status.upper()}: {check}" + (f": {result.message}" if result.message else ""), flush=True)
    return result.status.exit_code


def nodeid_of(check, spec) -> str:
    """The pytest id of ``check`` (a catalogue check callable) for ``spec`` run as ``--impl`` (a
    corpus entry or a mutant, whose own id is the detection self-test's)."""
    from twinbench.impls import registry
    from twinbench.suites import catalogue

    impl = registry.candidate_id(spec.framework, spec.network, spec.factory)
    return catalogue.nodeid(catalogue.record_of(check).group, impl, check)


def run_scripts(paths: list) -> dict:
    """Run repro scripts one after another in this process: path -> exit status."""
    codes = {}
    for path in paths:
        try:
            runpy.run_path(str(path), run_name="__main__")
            codes[str(path)] = 0
        except SystemExit as exc:
            codes[str(path)] = exc.code if isinstance(exc.code, int) else 2
    return codes


def minimise(check, build, controls=()) -> dict:
    """The smallest real batch (1, 2, 4, ... test examples, spread over the test split as the
    check's own batch is) with which ``check`` still fails on ``build()`` while it passes on every
    correct twin of ``controls`` (builders of the references), as ai-edge-torch's culprit finder
    shrinks its inputs: {"batch": k, "of": n}. A size at which a correct twin fails too (a check
    that needs a spread of logits, or both classes) shows nothing and is passed over. {} when the
    check reads no real batch, or fails only at its full size. (Trajectories need no shrinking:
    a run stops at its first divergent step.)"""
    from twinbench.suites import helpers, runstate

    asked = runstate.current().batches_asked
    asked.clear()
    if helpers.run_one(check, build).status != "fail" or not asked:
        return {}
    full, k = max(asked), 1
    while k < full:
        with environ({helpers.REPRO_BATCH_ENV: k}):
            if helpers.run_one(check, build).status == "fail" and \
                    all(helpers.run_one(check, control).status == "pass" for control in controls):
                return {"batch": k, "of": full}
        k *= 2
    return {}


def write(folder: Path, spec, check: str, nodeid: str, callable_=None, build=None, unminimised: str = "") -> Path:
    """Write the repro of ``check`` (its pytest node id ``nodeid``) for candidate ``spec``; with
    the check's ``callable_`` and the twin's ``build``, minimised first (``minimise``), the
    network's primary references as the controls that must pass at the smaller size; else
    ``unminimised`` says why not."""
    from twinbench.impls import frameworks, networks, registry
    from twinbench.suites.helpers import REPRO_BATCH_ENV

    kinds = ("torch", "keras") if frameworks.keras is not None else ("torch",)
    controls = [lambda ref=registry.reference(f, spec.network): registry.build(ref, seed=0) for f in kinds]
    small = minimise(callable_, build, controls) if callable_ is not None and build is not None else {}
    env = {REPRO_BATCH_ENV: str(small["batch"])} if small else {}
    if small:
        note = (f"Minimised: it still fails on {small['batch']} of the check's {small['of']} real test examples, "
                "on which the references pass.")
    elif callable_ is not None:
        note = "Not minimised: the check reads no real test batch, or no smaller one shows the fault while the references pass."
    else:
        note = unminimised or "Not minimised: the check did not run in the process that wrote it."
    path = Path(folder) / f"{spec.id}.py"
    atomic_write(path, TEMPLATE.format(impl=spec.id, check=check, path=path, root=str(ROOT), import_root=str(IMPORT_ROOT), python=sys.executable,
                                       prefix=sys.prefix, impl_arg=f"{spec.network}={spec.factory}", nodeid=nodeid,
                                       network_arg=networks.source(spec.network),
                                       env=env, minimised=note))
    return path


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: python -m twinbench.suites.repro SCRIPT...  (runs repro scripts in this process, prints their exit "
                 "statuses)")
    print(json.dumps(run_scripts(sys.argv[1:])))

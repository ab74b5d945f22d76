"""Repro scripts: for a rejected candidate, a standalone script that reruns its first failing check.

``--conform-report DIR`` writes ``DIR/repro/<candidate-id>.py``. The script runs that one check on
the candidate, as the conformance run did (same ``--impl``, same test id), with the interpreter that
wrote it; the check's message prints the divergence (the layer, the values, the tolerance). It
exits 1 while the fault persists and 0 once it is fixed, so it can guard the fix in a user's CI
(2: the check could not run at all, e.g. the file or factory was renamed).
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

from fixtures.files import atomic_write

ROOT = Path(__file__).resolve().parent.parent

TEMPLATE = '''#!/usr/bin/env python3
"""twinbench repro: {impl} fails {check}.

Reruns that one check on the candidate, as the conformance run that wrote this file did, and prints
the divergence. Exit status 1 while the fault persists, 0 once it is fixed, 2 when the check
cannot be run any more.
{minimised}

    python {path}
"""
import os
import subprocess
import sys

ROOT = {root!r}
PYTHON = {python!r}  # the interpreter of the run that wrote this script
IMPL = {impl_arg!r}
TEST = {nodeid!r}
ENV = {env!r}  # {minimised}

if __name__ == "__main__":
    cmd = [PYTHON, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--no-header", "--no-diagnosis", TEST, "--impl", IMPL]
    print("running:", " ".join(f"{{k}}={{v}}" for k, v in ENV.items()), " ".join(cmd), flush=True)
    rc = subprocess.call(cmd, cwd=ROOT, env={{**os.environ, **ENV}})
    if rc not in (0, 1):  # not a verdict: the check could not run (renamed, not collected, usage error)
        print(f"twinbench repro: the check could not be run (pytest exit status {{rc}}); the candidate's file, "
              f"factory or test id has changed since this script was written: run the conformance again")
        sys.exit(2)
    sys.exit(rc)
'''


def minimise(check, build, controls=()) -> dict:
    """The smallest real batch (1, 2, 4, ... test examples, spread over the test split as the
    check's own batch is) with which ``check`` still fails on ``build()`` while it passes on every
    correct twin of ``controls`` (builders of the references), as ai-edge-torch's culprit finder
    shrinks its inputs: {"batch": k, "of": n}. A size at which a correct twin fails too (a check
    that needs a spread of logits, or both classes) shows nothing and is passed over. {} when the
    check reads no real batch, or fails only at its full size. (Trajectories need no shrinking:
    a run stops at its first divergent step.)"""
    from suites import helpers

    helpers.BATCHES_ASKED.clear()
    if helpers.run_one(check, build).status != "fail" or not helpers.BATCHES_ASKED:
        return {}
    full, k = max(helpers.BATCHES_ASKED), 1
    while k < full:
        with capped(k):
            if helpers.run_one(check, build).status == "fail" and \
                    all(helpers.run_one(check, control).status == "pass" for control in controls):
                return {"batch": k, "of": full}
        k *= 2
    return {}


@contextlib.contextmanager
def capped(k: int):
    """Real batches capped at ``k`` examples in this process (helpers.REPRO_BATCH_ENV), restored after."""
    from suites.helpers import REPRO_BATCH_ENV

    before = os.environ.get(REPRO_BATCH_ENV)
    os.environ[REPRO_BATCH_ENV] = str(k)
    try:
        yield
    finally:
        if before is None:
            del os.environ[REPRO_BATCH_ENV]
        else:
            os.environ[REPRO_BATCH_ENV] = before


def write(folder: Path, spec, check: str, nodeid: str, callable_=None, build=None) -> Path:
    """Write the repro of ``check`` (its pytest node id ``nodeid``) for candidate ``spec``; with
    the check's ``callable_`` and the twin's ``build``, minimised first (``minimise``), the
    network's primary references as the controls that must pass at the smaller size."""
    from impls import frameworks, registry
    from suites.helpers import REPRO_BATCH_ENV

    kinds = ("torch", "keras") if frameworks.keras is not None else ("torch",)
    controls = [lambda ref=registry.reference(f, spec.network): registry.build(ref, seed=0) for f in kinds]
    small = minimise(callable_, build, controls) if callable_ is not None and build is not None else {}
    env = {REPRO_BATCH_ENV: str(small["batch"])} if small else {}
    note = (f"Minimised: it still fails on {small['batch']} of the check's {small['of']} real test examples, "
            "on which the references pass."
            if small else "Not minimised: the check reads no real test batch, or no smaller one shows the fault "
            "while the references pass."
            if callable_ is not None else "Not minimised: the check did not run in the process that wrote it.")
    path = Path(folder) / f"{spec.id}.py"
    atomic_write(path, TEMPLATE.format(impl=spec.id, check=check, path=path, root=str(ROOT), python=sys.executable,
                                       impl_arg=f"{spec.network}={spec.factory}", nodeid=nodeid, env=env,
                                       minimised=note))
    return path

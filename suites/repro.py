"""Repro scripts: for a rejected candidate, a standalone script that reruns its first failing check.

``--conform-report DIR`` writes ``DIR/repro/<candidate-id>.py``. The script runs that one check on
the candidate, as the conformance run did (same ``--impl``, same test id), with the interpreter that
wrote it; the check's message prints the divergence (the layer, the values, the tolerance). It
exits 1 while the fault persists and 0 once it is fixed, so it can guard the fix in a user's CI
(2: the check could not run at all, e.g. the file or factory was renamed).
"""

from __future__ import annotations

import sys
from pathlib import Path

from fixtures.files import atomic_write

ROOT = Path(__file__).resolve().parent.parent

TEMPLATE = '''#!/usr/bin/env python3
"""twinbench repro: {impl} fails {check}.

Reruns that one check on the candidate, as the conformance run that wrote this file did, and prints
the divergence. Exit status 1 while the fault persists, 0 once it is fixed, 2 when the check
cannot be run any more.

    python {path}
"""
import subprocess
import sys

ROOT = {root!r}
PYTHON = {python!r}  # the interpreter of the run that wrote this script
IMPL = {impl_arg!r}
TEST = {nodeid!r}

if __name__ == "__main__":
    cmd = [PYTHON, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--no-header", "--no-diagnosis", TEST, "--impl", IMPL]
    print("running:", " ".join(cmd), flush=True)
    rc = subprocess.call(cmd, cwd=ROOT)
    if rc not in (0, 1):  # not a verdict: the check could not run (renamed, not collected, usage error)
        print(f"twinbench repro: the check could not be run (pytest exit status {{rc}}); the candidate's file, "
              f"factory or test id has changed since this script was written: run the conformance again")
        sys.exit(2)
    sys.exit(rc)
'''


def write(folder: Path, spec, check: str, nodeid: str) -> Path:
    """Write the repro of ``check`` (its pytest node id ``nodeid``) for candidate ``spec``."""
    path = Path(folder) / f"{spec.id}.py"
    atomic_write(path, TEMPLATE.format(impl=spec.id, check=check, path=path, root=str(ROOT), python=sys.executable,
                                       impl_arg=f"{spec.network}={spec.factory}", nodeid=nodeid))
    return path

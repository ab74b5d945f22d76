"""nox sessions. ``nox -s upgrade -- PKG==FROM PKG==TO [--bench] [--rerun]`` validates a framework
upgrade in one command:

1. builds two venvs under .nox/upgrade/: the pinned set of pyproject.toml with PKG swapped to
   FROM, and the same with PKG==TO (a venv whose set equals the pins, and .venv is built, is
   .venv itself; a venv already built for the same set is reused);
2. runs the suite in each: the fast checks, golden outputs and the convergence gates
   (``-m "not selftest and not detection"``), benchmarks timed only with ``--bench``, each run
   saved as a baseline (``--save-baseline``) with its conformance report. A run already saved
   for the same set is reused unless ``--rerun``;
3. writes reports/upgrade-<from>-to-<to>.md and .html: every check and metric side by side,
   changes highlighted, accuracy curves overlaid (python -m twinbench.suites.upgrade_report).

Example: ``nox -s upgrade -- tensorflow==2.20.0 tensorflow==2.21.0``.
"""

from __future__ import annotations

import hashlib
import os
import re
import tomllib
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
WORK = ROOT / ".nox" / "upgrade"
nox.options.sessions = []  # nothing runs by default: `nox -s upgrade -- ...`
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([A-Za-z0-9_.+\-]+)$")


def _pins() -> list[str]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]


def _swap(pins: list[str], name: str, version: str) -> list[str]:
    canon = name.lower().replace("_", "-")
    out, found = [], False
    for pin in pins:
        if PIN.match(pin).group(1).lower().replace("_", "-") == canon:
            out.append(f"{name}=={version}")
            found = True
        else:
            out.append(pin)
    return out if found else out + [f"{name}=={version}"]


def _label(spec: str) -> str:
    return spec.replace("==", "-")


def _venv(session: nox.Session, reqs: list[str]) -> Path:
    """A venv with exactly ``reqs`` (plus what they need); built once per set, stamped when done."""
    if sorted(reqs) == sorted(_pins()) and (ROOT / ".venv" / ".twinbench-installed").exists():
        session.log("this set is the pinned set: using .venv")
        return ROOT / ".venv"
    digest = hashlib.sha256("\n".join(sorted(reqs)).encode()).hexdigest()[:12]
    env = WORK / f"venv-{digest}"
    stamp = env / ".twinbench-installed"
    if not stamp.exists():
        session.run("python3.11", "-m", "venv", "--clear", str(env), external=True)
        req_file = env / "requirements.txt"
        req_file.write_text("\n".join(reqs) + "\n")
        session.run(str(env / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    "-r", str(req_file), external=True)
        stamp.write_text("\n".join(reqs) + "\n")
    return env


def _run_suite(session: nox.Session, env: Path, label: str, bench: bool, rerun: bool) -> Path:
    baselines = WORK / "baselines"
    saved = baselines / f"{label}.json"
    if saved.exists() and not rerun:
        session.log(f"reusing the saved run {saved} (--rerun to run again)")
        return saved
    reports = WORK / "reports" / label
    args = [str(env / "bin" / "python"), "-m", "pytest", "-p", "no:cacheprovider", "-m", "not selftest and not detection",
            "--save-baseline", label, "--force", "--conform-report", str(reports),
            f"--junitxml={reports / 'junit.xml'}"]
    if not bench:
        args.append("--benchmark-disable")
    # exit 1 (some checks fail) is a result to report, not an error of the session
    session.run(*args, external=True, success_codes=[0, 1],
                env={"TWINBENCH_BASELINES": str(baselines), "TWINBENCH_REPORTS": str(reports), "CI": "1",
                     "PYTHONPATH": str(ROOT)})
    return saved


@nox.session(python=False)
def upgrade(session: nox.Session) -> None:
    """Run the suite under two versions of one pinned package and diff the runs."""
    flags = {a for a in session.posargs if a.startswith("--")}
    specs = [a for a in session.posargs if not a.startswith("--")]
    unknown = flags - {"--bench", "--rerun"}
    if unknown or len(specs) != 2 or not all(PIN.match(s) for s in specs):
        session.error("usage: nox -s upgrade -- PKG==FROM PKG==TO [--bench] [--rerun]   "
                      "e.g. nox -s upgrade -- tensorflow==2.20.0 tensorflow==2.21.0"
                      + (f" (unknown flags {sorted(unknown)})" if unknown else ""))
    (name_a, ver_a), (name_b, ver_b) = (PIN.match(s).groups() for s in specs)
    if name_a.lower() != name_b.lower():
        session.error(f"both versions must be of one package, got {name_a} and {name_b}")
    os.chdir(ROOT)
    runs = []
    for name, version in ((name_a, ver_a), (name_b, ver_b)):
        reqs = _swap(_pins(), name, version)
        env = _venv(session, reqs)
        digest = hashlib.sha256("\n".join(sorted(reqs)).encode()).hexdigest()[:8]
        label = f"{_label(f'{name}=={version}')}-{digest}" + ("-bench" if "--bench" in flags else "")
        runs.append(_run_suite(session, env, label, "--bench" in flags, "--rerun" in flags))
    out = ROOT / "reports" / f"upgrade-{_label(specs[0])}-to-{_label(specs[1])}"
    session.run(str(ROOT / ".venv" / "bin" / "python"), "-m", "twinbench.suites.upgrade_report", str(runs[0]), str(runs[1]),
                "--from", specs[0], "--to", specs[1], "--out", str(out), external=True,
                env={"PYTHONPATH": str(ROOT)})

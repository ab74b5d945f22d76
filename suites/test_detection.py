"""Detection: the suite rejects faulty twins and accepts correct twins written another way.

Two corpora, judged the same way:
- hand-written candidates in impls/known_bad/ and impls/known_good/ (registry.corpus());
- generated mutants of the primary references (impls/mutants.py, registry.mutants()).

``--corpus`` chooses which (suites/corpus.py): a stratified sample derived from the literal by
default (``pytest -m detection``), the hand-written corpus with a mutant sample (``make
selftest``, CI), everything (``make conform``). ``make test`` leaves this module out.

Every candidate runs every check the suite runs on a user's ``--impl`` (shapes, parameters,
initialization, equivalence, optimizer, randomness, trajectory, golden: catalogue.SELFTEST_GROUPS;
not convergence, GPU or benchmarks), in this process
so that the references' trajectories are trained once. Then:
- a crash of a check is an ``error``: never a kill, and the test fails;
- a faulty candidate must be rejected by at least one check, and by every check its CAUGHT_BY
  names; an equivalent one (a correct twin) by none;
- the set of rejecting checks must equal its literal in fixtures/detection_expected.json, in both
  directions (fixtures/detection.py says how to regenerate it, with an argued commit);
- the margin of a kill is the largest measured / tolerance among the checks that reject it;
- diagnosis (suites/diagnosis.py) runs on every candidate: a correct one must get no cause, and
  the causes named must equal the literal; for a mutant whose operator is in the catalogue, the
  report counts whether its own cause was named (the hit rate per cause).

Every rejected candidate gets its repro script (suites/repro.py), written to reports/repro/ as a
user's ``--conform-report`` run writes it (not minimised here); the last test runs them all in a
fresh process and each must exit 1 (test_every_repro_exits_1_in_a_fresh_process).

reports/detection.json and .md (suites/detection_report.py) hold the kill rate, the false rejections, the
smallest margin, a table per operator family and per check, and the survivors.

Candidates run one after another in one process: the checks are CPU-bound and already use every
core. ``pytest -n N`` works: the controller merges the records (conftest.py), and each worker gets
1/N of the cores (frameworks.share_cores; the reference cache is keyed by the thread count); on 2
cores it gains little (README, "Speed"), and the repro test below needs one process. The
references' side is computed once per data
cache (suites/refcache.py); a candidate is trained once for both its trajectory partners
(training.subject_trajectory), its optimizer replay once for both its partners
(suites/checks/optimizer.py's subject_replay), and each optimizer partner's replay once per session
(oracle.partner_replay).
"""

import fnmatch
import gc
import json
import subprocess
import sys
import time

import pytest

from twinbench.fixtures import detection as DE
from twinbench.impls import frameworks, registry
from twinbench.suites import catalogue, corpus, diagnosis, repro, runstate
from twinbench.suites.catalogue import name_of
from twinbench.suites.helpers import run_one
from twinbench.suites.status import Status

pytestmark = pytest.mark.detection

EXPECTED = DE.expected()


def suite_checks(spec) -> list:
    """Every check of the catalogue's self-test groups that applies to this spec, in suite order."""
    return catalogue.checks_for(spec, catalogue.SELFTEST_GROUPS)


def pytest_generate_tests(metafunc):
    if "entry" in metafunc.fixturenames:
        entries = corpus.candidates(metafunc.config.getoption("--corpus"))
        metafunc.parametrize("entry", entries, ids=[e.spec.id for e in entries])


def _declared_problems(entry, failed: dict) -> list:
    """CAUGHT_BY patterns (hand-written faults) that name no check, or a check that did not reject."""
    names = [name_of(c) for c in suite_checks(entry.spec)]
    problems = []
    for pattern in entry.caught_by:
        matched = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
        if not matched:
            problems.append(f"CAUGHT_BY pattern {pattern!r} matches none of the suite's checks")
        problems += [f"{n} is declared to reject it but did not" for n in matched if n not in failed]
    return problems


def _record(entry, verdicts: dict, seconds: float) -> dict:
    spec = entry.spec
    failed = {name: v for name, v in verdicts.items() if v.status is Status.FAIL}
    margins = {name: v.measured["margin"] for name, v in verdicts.items() if "margin" in v.measured}
    return {
        "file": spec.factory, "network": spec.network, "framework": spec.framework, "doc": spec.doc,
        "family": entry.family, "faulty": entry.faulty, "equivalent_because": entry.reason,
        "checks_run": len(verdicts), "failed": sorted(failed), "rejected": bool(failed),
        "errors": {name: v.message[:300] for name, v in verdicts.items() if v.status is Status.ERROR},
        "margin": max((margins[n] for n in failed if n in margins), default=None),  # None: no tolerance measured
        "margins": margins, "seconds": round(seconds, 2),
        "first_message": next((v.message for v in failed.values()), "")[:400],
    }


def _diagnosis(entry, failed) -> list:
    """The causes diagnosis names for the candidate (suites/diagnosis.py); [] when it cannot run."""
    try:
        return [f.cause for f in diagnosis.diagnose(registry.build(entry.spec, seed=0), failed)]
    except Exception:  # a candidate that cannot be built or probed gets no cause: "unknown", as in a user's run
        return []


def _expected_cause(entry):
    """The catalogue cause a mutant's operator stands for (None for hand-written ones and operators
    outside the catalogue): what diagnosis should name, counted in the report's hit rates."""
    return diagnosis.cause_of(entry.spec.style) if entry.spec.id.startswith("mutant-") else None


REPRO_DIR = runstate.REPORTS / "repro"


def _write_repro(spec, verdicts: dict):
    """The repro script of the candidate's first failing check (suite order), as a user's
    --conform-report run writes it; None when no check rejects it."""
    first = next((c for c in suite_checks(spec) if verdicts[name_of(c)].status is Status.FAIL), None)
    if first is None:
        return None
    return str(repro.write(REPRO_DIR, spec, name_of(first), repro.nodeid_of(first, spec),
                           unminimised="Not minimised: written by the detection self-test, which runs every "
                                       "candidate's repro at its full size."))


def test_detection(entry, request):
    spec = entry.spec
    if entry.caught_by == ("unimportable",):
        if spec.framework == "keras" and frameworks.keras is None:
            pytest.skip(f"{spec.id}: {frameworks.TF_MISSING}")
        pytest.fail(f"{spec.id}: {spec.doc}: an unimportable corpus file is a failure, never left out")
    gc.collect()  # the previous candidate's models (Keras ones sit in reference cycles): ~100 MB each otherwise
    started = time.perf_counter()
    run = runstate.state(request.config)
    run.plots = False  # a plot per trajectory check and candidate: nobody reads them, they cost ~0.2 s each
    try:
        verdicts = {name_of(c): run_one(c, lambda: registry.build(spec, seed=0)) for c in suite_checks(spec)}
    finally:
        run.plots = True
    record = _record(entry, verdicts, time.perf_counter() - started)
    record["diagnosis"], record["expected_cause"] = _diagnosis(entry, record["failed"]), _expected_cause(entry)
    record["repro"] = _write_repro(spec, verdicts)
    runstate.state(request.config).detection[spec.id] = record
    assert not record["errors"], (f"{spec.id}: checks crashed (an error is never a kill):\n  "
                                  + "\n  ".join(f"{k}: {v}" for k, v in record["errors"].items()))
    failed = set(record["failed"])
    if entry.faulty:
        assert failed, (f"{spec.id} ({spec.doc}) is faulty, but all {len(verdicts)} checks accept it. A gap in the "
                        "suite: fix the check, not the candidate; or, if no check can honestly tell it apart, "
                        "list it as equivalent with the reason")
        problems = _declared_problems(entry, failed)
        assert not problems, f"{spec.id}: " + "; ".join(problems)
    else:
        assert not failed, (f"{spec.id} ({spec.doc}) is a correct twin written another way, but the suite rejects "
                            f"it ({len(failed)} of {len(verdicts)} checks):\n  "
                            + "\n  ".join(f"{n}: {verdicts[n].message[:300]}" for n in sorted(failed)))
        assert not record["diagnosis"], f"{spec.id} is correct, but diagnosis names causes: {record['diagnosis']}"
    want = EXPECTED.get(spec.id)
    assert want is not None, (f"{spec.id} has no entry in {DE.EXPECTED_FILE.name}; record it: "
                              "python -m twinbench.fixtures.detection reports/detection.json")
    assert record["diagnosis"] == want["diagnosis"], (
        f"{spec.id}: its diagnosis changed from {want['diagnosis']} to {record['diagnosis']}; if intended, regenerate "
        f"{DE.EXPECTED_FILE.name} (python -m twinbench.fixtures.detection reports/detection.json) and argue it in the commit")
    want = want["failed"]
    gained, lost = sorted(failed - set(want)), sorted(set(want) - failed)
    assert not gained and not lost, (
        f"{spec.id}: the checks that reject it changed. No longer rejecting: {', '.join(lost) or 'none'}. "
        f"Newly rejecting: {', '.join(gained) or 'none'}. If that is intended, regenerate "
        f"{DE.EXPECTED_FILE.name} (python -m twinbench.fixtures.detection reports/detection.json) and argue it in the commit")


def test_every_cause_in_the_catalogue_is_named_alone_for_some_candidate():
    """Each cause id of the diagnosis catalogue is, for at least one faulty candidate of the corpus
    (hand-written or mutant), the one cause diagnosed, as the detection literal records it (the
    detection runs hold the literal to what they measure: make conform all of it, make selftest
    the hand-written corpus and the sample)."""
    alone = {}
    for cid, want in sorted(EXPECTED.items()):
        if len(want["diagnosis"]) == 1:
            alone.setdefault(want["diagnosis"][0], cid)
    missing = sorted(set(diagnosis.CAUSES) - set(alone))
    assert not missing, (f"{len(missing)} of {len(diagnosis.CAUSES)} catalogue causes are never the one cause "
                         f"named for a candidate: {', '.join(missing)}")


@pytest.mark.e2e
def test_every_repro_exits_1_in_a_fresh_process(request):
    """Each repro script the detection runs of this process wrote (one per rejected candidate) is
    run in one fresh process (python -m twinbench.suites.repro, no state of this session) and exits 1: it
    rebuilds the candidate from its file and the references from impls/ and still sees the
    fault. Under pytest-xdist each worker holds only its own candidates' scripts: run it without
    -n to run them all."""
    if hasattr(request.config, "workerinput"):
        pytest.skip("pytest-xdist: this worker holds only its own candidates' repros; run -m detection without -n")
    records = runstate.state(request.config).detection
    scripts = {r["repro"]: cid for cid, r in records.items() if r.get("repro")}
    if not scripts:
        pytest.skip("no detection candidate was rejected in this run (select some with -m detection)")
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "twinbench.suites.repro", *scripts], capture_output=True, text=True,
                          cwd=repro.ROOT, timeout=3600)
    assert done.returncode == 0, f"python -m twinbench.suites.repro exited {done.returncode}:\n{done.stderr[-3000:]}"
    codes = json.loads(done.stdout.strip().splitlines()[-1])
    for path, code in codes.items():
        records[scripts[path]]["repro_exit"] = code
    wrong = {scripts[p]: c for p, c in codes.items() if c != 1}
    print(f"{len(codes)} repro scripts run in {time.perf_counter() - started:.1f} s; exit statuses other than 1: {wrong}")
    assert not wrong, (f"{len(wrong)} of {len(codes)} repro scripts did not exit 1 (the fault not reproduced, or the "
                       f"check could not run): {wrong}\n{done.stdout[-4000:]}")

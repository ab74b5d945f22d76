"""Detection: the suite rejects faulty twins and accepts correct twins written another way.

The corpus lives in impls/known_bad/ and impls/known_good/ (registry.corpus()). Every candidate
is written to the --impl contract and judged as a user's --impl is: against both frameworks'
references, with the same check functions the suite runs (shapes, parameters, equivalence,
trajectory; not convergence or benchmarks), in this process so that the references' trajectories
are trained once.

- A correct twin must pass every check.
- A faulty twin must fail every check its CAUGHT_BY patterns name (each pattern must name at
  least one check). Only those checks are run for it: they are the proof of rejection; the full
  verdict on any one of them is ``pytest --impl mnist_cnn=impls/known_bad/<file>.py:factory``.
- A crash anywhere in a candidate is a failed check (helpers.run_one); a crash of a check itself is an
  ``error``, never a kill.

The kill rate (faulty candidates rejected / faulty candidates) and the false rejections are
printed at the end of the run and written to reports/detection.json. A faulty twin that
survives is a gap in the suite: fix the suite, never the corpus.

Candidates run one after another: the checks are CPU-bound and already use both cores (a torch
CNN step takes 59 ms on 2 threads and 109 ms on 1), so parallel processes would only add the
~8 s start-up of each and retrain the references' trajectories.
"""

import fnmatch
import time

import pytest

from impls import registry
from suites import report, test_equivalence, test_optimizer, test_parameters, test_randomness, test_shapes, test_trajectory
from suites.helpers import check_name, run_one

pytestmark = pytest.mark.detection

CHECK_MODULES = (test_shapes, test_parameters, test_equivalence, test_optimizer, test_randomness, test_trajectory)
CORPUS = registry.corpus()


def suite_checks(spec) -> list:
    """Every check the suite runs on this spec, in suite order (what `pytest --impl` runs)."""
    checks = []
    for module in CHECK_MODULES:
        checks += module.checks_for(spec) if hasattr(module, "checks_for") else list(module.CHECKS)
    return checks


def selected_checks(entry) -> list:
    checks = suite_checks(entry.spec)
    if not entry.faulty:
        return checks
    unknown = [p for p in entry.caught_by if not any(fnmatch.fnmatchcase(check_name(c), p) for c in checks)]
    assert not unknown, (f"{entry.spec.factory}: CAUGHT_BY names {unknown}, which match none of the suite's "
                         f"checks for it ({', '.join(sorted({check_name(c).split('(')[0] for c in checks}))})")
    return [c for c in checks if any(fnmatch.fnmatchcase(check_name(c), p) for p in entry.caught_by)]


@pytest.mark.parametrize("entry", CORPUS, ids=[e.spec.id for e in CORPUS])
def test_detection(entry, request):
    spec = entry.spec
    if entry.caught_by == ("unimportable",):
        pytest.skip(f"{spec.id}: {spec.doc}")
    started = time.perf_counter()
    verdicts = {check_name(c): run_one(c, lambda: registry.build(spec, seed=0)) for c in selected_checks(entry)}
    failed = {name: v.message for name, v in verdicts.items() if v.status == "fail"}
    report.state(request.config).detection[spec.id] = {
        "file": spec.factory.split(":")[0].replace(".", "/") + ".py", "network": spec.network,
        "framework": spec.framework, "doc": spec.doc, "faulty": entry.faulty,
        "declared": list(entry.caught_by), "checks_run": len(verdicts), "failed": sorted(failed),
        "rejected": bool(failed), "seconds": round(time.perf_counter() - started, 2),
        "first_message": next(iter(failed.values()), "")[:400],
        "margins": {name: v.measured["margin"] for name, v in verdicts.items() if "margin" in v.measured},
    }
    if entry.faulty:
        errors = [f"{name}: {v.message}" for name, v in verdicts.items() if v.status == "error"]
        assert not errors, f"{spec.id}: checks crashed (an error is never a kill):\n  " + "\n  ".join(errors)
        survived = [name for name, v in verdicts.items() if v.status != "fail"]
        assert not survived, (f"{spec.id} ({spec.doc}) is faulty, but {len(survived)} of the {len(verdicts)} checks "
                              f"it declares did not reject it: " + ", ".join(survived)
                              + ". A gap in the suite: fix the check, not the candidate.")
    else:
        problems = [f"{name}: {v.status}: {v.message}" for name, v in verdicts.items() if v.status != "pass"]
        assert not problems, (f"{spec.id} ({spec.doc}) is a correct twin written another way, but the suite "
                              f"rejects it ({len(problems)} of {len(verdicts)} checks):\n  " + "\n  ".join(problems))

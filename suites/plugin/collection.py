"""Collection: the catalogue's checks parametrized over the selected twins, the candidate-only
selection, framework and GPU skips, expected failures, and the conformance cell of each test.
"""

from __future__ import annotations

import gc

import pytest

from twinbench import pytest_entry
from twinbench.fixtures import xfails
from twinbench.impls import frameworks, registry
from twinbench.suites import catalogue, runstate
from twinbench.suites.helpers import parametrize


def pytest_generate_tests(metafunc):
    """A test module with a ``GROUP`` and a ``test_<group>(subject, check, ...)`` runs that group of
    the catalogue on every selected twin (the references, or the --impl candidates)."""
    group = getattr(metafunc.module, "GROUP", None)
    if group is not None and {"subject", "check"} <= set(metafunc.fixturenames):
        specs = runstate.state(metafunc.config).specs
        metafunc.parametrize(("subject", "check"),
                             parametrize((s, c) for s in specs for c in catalogue.checks_for(s, group)))


@pytest.fixture(autouse=True)
def _determinism_restored():
    """Every test starts from the suite's determinism settings: a speed variant may switch them off
    (Keras XLA, the nondeterministic graph variant) and is not to leak that into the next test."""
    yield
    frameworks.set_determinism()


@pytest.fixture
def make_twin(subject):
    """A fresh twin per test (checks may change weights), seeded identically every time."""
    return lambda: registry.build(subject, seed=0)


def _cell_key(item):
    """(impl id, check name) of a conformance check or a benchmark; None for other tests."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    if "subject" in params and "check" in params:
        return getattr(params["subject"], "id", params["subject"]), catalogue.name_of(params["check"])
    if "spec" in params and item.get_closest_marker("benchmark"):
        return params["spec"].id, f"speed:{item.originalname}[{params.get('device')}-{params.get('variant')}]"
    return None


def _frameworks_involved(item) -> set:
    """The frameworks a test needs: its subject's, its partners', and any it declares with
    ``@pytest.mark.frameworks(...)``; never guessed from names."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    found = set()
    for key in ("subject", "spec"):
        fw = getattr(params.get(key), "framework", None)
        if fw in ("torch", "keras"):
            found.add(fw)
    if params.get("framework") in ("torch", "keras"):
        found.add(params["framework"])
    partner = getattr(params.get("check"), "keywords", {}).get("partner")
    if partner:
        found.add(registry.by_id(partner).framework)
    for mark in item.iter_markers("frameworks"):
        found.update(mark.args)
    return found


def _keep_only(config, items, keep) -> None:
    """Deselect the items ``keep`` refuses, told to pytest (its summary counts them, and
    pytest_deselected below names the families a verdict line leaves out)."""
    kept, dropped = [], []
    for item in items:
        (kept if keep(item) else dropped).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def _not_a_recipe_check(item) -> bool:
    key = getattr(item, "twinbench_cell", None)
    return key is None or catalogue.family(key[1]) not in catalogue.RECIPE_FAMILIES


def _conformance(item) -> bool:
    """A conformance check, gate or benchmark: what a run of the references from outside a checkout
    (``pytest --conform-report DIR`` in a user's folder; twinbench/pytest_entry.py) keeps. The
    suite's own self-tests (detection corpus, plugin, README) need the checkout."""
    return getattr(item, "twinbench_cell", None) is not None or item.get_closest_marker("benchmark") is not None


@pytest.hookimpl(tryfirst=True)  # before pytest's own -m/-k deselection: the xfail entries meet every item
def pytest_collection_modifyitems(config, items):
    run = runstate.state(config)
    for item in items:
        item.twinbench_cell = _cell_key(item)
    if run.candidates:
        _keep_only(config, items, lambda i: getattr(getattr(i, "callspec", None), "params", {}).get("subject")
                   in run.candidates)
        if run.architecture_only:
            _keep_only(config, items, _not_a_recipe_check)
    elif config.stash.get(pytest_entry.OUTSIDE, False):
        _keep_only(config, items, _conformance)
    if frameworks.TF_MISSING:
        for item in items:
            if "keras" in _frameworks_involved(item):
                item.add_marker(pytest.mark.skip(reason=frameworks.TF_MISSING))
    for item in items:
        if "gpu" not in item.keywords:
            continue
        involved = _frameworks_involved(item)
        if frameworks.TF_MISSING and "keras" in involved:
            continue  # skipped above: TensorFlow is not installed here
        blind = sorted(f for f in involved if not frameworks.gpu_available(f)) if involved else \
            ([] if frameworks.gpu_available() else ["torch", "tensorflow"])
        if not blind:
            continue
        if config.getoption("--require-gpu"):
            item.twinbench_require_gpu = ", ".join(blind)
        else:
            item.add_marker(pytest.mark.skip(reason=f"no GPU visible to {' or '.join(blind)} "
                                                    "(use --require-gpu to make this a failure)"))
    used = xfails.apply(items)
    whole_suite = not run.candidates and list(config.args) == config.getini("testpaths")
    for pattern in sorted(set(xfails.EXPECTED_FAILURES) - used):
        if whole_suite:
            config.issue_config_time_warning(pytest.PytestWarning(
                f"fixtures/xfails.py: entry {pattern!r} matches no collected test"), stacklevel=2)


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session):
    """Set the objects alive now apart from the cyclic garbage collector: the ~600k of torch's,
    TensorFlow's and Keras's modules live as long as the process, and every full collection
    (detection's after each candidate, pytest's at exit) would walk them all again: 0.3 s each,
    ~1 ms once frozen. What is garbage now is collected first, so nothing dead is kept; what is
    frozen is never collected (nor seen by gc.get_referrers), so freeze nothing a test drops."""
    gc.collect()
    gc.freeze()


def pytest_deselected(items):
    """Families a user deselected with -m/-k are named in the verdict line (not counted missing)."""
    for item in items:
        key = getattr(item, "twinbench_cell", None)
        if key is not None:
            runstate.state(item.config).deselected.setdefault(key[0], set()).add(catalogue.family(key[1]))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    if getattr(item, "twinbench_require_gpu", False):
        pytest.fail(f"--require-gpu was given but no GPU is visible to {item.twinbench_require_gpu}", pytrace=False)

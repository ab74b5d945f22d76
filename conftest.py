"""twinbench's pytest plug-in: options, the report header, collection, and thin hooks.

The run's state lives in ``config.stash[suites.report.STATE]`` (a ``RunState``); the verdict rule
and every report writer live in ``suites/report.py``; baselines in ``suites/baseline.py``.
"""

from __future__ import annotations

import gc
import os
import time
from pathlib import Path

from impls import frameworks  # noqa: F401  (torch before tensorflow, before anything else)

import pytest

from fixtures import data as fixture_data
from fixtures import xfails
from impls import registry
from suites import baseline, refcache, report
from suites.helpers import check_name


# ------------------------------------------------------------------------------------------
# Options (the README points at `pytest --help` for these)
# ------------------------------------------------------------------------------------------
def pytest_addoption(parser):
    group = parser.getgroup("twinbench", "twinbench conformance suite")
    _add_subject_options(group)
    _add_run_options(group)
    _add_record_options(group)


def _add_subject_options(group):
    """What is checked: the candidates given with --impl, and how much of them."""
    group.addoption(
        "--impl", action="append", default=[], metavar="NAME=PATH:FACTORY",
        help="check your own twin instead of the references. NAME is mnist_cnn or tweet_fasttext; "
             "PATH a .py file or module; FACTORY a zero-argument callable returning a torch.nn.Module, "
             "a keras.Model or a dict recipe. Repeatable. Also read from TWINBENCH_IMPL "
             "(comma-separated). Only the candidates are checked; exit status 0 = conforms, 1 = rejected "
             "or incomplete (a model without a recipe: see --architecture-only).")
    group.addoption(
        "--architecture-only", action="store_true", default=False,
        help="with --impl: check the architecture only (shapes, parameters, forward, randomness, golden); "
             "the recipe checks (loss, gradient, optimizer, schedule, trajectory, convergence) are deselected "
             "and a passing candidate 'conforms (architecture only)', exit 0.")


def _add_run_options(group):
    """How the checks run: the GPU requirement, the training budget and the seeds."""
    group.addoption(
        "--require-gpu", action="store_true", default=False,
        help="fail the gpu-marked tests when no GPU is visible, instead of skipping them.")
    group.addoption(
        "--full-recipe", action="store_true", default=False,
        help="convergence: train the whole budget (14 epochs MNIST, 10 tweets); the gate and the "
             "frameworks' agreement are then also held on the final accuracy.")
    group.addoption(
        "--seeds", type=int, default=1, metavar="N",
        help="convergence: run N shuffling seeds per twin; the gate is the olympic mean of epochs-to-target "
             "(fastest and slowest dropped when N >= 3) with at most one run that does not converge; torch "
             "and Keras are compared as distributions. Default: 1 fixed seed.")
    group.addoption(
        "--reference-cache", choices=refcache.MODES, default=None,
        help="reference work (the partners' trajectories, the references' CPU convergence runs) kept in the data "
             "cache under a key of the versions, the thread count and the reference code, and verified on reuse by "
             "re-running its first steps: use it (default), refresh it, or keep it off (also TWINBENCH_REFCACHE).")
    group.addoption(
        "--mutants", choices=("sample", "all", "none"), default="sample",
        help="detection self-test (-m detection): which generated mutants of the references to judge "
             "besides the hand-written corpus: the committed stratified sample (default, make test), all "
             "of them (make conform) or none.")


def _add_record_options(group):
    """What the run writes and is held to: baselines, the conformance report, the diagnosis."""
    group.addoption(
        "--no-diagnosis", action="store_true", default=False,
        help="with --impl: skip the likely-cause search for a rejected candidate (suites/diagnosis.py, "
             "~1-3 s per candidate after ~1-3 min of probing the hypotheses once per network).")
    group.addoption(
        "--save-baseline", metavar="NAME", default=None,
        help="write this run (versions, every outcome, measurements, convergence, benchmark medians) to "
             "baselines/NAME.json (TWINBENCH_BASELINES overrides the folder); never overwrites without --force.")
    group.addoption(
        "--compare-baseline", metavar="NAME", default=None,
        help="hold this run to baselines/NAME.json: regressions fail as tests of their own, run last; "
             "improvements are listed.")
    group.addoption("--force", action="store_true", default=False, help="with --save-baseline: overwrite NAME.")
    group.addoption(
        "--conform-report", metavar="DIR", default=None,
        help="write the conformance matrix (impl x check family) to DIR/conformance.md, .html and .json "
             "(make conform uses reports/).")


def pytest_configure(config):
    if _is_worker(config):  # a pytest-xdist worker: 1/N of the cores (before TF runs anything)
        frameworks.share_cores(config.workerinput["workercount"])
    frameworks.set_determinism()
    try:
        refcache.set_mode(config.getoption("--reference-cache") or refcache.mode())
    except refcache.RefCacheError as exc:
        raise pytest.UsageError(str(exc)) from exc
    from suites.helpers import REPRO_BATCH_ENV

    cap = os.environ.get(REPRO_BATCH_ENV, "1")
    if not cap.isdigit() or int(cap) < 1:
        raise pytest.UsageError(f"{REPRO_BATCH_ENV} must be a whole number of examples, at least 1, got {cap!r}; "
                                "unset it for a normal run")
    if config.getoption("--seeds") < 1:
        raise pytest.UsageError(f"--seeds must be at least 1, got {config.getoption('--seeds')}")
    values = list(config.getoption("--impl")) + registry.impls_from_env()
    try:
        candidates = [registry.parse_impl(v) for v in values]
    except registry.ImplUsageError as exc:
        raise pytest.UsageError(f"--impl: {exc}") from exc
    if config.getoption("--architecture-only") and not candidates:
        raise pytest.UsageError("--architecture-only applies to --impl candidates; give --impl NAME=PATH:FACTORY")
    _refuse_distributed_baselines(config)
    run = report.RunState(candidates, candidates or list(registry.REFERENCES + registry.KNOWN_BAD),
                          architecture_only=config.getoption("--architecture-only"))
    try:
        if config.getoption("--save-baseline"):
            run.save_to = baseline.check_writable(config.getoption("--save-baseline"), config.getoption("--force"))
        if config.getoption("--compare-baseline"):
            run.baseline = baseline.load(config.getoption("--compare-baseline"))
    except baseline.BaselineError as exc:
        raise pytest.UsageError(str(exc)) from exc
    config.stash[report.STATE] = run
    config.pluginmanager.register(_Recorder(run), "twinbench-recorder")
    config.pluginmanager.register(_BaselineComparisonsLast(), "twinbench-baseline-comparisons")


def _refuse_distributed_baselines(config):
    """--compare-baseline's regressions are tests that run after everything they compare, in the
    process that ran it all; --save-baseline records benchmark medians, which pytest-benchmark
    does not time under pytest-xdist. Neither means anything split across workers."""
    workers = getattr(config.option, "numprocesses", None)
    if not workers or _is_worker(config):
        return
    for option in ("--compare-baseline", "--save-baseline"):
        if config.getoption(option):
            raise pytest.UsageError(
                f"{option} cannot run under pytest-xdist (-n {workers}): a baseline compares or records a whole "
                "run (outcomes, convergence, benchmark medians) held by one process, and pytest-benchmark does "
                f"not time benchmarks on workers. Drop -n, or run the baseline step on its own without it.")


class _BaselineComparisonsLast:
    """The --compare-baseline tests run after everything they compare, whatever -m/-k select
    (the selection applies to what is compared, not to the comparison); without a baseline they
    are deselected."""

    @pytest.hookimpl(hookwrapper=True)
    def pytest_collection_modifyitems(self, config, items):
        comparisons = [i for i in items if i.get_closest_marker("baseline")]
        items[:] = [i for i in items if not i.get_closest_marker("baseline")]
        yield
        if report.state(config).baseline is not None:
            items.extend(comparisons)
        elif comparisons:
            config.hook.pytest_deselected(items=comparisons)


# ------------------------------------------------------------------------------------------
# Header
# ------------------------------------------------------------------------------------------
def pytest_report_header(config):
    v = frameworks.versions()
    d = frameworks.devices()
    run = report.state(config)
    lines = [
        "twinbench: " + ", ".join(f"{k} {val}" for k, val in v.items()),
        f"devices: torch {', '.join(d['torch'])}; tensorflow {', '.join(d['tensorflow'])}; TF32 off",
        "roofline: " + _roofline_line(),
        f"data cache: {fixture_data.cache_root()} (TWINBENCH_DATA)",
        f"impls under test ({len(run.specs)}): " + ", ".join(s.id for s in run.specs),
    ]
    if frameworks.TF_MISSING:
        lines.append("WARNING: " + frameworks.TF_MISSING)
    cap = _repro_cap()
    if cap:
        lines.append(cap)
    if run.candidates:
        lines.append("candidate mode: only the --impl twins are checked; other tests are deselected"
                     + ("; recipe checks deselected (--architecture-only)" if run.architecture_only else ""))
    return lines


def _repro_cap() -> str:
    """A warning while TWINBENCH_REPRO_BATCH (a repro script's setting) caps the real batches."""
    from suites.helpers import REPRO_BATCH_ENV

    cap = os.environ.get(REPRO_BATCH_ENV)
    return (f"WARNING: {REPRO_BATCH_ENV}={cap} caps every real test batch at {cap} examples (a repro script's "
            f"setting): checks see less than they should. Unset it for a verdict." if cap else "")


def roofline() -> dict:
    """The measured fp32 sgemm rate per device, once per process (benchmarks report against it)."""
    devices = ["cpu"] + (["gpu"] if frameworks.torch.cuda.is_available() else [])
    return {d: frameworks.sgemm_roofline(d) for d in devices}


def _roofline_line() -> str:
    threads = frameworks.torch.get_num_threads()
    return ", ".join(f"{d} {g:.0f} GFLOP/s" for d, g in roofline().items()) + \
        f" (fp32 4096^3 sgemm, best of 3, torch {threads} threads, TF32 off)"


# ------------------------------------------------------------------------------------------
# Collection: cells, candidate-only selection, framework and gpu skips, expected failures
# ------------------------------------------------------------------------------------------
def _cell_key(item):
    """(impl id, check name) of a conformance check or a benchmark; None for other tests."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    if "subject" in params and "check" in params:
        return getattr(params["subject"], "id", params["subject"]), check_name(params["check"])
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


def _architecture_only_deselect(config, items):
    keep, drop = [], []
    for item in items:
        key = getattr(item, "twinbench_cell", None)
        recipe = key is not None and report.family(key[1]) in report.RECIPE_FAMILIES
        (drop if recipe else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
    items[:] = keep


def pytest_collection_modifyitems(config, items):
    run = report.state(config)
    for item in items:
        item.twinbench_cell = _cell_key(item)
    if run.candidates:
        keep = [i for i in items if getattr(getattr(i, "callspec", None), "params", {}).get("subject") in run.candidates]
        dropped = [i for i in items if i not in keep]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
        items[:] = keep
        if run.architecture_only:
            _architecture_only_deselect(config, items)
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
    whole_suite = (not run.candidates and not config.option.keyword
                   and not config.option.markexpr and list(config.args) == config.getini("testpaths"))
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
            report.state(item.config).deselected.setdefault(key[0], set()).add(report.family(key[1]))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    if getattr(item, "twinbench_require_gpu", False):
        pytest.fail(f"--require-gpu was given but no GPU is visible to {item.twinbench_require_gpu}", pytrace=False)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """The conformance cell travels on the report (to a pytest-xdist controller too)."""
    rep = (yield).get_result()
    key = getattr(item, "twinbench_cell", None)
    if key is not None:
        rep.twinbench_cell = key


class _Recorder:
    """Outcomes, measurements and cells, from the test reports: in this process, or on the
    controller of a pytest-xdist run as the workers' reports arrive."""

    def __init__(self, run: report.RunState):
        self.run = run

    def pytest_runtest_logreport(self, report):
        if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
            _record(self.run, report)


def _record(run, rep):
    status = report.outcome(rep)
    run.outcomes[rep.nodeid] = status
    measured = {k: v for k, v in rep.user_properties if isinstance(v, (int, float, str, type(None)))}
    if measured:
        run.measured[rep.nodeid] = measured
    key = getattr(rep, "twinbench_cell", None)
    if key is not None:
        margin = measured.get("margin")
        run.cells[tuple(key)] = report.Cell(status, report.detail_of(rep), margin if isinstance(margin, float) else None,
                                            rep.nodeid)


def _is_worker(config) -> bool:
    """A pytest-xdist worker: it runs tests and hands its state to the controller, which merges
    and writes every report once."""
    return hasattr(config, "workerinput")


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """pytest-xdist: a worker finished; merge what the reports did not carry."""
    exported = getattr(node, "workeroutput", {}).get("twinbench")
    if exported:
        refcache.merge(report.state(node.config).merge(exported))


# ------------------------------------------------------------------------------------------
# The end of the run: verdicts, reports, baselines
# ------------------------------------------------------------------------------------------
def _verdicts(run: report.RunState) -> dict:
    impls, _, _, by_impl = report.matrix(run)
    bad = {s.id for s in run.specs if s.role == "known_bad"}
    verdicts = {}
    for i in impls:
        deselected = run.deselected.get(i, set()) - (set(report.RECIPE_FAMILIES) if run.architecture_only else set())
        skipped = deselected | (set(report.RECIPE_FAMILIES) if run.architecture_only else set())
        verdicts[i] = report.verdict(by_impl[i], i in bad, run.architecture_only, deselected,
                                     report.not_run(by_impl[i], skipped, i in bad))
    return verdicts


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if _is_worker(config):
        return
    tr, run = terminalreporter, report.state(config)
    if exitstatus == pytest.ExitCode.INTERRUPTED:
        tr.write_line("run interrupted: no report, baseline or detection file written; the previous ones are intact")
        return
    if run.saved:
        tr.write_line(f"baseline written to {run.saved}")
    if run.baseline is not None:
        better = baseline.improvements(run.baseline, baseline.current_snapshot(config))
        tr.section(f"improvements over baseline {run.baseline['name']}")
        for line in better or ["none"]:
            tr.write_line(line[:240])
    out = Path(config.getoption("--conform-report") or report.REPORTS)
    bench = getattr(config, "_benchmarksession", None)
    if bench is not None and not bench.disabled and bench.benchmarks:
        written = report.write_speed_report(bench.benchmarks, out, frameworks.versions(), frameworks.devices(),
                                            roofline())
        if written:
            tr.write_line(f"speed table and chart written to {', '.join(map(str, written))}")
    if refcache.summary():
        tr.write_line(refcache.summary())
    if run.detection:
        _detection_summary(tr, run)
    if run.verdicts:
        _matrix_summary(tr, run)
        cap = _repro_cap()
        if cap:
            tr.write_line(cap)
    if config.getoption("--conform-report") and run.cells:
        written = report.write_conformance(out, run, frameworks.versions(), frameworks.devices(), roofline())
        tr.write_line("conformance report written to " + ", ".join(map(str, written)))


def _matrix_summary(tr, run):
    impls, _, _, by_impl = report.matrix(run)
    tr.section("twinbench conformance matrix")
    width = max(len(i) for i in impls)
    took = time.perf_counter() - run.started
    for impl in impls:
        word, summary = run.verdicts[impl]
        tr.write_line(f"{impl:<{width}}  {word}  ({summary}) in {took:.0f} s")
        for check, cell in sorted(by_impl[impl].items()):
            if cell.status in (report.FAIL, report.ERROR, report.XPASS, report.XFAIL) or \
                    (cell.status == report.SKIP and cell.detail.startswith(report.NO_RECIPE)):
                tr.write_line(f"{'':<{width}}    {cell.status:<5} {check}: {cell.detail}"[:240])
        for line in run.diagnosis.get(impl, []):
            tr.write_line(f"{'':<{width}}    {line}")
        if impl in run.repro:
            tr.write_line(f"{'':<{width}}    repro: python {run.repro[impl]}  (exits 1 while the fault persists)")


def _detection_summary(tr, run):
    written, d = report.write_detection(report.REPORTS, run.detection, frameworks.versions())
    tr.section("twinbench detection")
    if d["faulty"]:
        tr.write_line(f"kill rate: {d['killed']}/{d['faulty']} faulty candidates rejected "
                      f"({100 * d['kill_rate']:.1f}%), {d['mutants']} of the candidates generated mutants")
    margin = "none measured" if d["min_margin"] is None else f"{d['min_margin']:.3g}"
    tr.write_line(f"false rejections: {len(d['false_rejections'])} of {d['equivalent']} correct candidates; "
                  f"errors: {len(d['errors'])}; smallest margin of a kill: {margin}")
    for name in list(d["survivors"]) + d["false_rejections"] + d["errors"]:
        tr.write_line(f"  {name}: {run.detection[name]['first_message'] or 'survived every check'}"[:240])
    tr.write_line(f"written to {', '.join(map(str, written))}")


def _diagnose(config, run, items):
    """Each rejected candidate: its likely causes (suites/diagnosis.py) and, with --conform-report,
    a repro script of its first failing check (suites/repro.py), minimised when the check ran in
    this process (not on a pytest-xdist worker)."""
    from suites import diagnosis, repro

    checks = {i.nodeid: i.callspec.params["check"] for i in items
              if "check" in getattr(getattr(i, "callspec", None), "params", {})}
    impls, _, _, by_impl = report.matrix(run)
    out = config.getoption("--conform-report")
    for spec in run.candidates:
        if spec.id not in run.verdicts or not run.verdicts[spec.id][0].startswith("REJECTED"):
            continue
        failed = [c for c, cell in sorted(by_impl[spec.id].items()) if cell.status in (report.FAIL, report.ERROR)]
        run.diagnosis[spec.id] = diagnosis.explain(spec, failed, {c: by_impl[spec.id][c].detail for c in failed})
        if out and failed:
            nodeid = by_impl[spec.id][failed[0]].nodeid
            run.repro[spec.id] = repro.write(Path(out) / "repro", spec, failed[0], nodeid, checks.get(nodeid),
                                             lambda spec=spec: registry.build(spec, seed=0))


def pytest_sessionfinish(session, exitstatus):
    config = session.config
    run = report.state(config)
    if _is_worker(config):
        from suites import training

        config.workeroutput["twinbench"] = run.export([r.record() for r in training.runs().values()],
                                                      refcache.events())
        return
    if run.save_to is not None and run.outcomes and exitstatus != pytest.ExitCode.INTERRUPTED:
        snap = baseline.current_snapshot(config)
        snap["devices"] = frameworks.devices()
        snap["args"] = list(config.invocation_params.args)
        baseline.save(run.save_to, snap)
        run.saved = run.save_to
    run.verdicts = _verdicts(run)  # once: the exit status here, the terminal summary and the report after
    if exitstatus != pytest.ExitCode.INTERRUPTED and not config.getoption("--no-diagnosis"):
        _diagnose(config, run, session.items)
    if run.candidates and exitstatus == pytest.ExitCode.OK:
        if any(not report.passed_verdict(word) for word, _ in run.verdicts.values()):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED  # INCOMPLETE: nothing failed, but not everything ran

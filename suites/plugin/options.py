"""twinbench's options, their checks before any test runs, the run state, and the report header.

Loaded with ``-p twinbench.suites.plugin`` (pytest.ini's addopts), so every option is known before pytest
reads the command line. The README points at ``pytest --help`` for the options.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from twinbench.fixtures import data as fixture_data
from twinbench.impls import frameworks, registry
from twinbench.suites import baseline, catalogue, corpus, refcache, runstate
from twinbench.suites.plugin.xdist import is_worker


def pytest_addoption(parser):
    group = parser.getgroup("twinbench", "twinbench conformance suite")
    group.addoption(
        "--list-checks", action="store_true", default=False,
        help="print the catalogue of checks (suites/catalogue.py): each check's family, what it compares, its "
             "tolerance (value and name in fixtures/tolerances.py), batch sizes and steps, and what it needs; then exit.")
    _add_subject_options(group)
    _add_run_options(group)
    _add_record_options(group)


def _add_subject_options(group):
    """What is checked: the candidates given with --impl, and how much of them."""
    group.addoption(
        "--impl", action="append", default=[], metavar="NAME=PATH:FACTORY",
        help="check your own twin instead of the references. NAME is a reference network (mnist_cnn, "
             "tweet_fasttext, tweet_gru) or one given with --network; "
             "PATH a .py file or module; FACTORY a zero-argument callable returning a torch.nn.Module, "
             "a keras.Model or a dict recipe. Repeatable. Also read from TWINBENCH_IMPL "
             "(comma-separated). Only the candidates are checked; exit status 0 = conforms, 1 = rejected "
             "or incomplete (a model without a recipe: see --architecture-only).")
    group.addoption(
        "--network", action="append", default=[], metavar="PATH:NAME",
        help="check your own pair: PATH a .py file or module, NAME a NetworkSpec there (impls/networks/) or a "
             "zero-argument function returning one. Its torch and Keras builders are checked against each other "
             "by every check that applies; with --impl NAME=... a candidate port of it is checked against them "
             "instead. Repeatable. A spec without a recipe gets 'incomplete (architecture only)' as for --impl.")
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
        "--corpus", choices=corpus.CHOICES, default="stratified",
        help="detection self-test (-m detection): which candidates to judge. stratified (default, about 10 min): "
             "every correct candidate, every one only one check rejects, and the hardest of each operator family; "
             "selftest (make selftest, CI): the hand-written corpus, the committed mutant sample and the stratified "
             "one; hand-written: that corpus alone; all (make conform): the hand-written corpus and every "
             "generated mutant.")


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
    group.addoption("--force", action="store_true", default=False,
                    help="with --save-baseline: overwrite NAME; with --record-literals: overwrite FILE.")
    group.addoption(
        "--record-literals", metavar="FILE", default=None,
        help="with one --network pair: record the literals the suite cannot know for it (each framework's golden "
             "outputs on its first 256 test inputs, and each parameterised layer's on 4) to FILE and FILE.json, "
             "then run against them. Name FILE in the spec (literals='FILE', relative to the file --network "
             "names) and later runs are held to it; until then the golden check is 'no literals' and the verdict "
             "INCOMPLETE. "
             "Never overwrites without --force.")
    group.addoption(
        "--conform-report", metavar="DIR", default=None,
        help="write the conformance matrix (impl x check family) to DIR/conformance.md, .html and .json "
             "(make conform uses reports/).")


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config):
    """``pytest --list-checks``: the catalogue as a table, then exit 0 (as ``--markers`` does)."""
    if config.option.list_checks:
        print("\n".join(catalogue.table()))
        return 0
    return None


def pytest_configure(config):
    if is_worker(config):  # a pytest-xdist worker: 1/N of the cores (before TF runs anything)
        frameworks.share_cores(config.workerinput["workercount"])
    frameworks.set_determinism()
    try:
        cache_mode = refcache.valid_mode(config.getoption("--reference-cache")
                                         or os.environ.get("TWINBENCH_REFCACHE", "use"))
    except refcache.RefCacheError as exc:
        raise pytest.UsageError(str(exc)) from exc
    from twinbench.suites.helpers import REPRO_BATCH_ENV

    cap = os.environ.get(REPRO_BATCH_ENV, "1")
    if not cap.isdigit() or int(cap) < 1:
        raise pytest.UsageError(f"{REPRO_BATCH_ENV} must be a whole number of examples, at least 1, got {cap!r}; "
                                "unset it for a normal run")
    if config.getoption("--seeds") < 1:
        raise pytest.UsageError(f"--seeds must be at least 1, got {config.getoption('--seeds')}")
    record_to = _literals_target(config)
    try:
        pairs = [registry.load_network(v, literals=record_to) for v in config.getoption("--network")]
    except registry.ImplUsageError as exc:
        raise pytest.UsageError(f"--network: {exc}") from exc
    if record_to:
        pairs = [_record_literals(config, pairs[0])]
    values = list(config.getoption("--impl")) + registry.impls_from_env()
    try:
        candidates = [registry.parse_impl(v) for v in values]
    except registry.ImplUsageError as exc:
        raise pytest.UsageError(f"--impl: {exc}") from exc
    if not candidates:  # --network alone: the pair's own twins are the subjects, each against the other side
        candidates = [twin for pair in pairs for twin in registry.references_of(pair)]
    if config.getoption("--architecture-only") and not candidates:
        raise pytest.UsageError("--architecture-only applies to --impl candidates or a --network pair; give "
                                "--impl NAME=PATH:FACTORY or --network PATH:NAME")
    _refuse_distributed_baselines(config)
    run = runstate.RunState(candidates, candidates or list(registry.REFERENCES + registry.KNOWN_BAD),
                          architecture_only=config.getoption("--architecture-only"), refcache_mode=cache_mode)
    try:
        if config.getoption("--save-baseline"):
            run.save_to = baseline.writable_path(config.getoption("--save-baseline"), config.getoption("--force"))
        if config.getoption("--compare-baseline"):
            run.baseline = baseline.load(config.getoption("--compare-baseline"))
    except baseline.BaselineError as exc:
        raise pytest.UsageError(str(exc)) from exc
    config.stash[runstate.STATE] = run
    runstate.activate(run)


def pytest_unconfigure(config):
    if runstate.STATE in config.stash:
        runstate.deactivate(config.stash[runstate.STATE])


def _record_literals(config, pair):
    """--record-literals FILE: the pair's golden outputs, and the structure literals its spec does
    not state (read off its torch twin, impls/derive.py), written to FILE and FILE.json; from
    then on this run holds both twins to them as recorded."""
    from twinbench.fixtures import golden
    from twinbench.impls import derive, networks

    if not is_worker(config):
        arrays, info = golden.record(pair.name)
        info["command"] = (f"pytest --network {config.getoption('--network')[0]} "
                           f"--record-literals {config.getoption('--record-literals')}")
        info["structure"] = derive.jsonable(pair, pair.derived_literals)
        if pair.derived_literals:
            info["structure_from"] = registry.reference("torch", pair.name).id
        golden.write(pair.name, arrays, info)
    return networks.reregister(dataclasses.replace(pair, derived_literals=()))


def _literals_target(config) -> str | None:
    """--record-literals FILE, checked: one --network pair, and no file overwritten without --force."""
    target = config.getoption("--record-literals")
    if target is None:
        return None
    if len(config.getoption("--network")) != 1:
        raise pytest.UsageError("--record-literals FILE records one pair's literals: give exactly one --network "
                                f"PATH:NAME (got {len(config.getoption('--network'))})")
    path = Path(target).expanduser().resolve()
    if not is_worker(config) and (path.exists() or Path(f"{path}.json").exists()) and not config.getoption("--force"):
        raise pytest.UsageError(f"--record-literals: {path} exists; recorded literals change only on purpose: add "
                                "--force to overwrite it")
    return str(path)


def _refuse_distributed_baselines(config):
    """--compare-baseline's regressions are tests that run after everything they compare, in the
    process that ran it all; --save-baseline records benchmark medians, which pytest-benchmark
    does not time under pytest-xdist. Neither means anything split across workers."""
    workers = getattr(config.option, "numprocesses", None)
    if not workers or is_worker(config):
        return
    for option in ("--compare-baseline", "--save-baseline"):
        if config.getoption(option):
            raise pytest.UsageError(
                f"{option} cannot run under pytest-xdist (-n {workers}): a baseline compares or records a whole "
                "run (outcomes, convergence, benchmark medians) held by one process, and pytest-benchmark does "
                f"not time benchmarks on workers. Drop -n, or run the baseline step on its own without it.")


# ------------------------------------------------------------------------------------------
# Header
# ------------------------------------------------------------------------------------------
def pytest_report_header(config):
    v = frameworks.versions()
    d = frameworks.devices()
    run = runstate.state(config)
    lines = [
        "twinbench: " + ", ".join(f"{k} {val}" for k, val in v.items()),
        f"devices: torch {', '.join(d['torch'])}; tensorflow {', '.join(d['tensorflow'])}; TF32 off",
        "roofline: measured when a timed benchmark or a report needs it (the terminal summary gives it)",
        f"data cache: {fixture_data.cache_root()} (TWINBENCH_DATA)",
        f"impls under test ({len(run.specs)}): " + ", ".join(s.id for s in run.specs),
    ]
    if frameworks.TF_MISSING:
        lines.append("WARNING: " + frameworks.TF_MISSING)
    cap = repro_cap()
    if cap:
        lines.append(cap)
    if run.candidates:
        lines.append("candidate mode: only the --impl twins are checked; other tests are deselected"
                     + ("; recipe checks deselected (--architecture-only)" if run.architecture_only else ""))
    return lines


def repro_cap() -> str:
    """A warning while TWINBENCH_REPRO_BATCH (a repro script's setting) caps the real batches."""
    from twinbench.suites.helpers import REPRO_BATCH_ENV

    cap = os.environ.get(REPRO_BATCH_ENV)
    return (f"WARNING: {REPRO_BATCH_ENV}={cap} caps every real test batch at {cap} examples (a repro script's "
            f"setting): checks see less than they should. Unset it for a verdict." if cap else "")


def roofline() -> dict:
    """The measured fp32 sgemm rate per device, measured on first use, once per process (benchmarks
    and the speed and conformance reports are judged against it; a run that needs neither does not
    pay the few seconds it takes)."""
    devices = ["cpu"] + (["gpu"] if frameworks.torch.cuda.is_available() else [])
    return {d: frameworks.sgemm_roofline(d) for d in devices}


def roofline_line() -> str:
    threads = frameworks.torch.get_num_threads()
    return "roofline: " + ", ".join(f"{d} {g:.0f} GFLOP/s" for d, g in roofline().items()) + \
        f" (fp32 4096^3 sgemm, best of 3, torch {threads} threads, TF32 off)"

"""twinbench's pytest plug-in: options, framework set-up, impl selection, the report header,
expected failures and the conformance matrix."""

from __future__ import annotations

import json
from pathlib import Path

from impls import frameworks  # noqa: F401  (torch before tensorflow, before anything else)

import pytest

from fixtures import data as fixture_data
from fixtures import xfails
from impls import registry
from suites import baseline
from suites.helpers import check_name


# ------------------------------------------------------------------------------------------
# Options (the README points at `pytest --help` for these)
# ------------------------------------------------------------------------------------------
def pytest_addoption(parser):
    group = parser.getgroup("twinbench", "twinbench conformance suite")
    group.addoption(
        "--impl", action="append", default=[], metavar="NAME=PATH:FACTORY",
        help="check your own twin instead of the references. NAME is mnist_cnn or tweet_fasttext; "
             "PATH a .py file or module; FACTORY a zero-argument callable returning a torch.nn.Module, "
             "a keras.Model or a dict recipe. Repeatable. Also read from TWINBENCH_IMPL "
             "(comma-separated). Only the candidates are checked; exit status 0 = conforms, 1 = rejected.")
    group.addoption(
        "--require-gpu", action="store_true", default=False,
        help="fail the gpu-marked tests when no GPU is visible, instead of skipping them.")
    group.addoption(
        "--full-recipe", action="store_true", default=False,
        help="convergence: train the whole budget (14 epochs MNIST, 10 tweets) and gate the final "
             "accuracy, instead of stopping at the first epoch at or above the gate (expect ~99.2%% on MNIST).")
    group.addoption(
        "--seeds", type=int, default=1, metavar="N",
        help="convergence: run N shuffling seeds per twin and gate the MLPerf-style summary (mean, "
             "best and worst dropped when N >= 5); default 1 fixed seed.")
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
        help="write the conformance matrix (impl x check) to DIR/conformance.md and .json "
             "(make conform uses reports/).")


def pytest_configure(config):
    frameworks.set_determinism()
    if config.getoption("--seeds") < 1:
        raise pytest.UsageError(f"--seeds must be at least 1, got {config.getoption('--seeds')}")
    values = list(config.getoption("--impl")) + registry.impls_from_env()
    try:
        candidates = [registry.parse_impl(v) for v in values]
    except registry.ImplUsageError as exc:
        raise pytest.UsageError(f"--impl: {exc}") from exc
    config.twinbench_candidates = candidates
    config.twinbench_specs = candidates or list(registry.REFERENCES + registry.KNOWN_BAD)
    config.twinbench_results = {}
    config.twinbench_detection = {}
    config.twinbench_outcomes, config.twinbench_measured = {}, {}
    config.twinbench_baseline = None
    try:
        if config.getoption("--save-baseline"):
            config.twinbench_save_to = baseline.check_writable(config.getoption("--save-baseline"),
                                                               config.getoption("--force"))
        if config.getoption("--compare-baseline"):
            config.twinbench_baseline = baseline.load(config.getoption("--compare-baseline"))
    except baseline.BaselineError as exc:
        raise pytest.UsageError(str(exc)) from exc
    config.pluginmanager.register(_BaselineComparisonsLast(), "twinbench-baseline-comparisons")


class _BaselineComparisonsLast:
    """The --compare-baseline tests run after everything they compare, whatever -m/-k select
    (the selection applies to what is compared, not to the comparison); without a baseline they
    are deselected."""

    @pytest.hookimpl(hookwrapper=True)
    def pytest_collection_modifyitems(self, config, items):
        comparisons = [i for i in items if i.get_closest_marker("baseline")]
        items[:] = [i for i in items if not i.get_closest_marker("baseline")]
        yield
        if config.twinbench_baseline is not None:
            items.extend(comparisons)
        elif comparisons:
            config.hook.pytest_deselected(items=comparisons)


# ------------------------------------------------------------------------------------------
# Header
# ------------------------------------------------------------------------------------------
def pytest_report_header(config):
    v = frameworks.versions()
    d = frameworks.devices()
    specs = config.twinbench_specs
    lines = [
        "twinbench: " + ", ".join(f"{k} {val}" for k, val in v.items()),
        f"devices: torch {', '.join(d['torch'])}; tensorflow {', '.join(d['tensorflow'])}; TF32 off",
        "roofline: " + _roofline_line(config),
        f"data cache: {fixture_data.cache_root()} (TWINBENCH_DATA)",
        f"impls under test ({len(specs)}): " + ", ".join(s.id for s in specs),
    ]
    if frameworks.TF_MISSING:
        lines.append("WARNING: " + frameworks.TF_MISSING)
    if config.twinbench_candidates:
        lines.append("candidate mode: only the --impl twins are checked; other tests are deselected")
    return lines


def roofline(config) -> dict:
    """The measured fp32 sgemm rate per device, once per session (benchmarks report against it)."""
    devices = ["cpu"] + (["gpu"] if frameworks.torch.cuda.is_available() else [])
    return {d: frameworks.sgemm_roofline(d) for d in devices}  # measured once per process, cached there


def _roofline_line(config) -> str:
    threads = frameworks.torch.get_num_threads()
    return ", ".join(f"{d} {g:.0f} GFLOP/s" for d, g in roofline(config).items()) + \
        f" (fp32 4096^3 sgemm, best of 3, torch {threads} threads, TF32 off)"


# ------------------------------------------------------------------------------------------
# Collection: gpu skips, candidate-only selection, registered expected failures
# ------------------------------------------------------------------------------------------
def pytest_collection_modifyitems(config, items):
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if "subject" in params and "check" in params:
            subject = params["subject"]
            item.twinbench_cell = (getattr(subject, "id", subject), check_name(params["check"]))

    if config.twinbench_candidates:
        keep = [i for i in items if getattr(getattr(i, "callspec", None), "params", {}).get("subject")
                in config.twinbench_candidates]
        dropped = [i for i in items if i not in keep]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
        items[:] = keep

    if frameworks.TF_MISSING:
        for item in items:
            if "keras" in item.name or "keras" in getattr(item, "nodeid", ""):
                item.add_marker(pytest.mark.skip(reason=frameworks.TF_MISSING))

    if not frameworks.gpu_available():
        for item in items:
            if "gpu" in item.keywords:
                if config.getoption("--require-gpu"):
                    item.twinbench_require_gpu = True
                else:
                    item.add_marker(pytest.mark.skip(reason="no GPU visible to torch or tensorflow "
                                                            "(use --require-gpu to make this a failure)"))

    used = xfails.apply(items)
    whole_suite = (not config.twinbench_candidates and not config.option.keyword
                   and not config.option.markexpr and list(config.args) == config.getini("testpaths"))
    for pattern in sorted(set(xfails.EXPECTED_FAILURES) - used):
        if whole_suite:
            item_warning = f"fixtures/xfails.py: entry {pattern!r} matches no collected test"
            config.issue_config_time_warning(pytest.PytestWarning(item_warning), stacklevel=2)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    if getattr(item, "twinbench_require_gpu", False):
        pytest.fail("--require-gpu was given but no GPU is visible to torch or tensorflow", pytrace=False)


# ------------------------------------------------------------------------------------------
# The conformance matrix
# ------------------------------------------------------------------------------------------
@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        cfg = item.config
        cfg.twinbench_outcomes[item.nodeid] = (
            "xfailed" if report.skipped and hasattr(report, "wasxfail") else
            "xpassed" if report.passed and hasattr(report, "wasxfail") else report.outcome)
        if item.user_properties:
            cfg.twinbench_measured[item.nodeid] = {k: v for k, v in item.user_properties
                                                   if isinstance(v, (int, float, str, type(None)))}
    cell = getattr(item, "twinbench_cell", None)
    if cell is None:
        return
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        impl, check = cell
        if report.skipped and hasattr(report, "wasxfail"):
            status = "xfail"
            detail = report.wasxfail
        elif report.skipped:
            status = "skip"
            detail = report.longrepr[2] if isinstance(report.longrepr, tuple) else ""
        elif report.failed:
            status = "FAIL"
            detail = _first_line(report)
        else:
            status = "XPASS" if hasattr(report, "wasxfail") else "pass"
            detail = ""
        item.config.twinbench_results[(impl, check)] = (status, detail)


def _first_line(report) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(report.longrepr)
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if lines and lines[0].startswith("Failed: "):
        lines[0] = lines[0][len("Failed: "):]
    return " ".join(lines[:2])[:300]


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if exitstatus == pytest.ExitCode.INTERRUPTED:
        terminalreporter.write_line("run interrupted: no report, baseline or detection file written; "
                                    "the previous ones are intact")
        return
    if getattr(config, "twinbench_saved", None):
        terminalreporter.write_line(f"baseline written to {config.twinbench_saved}")
    if config.twinbench_baseline is not None:
        better = baseline.improvements(config.twinbench_baseline, baseline.current_snapshot(config))
        terminalreporter.section(f"improvements over baseline {config.twinbench_baseline['name']}")
        for line in better or ["none"]:
            terminalreporter.write_line(line[:240])
    bench = getattr(config, "_benchmarksession", None)
    if bench is not None and not bench.disabled and bench.benchmarks:
        from suites.helpers import REPORTS
        from suites.reporting import write_speed_report

        out = Path(config.getoption("--conform-report") or REPORTS)
        written = write_speed_report(bench.benchmarks, out, frameworks.versions(), frameworks.devices(),
                                     roofline(config))
        if written:
            terminalreporter.write_line(f"speed table and chart written to {', '.join(map(str, written))}")
    if config.twinbench_detection:
        _detection_summary(terminalreporter, config.twinbench_detection)
    results = config.twinbench_results
    if not results:
        return
    impls = sorted({i for i, _ in results}, key=lambda s: (s.startswith("data"), s))
    checks = sorted({c for _, c in results})
    tr = terminalreporter
    tr.section("twinbench conformance matrix")
    width = max(len(i) for i in impls)
    verdicts = {}
    for impl in impls:
        row = {c: results.get((impl, c), ("", ""))[0] for c in checks}
        counts = {s: sum(1 for v in row.values() if v == s) for s in ("pass", "FAIL", "xfail", "XPASS", "skip")}
        if counts["FAIL"] or counts["XPASS"]:
            verdict = "REJECTED"
        elif counts["xfail"]:
            verdict = "rejected as expected (known bad)"
        else:
            verdict = "conforms"
        summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        verdicts[impl] = (verdict, summary)
        tr.write_line(f"{impl:<{width}}  {verdict}  ({summary})")
        for c, s in row.items():
            if s in ("FAIL", "XPASS", "xfail"):
                tr.write_line(f"{'':<{width}}    {s:<5} {c}: {results[(impl, c)][1]}"[:240])
    out = config.getoption("--conform-report")
    if out:
        from suites.reporting import write_conformance

        written = write_conformance(Path(out), results, impls, checks, verdicts, frameworks.versions(),
                                    frameworks.devices(), roofline(config))
        tr.write_line("conformance report written to " + ", ".join(map(str, written)))


def _detection_summary(tr, runs: dict):
    """Kill rate and false rejections of the detection corpus: terminal and reports/detection.json."""
    from suites.helpers import REPORTS

    faulty = {k: v for k, v in runs.items() if v["faulty"]}
    good = {k: v for k, v in runs.items() if not v["faulty"]}
    killed = sorted(k for k, v in faulty.items() if v["rejected"])
    false_rejections = sorted(k for k, v in good.items() if v["rejected"])
    rate = len(killed) / len(faulty) if faulty else None
    tr.section("twinbench detection")
    if faulty:
        tr.write_line(f"kill rate: {len(killed)}/{len(faulty)} faulty candidates rejected ({100 * rate:.1f}%)")
    tr.write_line(f"false rejections: {len(false_rejections)} of {len(good)} correct candidates")
    for name in sorted(set(faulty) - set(killed)) + false_rejections:
        tr.write_line(f"  {name}: {runs[name]['first_message'] or 'survived every declared check'}"[:240])
    payload = {"versions": frameworks.versions(), "corpus": len(runs), "faulty": len(faulty), "correct": len(good),
               "killed": len(killed), "kill_rate": rate, "false_rejections": len(false_rejections),
               "survivors": sorted(set(faulty) - set(killed)), "falsely_rejected": false_rejections,
               "candidates": runs}
    out = REPORTS / "detection.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    fixture_data.atomic_write_bytes(out, json.dumps(payload, indent=2).encode())
    tr.write_line(f"written to {out}")


# ------------------------------------------------------------------------------------------
# Baselines (suites/baseline.py)
# ------------------------------------------------------------------------------------------
def pytest_sessionfinish(session, exitstatus):
    config = session.config
    path = getattr(config, "twinbench_save_to", None)
    if path is not None and config.twinbench_outcomes and exitstatus != pytest.ExitCode.INTERRUPTED:
        snap = baseline.current_snapshot(config)
        snap["devices"] = frameworks.devices()
        snap["args"] = list(config.invocation_params.args)
        baseline.save(path, snap)
        config.twinbench_saved = path

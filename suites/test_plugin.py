"""The plug-in contract: --impl NAME=PATH:FACTORY gives a verdict, and bad values give one clear
usage error before any test runs."""

import importlib.util
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from twinbench.impls import frameworks, registry
from twinbench.suites.helpers import at_once

pytestmark = pytest.mark.selftest

SAMPLES = "suites/plugin_samples/bad_factories.py"


@pytest.mark.parametrize("value, expected", [
    ("cnn=twinbench.impls.torch_mnist_cnn:module", "unknown network NAME 'cnn'"),
    ("mnist_cnn", "is not of the form"),
    ("mnist_cnn=no/such/file.py:factory", "file no/such/file.py not found"),
    ("mnist_cnn=no_such_module_xyz:factory", "cannot import module 'no_such_module_xyz'"),
    ("mnist_cnn=twinbench.impls.torch_mnist_cnn:nope", "has no factory named 'nope'"),
    (f"mnist_cnn={SAMPLES}:not_callable", "not a zero-argument callable"),
    (f"mnist_cnn={SAMPLES}:wrong_type", "return a torch.nn.Module, a keras.Model or a dict recipe"),
    (f"mnist_cnn={SAMPLES}:no_model", "returned a dict without 'model'"),
], ids=["unknown-name", "no-factory-part", "missing-file", "missing-module", "missing-factory",
        "not-callable", "wrong-return-type", "dict-without-model"])
def test_bad_impl_value_is_a_usage_error(value, expected):
    with pytest.raises(registry.ImplUsageError) as err:
        registry.parse_impl(value)
    assert expected in str(err.value), str(err.value)


def _checks(group: str) -> list:
    """The catalogue's checks of ``group`` for an MNIST twin (the counts the runs below print)."""
    from twinbench.suites import catalogue

    return catalogue.checks_for(registry.reference("torch", "mnist_cnn"), group)


def _pytest(*args, env=None, quiet=True, cwd=None):
    """A pytest run of this checkout (``quiet``: -q, which leaves out the header; else -rs, the
    header and the skip reasons), from ``cwd`` when given."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    env.pop("TWINBENCH_IMPL", None)
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q" if quiet else "-rs", *args],
                          capture_output=True, text=True, env=env, timeout=600, cwd=cwd)


def _torch_only_env(*paths) -> dict:
    """The environment of a machine without TensorFlow (the lent GPU image), ``paths`` importable."""
    here = os.path.dirname(__file__)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(here, "plugin_samples", "no_tensorflow"), *paths]))
    env.pop("TWINBENCH_IMPL", None)
    return env


def _port_from_keras(tmp_path_factory):
    sample = tmp_path_factory.mktemp("framework-skips") / "port_from_keras.py"
    sample.write_text("from twinbench.impls.torch_mnist_cnn import module as factory\n")
    return _pytest("-m", "parameters", f"--impl=mnist_cnn={sample}:factory", env=_torch_only_env(os.getcwd()),
                   quiet=False)


def _references_from_elsewhere(tmp_path_factory):
    folder = tmp_path_factory.mktemp("elsewhere")
    (folder / "report").mkdir()  # exists already: pytest would take it for a test path
    (folder / "test_mine.py").write_text("def test_mine():\n    pass\n")
    return folder, (_pytest("--conform-report", str(folder / "report"), "-m", "shapes or data", cwd=folder),
                    _pytest("--conform-report", str(folder / "mine"), "test_mine.py", cwd=folder))


# The one pytest run each of these tests judges depends on nothing but the checkout, so it starts
# when this module does (background, below), one at a time beside the foreground tests' own
# processes: a pytest run spends most of its seconds importing torch and TensorFlow on one core.
# These tests come last in the module, so their runs are done (or nearly) when they are judged.
_BACKGROUND = {  # in the order of the tests below
    "test_a_baseline_under_xdist_is_a_usage_error":
        lambda tmp: _pytest("--save-baseline=x", "-n", "2", "-m", "shapes"),
    "test_bad_impl_stops_before_any_test":
        lambda tmp: _pytest(f"--impl=mnist_cnn={SAMPLES}:wrong_type", "suites/test_parameters.py"),
    "test_impl_verdicts_end_to_end":
        lambda tmp: _pytest("--impl", "tweet_fasttext=impls/known_bad/seed000_torch_fasttext.py:factory",
                            "--impl", "mnist_cnn=twinbench.impls.torch_mnist_cnn:sequential",
                            "--impl", "mnist_cnn=impls/known_bad/torch_mnist_cnn_raises_in_init.py:factory",
                            "--impl", "mnist_cnn=impls/known_bad/torch_mnist_cnn_wrong_shape.py:factory",
                            "-m", "shapes or parameters", "-p", "no:randomly"),
    "test_torch_only_machine_runs_the_torch_side":
        lambda tmp: _pytest("-m", "parameters or gpu", "-k", "mnist_cnn-module or mnist_cnn-sequential",
                            env=_torch_only_env(), quiet=False),
    "test_framework_skips_are_keyed_on_frameworks_not_names": _port_from_keras,
    "test_conform_report_from_any_folder_checks_the_references": _references_from_elsewhere,
}


class _Runs:
    """The ``_BACKGROUND`` runs of a session: ``start(name)`` starts one (once), ``result(name)``
    waits for it, starting it first when it was not started ahead."""

    def __init__(self, pool, tmp_path_factory):
        self.pool, self.tmp, self.futures = pool, tmp_path_factory, {}

    def start(self, name: str) -> None:
        if name not in self.futures:
            self.futures[name] = self.pool.submit(_BACKGROUND[name], self.tmp)

    def result(self, name: str):
        self.start(name)
        return self.futures[name].result()


@pytest.fixture(scope="module", autouse=True)
def background(request, tmp_path_factory):
    """The runs of the ``_BACKGROUND`` tests this session selected, started when the module starts.
    Under pytest-xdist a worker runs only some of the module's tests (its ``session.items`` is the
    whole selection), so there each run starts only when its test asks."""
    pool = ThreadPoolExecutor(max_workers=1)
    runs = _Runs(pool, tmp_path_factory)
    if not hasattr(request.config, "workerinput"):
        selected = {item.originalname for item in request.session.items if item.module is request.module}
        for name in _BACKGROUND:
            if name in selected:
                runs.start(name)
    yield runs
    pool.shutdown(wait=True, cancel_futures=True)


def test_factory_that_raises_is_a_candidate_not_a_usage_error():
    """Raising in the factory (or the model's __init__) is the candidate's fault: it gets a spec
    and fails its checks; it does not stop the run."""
    spec = registry.parse_impl(f"mnist_cnn={SAMPLES}:raises")
    assert spec.framework == "unknown" and spec.role == "candidate"
    with pytest.raises(Exception, match="raised RuntimeError: boom in factory"):
        registry.build(spec)


@pytest.mark.e2e
def test_model_only_candidate_is_incomplete_and_architecture_only_conforms():
    """A bare model (no recipe) cannot conform: INCOMPLETE, exit 1; --architecture-only deselects
    the recipe checks and says so, exit 0. The randomness family judges a bare model's training-
    mode outputs and passes (its loss and gradients are the recipe's)."""
    args = ("--impl", "mnist_cnn=twinbench.impls.torch_mnist_cnn:Net", "-m", "parameters or equivalence or randomness",
            "-k", "loss_parity or param_count_total or transfer_refuses or train_mode")
    proc, architecture = at_once(lambda: _pytest(*args), lambda: _pytest(*args, "--architecture-only"))
    out = proc.stdout
    assert proc.returncode == 1, f"exit {proc.returncode}, expected 1 (incomplete)\n{out[-3000:]}"
    assert re.search(r"candidate-torch-mnist_cnn-torch_mnist_cnn.Net +INCOMPLETE \(architecture only: no recipe\)", out), out[-3000:]
    proc = architecture
    out = proc.stdout
    assert proc.returncode == 0, f"exit {proc.returncode}, expected 0\n{out[-3000:]}"
    assert re.search(r"candidate-torch-mnist_cnn-torch_mnist_cnn.Net +conforms \(architecture only\)", out), out[-3000:]
    assert "check_loss_parity" not in out.split("conformance matrix")[-1], out[-3000:]


@pytest.mark.e2e
def test_rejected_port_gets_its_cause_and_a_repro_that_exits_1_until_fixed(tmp_path):
    """As a user: a port rejected under --conform-report is told its likely cause and gets
    DIR/repro/<candidate-id>.py, minimised to the smallest real batch that still fails; run in a
    subprocess, the repro prints the divergence and exits 1; once the port's file is fixed, the
    same script exits 0. The report's folder exists already, outside the checkout, and follows
    the option after a space: pytest must read it as the option's value, not as a test path that
    hides pytest.ini (twinbench/pytest_entry.py)."""
    port = tmp_path / "port.py"
    port.write_text("from twinbench.impls.known_bad.torch_tweet_fasttext_masked_mean import factory  # noqa: F401\n")
    out = tmp_path / "report"
    out.mkdir()
    proc = _pytest(f"--impl=tweet_fasttext={port}:factory", "-m", "equivalence", "-k", "check_forward_parity and into",
                   "--conform-report", str(out))
    assert proc.returncode == 1, f"exit {proc.returncode}\n{proc.stdout[-3000:]}"
    assert "likely cause [masked-mean]" in proc.stdout, proc.stdout[-3000:]
    scripts = sorted((out / "repro").glob("*.py"))
    assert len(scripts) == 1, scripts
    assert f"repro: python {scripts[0]}" in proc.stdout, proc.stdout[-3000:]
    text = scripts[0].read_text()
    small = re.search(r"Minimised: it still fails on (\d+) of the check's (\d+) real test examples", text)
    assert small and int(small[1]) < int(small[2]), text[:1500]
    assert f"ENV = {{'TWINBENCH_REPRO_BATCH': '{small[1]}'}}" in text, text

    def repro():
        return subprocess.run([sys.executable, str(scripts[0])], capture_output=True, text=True, timeout=600)

    run = repro()
    assert run.returncode == 1, f"exit {run.returncode}\n{run.stdout[-3000:]}{run.stderr[-2000:]}"
    assert "max |diff|" in run.stdout, run.stdout[-3000:]   # the divergence, with its tolerance
    assert f"TWINBENCH_REPRO_BATCH={small[1]}" in run.stdout, run.stdout[:1000]
    port.write_text("from twinbench.impls.torch_tweet_fasttext import module as factory  # noqa: F401\n")
    run = repro()
    assert run.returncode == 0, f"exit {run.returncode} after the fix\n{run.stdout[-3000:]}"


def _cells(folder) -> dict:
    import json

    got = json.loads((folder / "conformance.json").read_text())
    return {(c["impl"], c["check"]): c["status"] for c in got["results"]}


@pytest.mark.e2e
@pytest.mark.frameworks("keras")
@pytest.mark.skipif(importlib.util.find_spec("xdist") is None, reason="pytest-xdist is not installed here (make venv)")
def test_xdist_run_merges_every_report_on_the_controller(tmp_path):
    """pytest -n 2: the controller merges the workers' results. The verdicts and the conformance
    report's every cell equal a run in one process; the detection report holds both candidates (a
    faulty and a correct one, run by different workers when the two are split) with the checks and
    causes their literal names (fixtures/detection_expected.json, what test_detection holds a run
    in one process to); each report is written once, by the controller. In the same run, a
    worker's torch and TF run at torch's one-process count // 2 (conftest calls share_cores in
    workers only: a process a test starts keeps its own count)."""
    import json

    from twinbench.fixtures import detection as DE

    ids = ("known_bad-torch_tweet_fasttext_masked_mean", "known_good-torch_tweet_fasttext_embeddingbag")
    threads = max(1, frameworks.one_process_threads() // 2)
    matrix = ("suites/test_parameters.py", "suites/plugin_samples/xdist_threads.py")

    def run(name, *args):
        return _pytest(*args, f"--conform-report={tmp_path / name}",
                       env={"TWINBENCH_REPORTS": str(tmp_path / f"reports-{name}"), "TWINBENCH_EXPECT_THREADS": str(threads)})

    one = run("one", *matrix, "-k", "test_parameters or worker_runs")
    two = run("two", *matrix, "suites/test_detection.py", "-k", "test_parameters or worker_runs or " + " or ".join(ids),
              "--corpus", "hand-written", "-n", "2")
    assert one.returncode == two.returncode == 0, f"{one.returncode} {two.returncode}\n{two.stdout[-3000:]}"
    assert re.search(r"\b1 skipped\b", one.stdout) and not re.search(r"\bskipped\b", two.stdout.splitlines()[-1]), \
        two.stdout[-3000:]   # the thread test runs in the workers only, and passes there
    verdict = re.compile(r"^(\S+) +(conforms|REJECTED|INCOMPLETE|rejected as expected)\b", re.M)
    assert sorted(verdict.findall(one.stdout)) == sorted(verdict.findall(two.stdout)) != [], two.stdout[-3000:]
    assert _cells(tmp_path / "one") == _cells(tmp_path / "two") and len(_cells(tmp_path / "two")) > 15
    got = json.loads((tmp_path / "reports-two" / "detection.json").read_text())
    assert sorted(got["results"]) == sorted(ids) and got["killed"] == got["faulty"] == 1, got["results"].keys()
    literal = DE.expected()
    assert {k: (sorted(r["failed"]), r["diagnosis"]) for k, r in got["results"].items()} == \
        {k: (sorted(literal[k]["failed"]), literal[k]["diagnosis"]) for k in ids}
    assert two.stdout.count("detection.json") == 1 and two.stdout.count("conformance report written") == 1, \
        two.stdout[-2000:]


@pytest.mark.frameworks("keras")
@pytest.mark.e2e
def test_share_cores_splits_torchs_threads_and_never_overrides_the_user():
    """frameworks.share_cores(N): torch and both TF pools at torch's own count // N (at least 1);
    a thread count the user set wins. Each case in a fresh process: TF's pools are sized once."""
    probe = ("import sys; from twinbench.impls import frameworks as f; base = f.torch.get_num_threads(); "
             "got = f.share_cores(int(sys.argv[1])); "
             "print(base, got, f.torch.get_num_threads(), f.tf.config.threading.get_intra_op_parallelism_threads(), "
             "f.tf.config.threading.get_inter_op_parallelism_threads(), f.one_process_threads())")

    def run(workers, **env):
        base = {k: v for k, v in os.environ.items() if k not in frameworks.THREAD_ENV}
        got = subprocess.run([sys.executable, "-c", probe, str(workers)], capture_output=True, text=True, timeout=300,
                             env={**base, **env}, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        assert got.returncode == 0, got.stderr[-2000:]
        return got.stdout.split()

    (base, *shared), user = at_once(lambda: run(2), lambda: run(2, OMP_NUM_THREADS="1"))
    assert shared == [str(max(1, int(base) // 2))] * 4 + [base], (base, shared)  # the last: the count before
    assert user[1:3] == ["None", "1"]


@pytest.mark.e2e
@pytest.mark.skipif(importlib.util.find_spec("xdist") is None, reason="pytest-xdist is not installed here (make venv)")
def test_a_baseline_under_xdist_is_a_usage_error(background):
    """A baseline is compared or recorded by the one process that holds the whole run; split
    across workers it would compare partial state, so it is refused before anything runs: from
    the command line once (exit 4, the message), and for each option by the rule itself."""
    got = background.result("test_a_baseline_under_xdist_is_a_usage_error")
    assert got.returncode == 4, got.stdout[-2000:] + got.stderr[-2000:]
    assert "--save-baseline cannot run under pytest-xdist (-n 2)" in got.stderr, got.stderr[-2000:]
    from types import SimpleNamespace

    from twinbench.suites.plugin import options

    for option in ("--compare-baseline", "--save-baseline"):
        config = SimpleNamespace(option=SimpleNamespace(numprocesses=2), getoption=lambda name: name == option)
        with pytest.raises(pytest.UsageError, match=f"{option} cannot run under pytest-xdist"):
            options._refuse_distributed_baselines(config)
    options._refuse_distributed_baselines(SimpleNamespace(option=SimpleNamespace(numprocesses=None),
                                                          getoption=lambda name: True))  # no workers: allowed


@pytest.mark.e2e
def test_bad_impl_stops_before_any_test(background):
    proc = background.result("test_bad_impl_stops_before_any_test")
    assert proc.returncode == 4, f"exit {proc.returncode}, expected 4 (usage error)\n{proc.stdout}\n{proc.stderr}"
    assert "--impl: " in proc.stderr and "return a torch.nn.Module, a keras.Model" in proc.stderr, proc.stderr
    assert "passed" not in proc.stdout


@pytest.mark.e2e
def test_impl_verdicts_end_to_end(background):
    """Seed 000's PyTorch model is rejected with messages that name the layer; a correct twin
    passes; a candidate that raises in __init__ and one that returns the wrong shape fail with
    a message while every other check still runs; with --impl nothing else is checked."""
    proc = background.result("test_impl_verdicts_end_to_end")
    out = proc.stdout
    assert proc.returncode == 1, f"exit {proc.returncode}, expected 1 (rejected)\n{out[-3000:]}"
    assert "layer avgpool (AvgPool1d, reference pool): output shape (7, 42, 1), expected (7, 50)" in out, out[-5000:]
    assert "forward pass at batch 7 raised: forward raised RuntimeError: shape '[32, 42]' is invalid" in out, out[-5000:]
    assert "layer fc (Linear, reference fc): 43 parameters, expected 51" in out, out[-5000:]
    assert "1,000,043 parameters in all, expected 1,000,051" in out, out[-5000:]
    assert re.search(r"candidate-torch-mnist_cnn-torch_mnist_cnn.sequential +conforms", out), out[-5000:]
    assert re.search(r"candidate-torch-tweet_fasttext-seed000_torch_fasttext.factory +REJECTED", out), out[-5000:]
    assert "torch-mnist_cnn-module" not in out.split("conformance matrix")[-1], "references ran in --impl mode"
    matrix = out.split("conformance matrix")[-1]
    every = len(_checks("shapes")) + len(_checks("parameters"))  # a factory that raises fails every check
    assert re.search(rf"candidate-unknown-mnist_cnn-torch_mnist_cnn_raises_in_init.factory +REJECTED +\({every} fail\b", out), matrix
    assert "raised RuntimeError: fc3 is not defined" in out, out[-5000:]
    assert re.search(r"candidate-torch-mnist_cnn-torch_mnist_cnn_wrong_shape.factory +REJECTED +\(\d+ pass, 3 fail\b", out), out[-5000:]
    assert "output shape (7, 10, 1) at batch 7, expected (7, 10)" in out, out[-5000:]
    assert " error" not in out.splitlines()[-1], out.splitlines()[-1]


@pytest.mark.e2e
def test_torch_only_machine_runs_the_torch_side(background):
    """Without TensorFlow (the lent GPU image) the suite still collects; torch checks run, Keras
    ones skip with the reason, and the header says so."""
    proc = background.result("test_torch_only_machine_runs_the_torch_side")
    out = proc.stdout
    assert proc.returncode == 0, out[-3000:] + proc.stderr[-2000:]
    assert "tensorflow not installed" in out and "WARNING: TensorFlow/Keras cannot be imported here" in out, out[:3000]
    assert re.search(rf"\b{2 * len(_checks('parameters'))} passed\b", out), out[-2000:]   # torch module + sequential
    assert "Keras twins and checks against a Keras partner are skipped" in out.split("short test summary")[-1], out[-3000:]


@pytest.mark.e2e
def test_framework_skips_are_keyed_on_frameworks_not_names(background):
    """On a machine without TensorFlow, a torch candidate whose file name says 'keras' (a file
    port_from_keras.py) still runs its torch-only checks."""
    proc = background.result("test_framework_skips_are_keyed_on_frameworks_not_names")
    out = proc.stdout
    assert proc.returncode == 0, out[-3000:] + proc.stderr[-2000:]
    assert re.search(rf"\b{len(_checks('parameters'))} passed\b", out), out[-2000:]


@pytest.mark.e2e
def test_conform_report_from_any_folder_checks_the_references(background):
    """``pytest --conform-report /abs/dir`` from a folder outside the checkout (the folder exists,
    and follows the option after a space) runs the references' conformance checks through the
    installed entry point and writes the report there; the suite's own tests that are not
    conformance checks (here test_data's tests of bad data), which need a checkout, are
    deselected (twinbench/pytest_entry.py, OUTSIDE). With a test path of the user's own named
    instead, those tests run, and only they."""
    from twinbench.suites import catalogue

    folder, (proc, mine) = background.result("test_conform_report_from_any_folder_checks_the_references")
    out = proc.stdout
    assert proc.returncode == 0, out[-3000:] + proc.stderr[-2000:]
    cells = _cells(folder / "report")
    refs = {(spec.id, catalogue.name_of(c)) for spec in registry.REFERENCES for c in catalogue.checks_for(spec, "shapes")}
    assert {k: v for k, v in cells.items() if k in refs} == dict.fromkeys(refs, "pass"), sorted(set(refs) - set(cells))
    assert {catalogue.family(check) for _, check in cells} == {"shapes", "data"}, sorted(cells)
    passed = sum(v == "pass" for v in cells.values())  # every test that ran is a cell: none of the self-tests
    assert re.search(rf"\b{passed} passed\b.* \d+ deselected\b", out.splitlines()[-1]), out[-2000:]
    # a user's own tests named on the command line run as they are, the suite's stay out
    assert mine.returncode == 0 and re.search(r"\b1 passed\b", mine.stdout.splitlines()[-1]), mine.stdout[-2000:]
    assert "deselected" not in mine.stdout.splitlines()[-1], mine.stdout[-2000:]

"""A user's own pair: ``pip install <the repository>`` into a fresh environment, then ``pytest
--network PATH:NAME`` from the user's own folder gives a verdict on the example pair
(examples/pair.py, exit 0) and rejects its faulty variant with a cause and a repro script (exit 1);
a pair that has not recorded its literals is INCOMPLETE until ``--record-literals FILE``; a bad
``--network`` value is one clear usage error."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from twinbench.impls import networks, registry
from twinbench.suites.helpers import at_once

pytestmark = [pytest.mark.selftest, pytest.mark.frameworks("keras")]

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
PACKAGED = ("pyproject.toml", "twinbench", "impls", "suites", "fixtures")  # what the wheel is built from


def _pytest(folder: Path, *args, python: str = sys.executable):
    """pytest run from ``folder`` (outside the checkout), as a user runs it there."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("TWINBENCH_IMPL", None)
    env.pop("PYTHONPATH", None)
    return subprocess.run([python, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args], cwd=folder,
                          capture_output=True, text=True, env=env, timeout=600)


@pytest.fixture(scope="module")
def installed_python(tmp_path_factory) -> str:
    """The interpreter of a fresh virtual environment into which a wheel of this repository is
    installed (``pip install``, not editable: the files are copied into its site-packages). Its
    dependencies are this environment's, reached through a .pth file, so that nothing is
    downloaded; twinbench itself is only the wheel's."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"  # built from a copy: a build writes build/ and *.egg-info beside its sources
    source.mkdir()
    for name in PACKAGED:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(ROOT / name, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    built = subprocess.run([*pip, "wheel", "--quiet", "--no-deps", "--no-build-isolation", str(source), "-w",
                            str(tmp / "dist")], capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    wheel = next((tmp / "dist").glob("twinbench-*.whl"))
    env_dir = tmp / "env"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          capture_output=True, text=True, check=True).stdout.strip()
    ours = [p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir()]
    (Path(site) / "dependencies.pth").write_text("\n".join(ours) + "\n")
    done = subprocess.run([str(python), "-m", "pip", "--disable-pip-version-check", "install", "--quiet",
                           "--no-deps", "--no-index", "--ignore-installed", str(wheel)],  # not the one on the .pth path
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert (Path(site) / "twinbench" / "suites" / "plugin" / "__init__.py").is_file(), sorted(os.listdir(site))
    return str(python)


def _verdicts(out: str) -> dict:
    """{twin id: the verdict line} of the terminal's conformance matrix."""
    lines = out.split("twinbench conformance matrix", 1)[-1].splitlines()
    return {line.split()[0]: line for line in lines if line.startswith(("torch-example_mlp", "keras-example_mlp"))}


@pytest.fixture(scope="module")
def user_folder(tmp_path_factory) -> Path:
    """The example pair copied into a folder outside the checkout, as a user copies it."""
    folder = tmp_path_factory.mktemp("user-pair")
    for f in EXAMPLES.iterdir():
        if f.is_file():
            shutil.copy(f, folder / f.name)
    return folder


@pytest.mark.e2e
def test_the_installed_wheel_takes_no_import_name_of_a_users(installed_python, tmp_path):
    """Everything the wheel installs is under twinbench: a user's own ``fixtures`` and ``suites``
    packages still import beside twinbench's (the example pair's test below loads the whole plugin
    in a folder holding a ``fixtures`` package of the user's)."""
    for name in ("fixtures", "suites", "impls"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(f"OWNER = 'user'  # the user's own {name}\n")
    probe = ("import fixtures, suites, impls, twinbench.fixtures.tolerances, twinbench.suites as s; "
             "print(fixtures.OWNER, suites.OWNER, impls.OWNER, s.__file__)")
    done = subprocess.run([installed_python, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    owners, where = done.stdout.split()[:3], done.stdout.split()[3]
    assert owners == ["user"] * 3, done.stdout
    assert Path(where).is_relative_to(Path(installed_python).parents[1]), f"twinbench imported from {where}"


@pytest.mark.e2e
def test_the_example_pair_conforms_and_its_faulty_variant_is_rejected_with_a_cause(user_folder, installed_python):
    """From an installed wheel, in the user's folder (with a package of the user's named fixtures)."""
    (user_folder / "fixtures").mkdir(exist_ok=True)
    (user_folder / "fixtures" / "__init__.py").write_text("OWNER = 'user'\n")
    good, bad = at_once(lambda: _pytest(user_folder, "--network", "pair.py:SPEC", python=installed_python),
                        lambda: _pytest(user_folder, "--network=pair_faulty.py:SPEC", "--conform-report", "report",
                                        python=installed_python))
    assert good.returncode == 0, good.stdout[-3000:] + good.stderr[-2000:]
    verdicts = _verdicts(good.stdout)
    assert set(verdicts) == {"torch-example_mlp-module", "keras-example_mlp-sequential"}, good.stdout[-3000:]
    assert all(" conforms " in v for v in verdicts.values()), verdicts
    assert bad.returncode == 1, bad.stdout[-3000:] + bad.stderr[-2000:]
    verdicts = _verdicts(bad.stdout)
    assert all(" REJECTED " in v for v in verdicts.values()) and len(verdicts) == 2, bad.stdout[-3000:]
    assert "likely cause [activation-kind]" in bad.stdout and "GELU(approximate='tanh')" in bad.stdout, bad.stdout[-4000:]
    assert "check_forward_parity" in bad.stdout
    # the repro script rebuilds the pair from its file in a fresh process, from any folder, and sees the fault
    script = user_folder / "report" / "repro" / "keras-example_mlp_faulty-sequential.py"
    repro = subprocess.run([installed_python, str(script)], cwd=user_folder.parent, capture_output=True, text=True,
                           timeout=600)
    assert repro.returncode == 1 and "FAIL: check_" in repro.stdout, repro.stdout[-2000:] + repro.stderr[-2000:]


@pytest.mark.e2e
def test_a_pair_without_recorded_literals_is_incomplete_until_it_records_them(user_folder, tmp_path):
    """The example pair with neither its structure literals (shapes, weights, laws, counts,
    stochastic ops) nor a literals file: INCOMPLETE, the checks holding the Keras twin to the torch
    twin's structure; --record-literals records them (equal to the ones the example states by
    hand) with the golden outputs; then both twins are held to the file, and conform."""
    folder = tmp_path
    text = (user_folder / "pair.py").read_text()
    structure = text[text.index("    # literals: what each twin must have"):text.index("    # the recipe, as both")]
    assert '    literals="pair.literals.npz",\n' in text and "param_layers=" in structure
    bare = text.replace(structure, "").replace('    literals="pair.literals.npz",\n', "")
    (folder / "pair.py").write_text(bare)
    some = ("-m", "golden or shapes or parameters or initialization or randomness")
    first, recorded = at_once(lambda: _pytest(folder, "--network", "pair.py:SPEC", *some),
                              lambda: _pytest(folder, "--network", "pair.py:SPEC", "-m", "golden",
                                              "--record-literals", "mine.npz"))
    assert first.returncode == 1, first.stdout[-3000:]
    assert "INCOMPLETE (no recorded literals)" in first.stdout and "--record-literals FILE" in first.stdout, first.stdout
    assert "states no output_shape, param_layers, canonical_weights, init_laws" in first.stdout, first.stdout[-3000:]
    assert " fail " not in first.stdout.split("conformance matrix")[-1], first.stdout[-3000:]
    assert recorded.returncode == 0, recorded.stdout[-3000:] + recorded.stderr[-2000:]
    assert (folder / "mine.npz").is_file() and (folder / "mine.npz.json").is_file()
    written = json.loads((folder / "mine.npz.json").read_text())
    stated = {k: getattr(_example_spec(), k) for k in networks.STRUCTURE}
    assert written["structure"] == json.loads(json.dumps(stated)), (written["structure"], stated)
    named = bare.replace("    optimizer=", '    literals="mine.npz",\n    optimizer=', 1)
    (folder / "named.py").write_text(named)
    # held to the file: a Keras twin with a fifth output is rejected by the recorded shapes
    wider = named.replace('Dense(CLASSES, name="out"', 'Dense(CLASSES + 1, name="out"')
    assert wider != named
    (folder / "wider.py").write_text(wider)
    again, later, rejected = at_once(
        lambda: _pytest(folder, "--network", "pair.py:SPEC", "-m", "golden", "--record-literals", "mine.npz"),
        lambda: _pytest(folder, "--network", "named.py:SPEC", *some),
        lambda: _pytest(folder, "--network", "wider.py:SPEC", "-m", "shapes"))
    assert again.returncode == 4 and "mine.npz exists" in again.stderr and "--force" in again.stderr, again.stderr
    assert later.returncode == 0, later.stdout[-3000:]
    assert later.stdout.count(" conforms ") == 2, later.stdout[-3000:]
    assert rejected.returncode == 1 and "output shape (1, 5), expected (1, 4)" in rejected.stdout, rejected.stdout[-3000:]


def _example_spec():
    """examples/pair.py's SPEC, imported from the checkout (it states every literal by hand)."""
    import importlib.util

    loader = importlib.util.spec_from_file_location("twinbench_example_pair_for_test", EXAMPLES / "pair.py")
    module = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(module)
    return module.SPEC


@pytest.fixture
def isolated_registry(monkeypatch):
    monkeypatch.setattr(networks, "_SPECS", dict(networks._SPECS))


SPEC_FILE = '''
import dataclasses, sys
sys.path.insert(0, {examples!r})
import pair
SPEC = pair.SPEC
def factory():
    return dataclasses.replace(pair.SPEC, name="example_mlp_from_factory")
NOT_A_SPEC = 3
REFERENCE_NAME = dataclasses.replace(pair.SPEC, name="mnist_cnn")
LAMBDA = dataclasses.replace(pair.SPEC, name="lambda_pair", builders={{"torch": {{"module": lambda: None}},
                                                                       "keras": pair.SPEC.builders["keras"]}})
TORCH_ONLY = dataclasses.replace(pair.SPEC, name="torch_only", builders={{"torch": pair.SPEC.builders["torch"]}})
def raises():
    raise RuntimeError("no data here")
'''


@pytest.mark.parametrize("name, expected", [
    ("", "is not of the form --network PATH:NAME"),
    ("nope", "has no attribute 'nope'"),
    ("NOT_A_SPEC", "is a int, not a twinbench.NetworkSpec"),
    ("REFERENCE_NAME", "a reference network's name"),
    ("LAMBDA", "which no import can find again (a lambda or a nested function)"),
    ("TORCH_ONLY", "names no keras builder"),
    ("raises", "calling raises() raised RuntimeError: no data here"),
])
def test_a_bad_network_value_is_a_usage_error_naming_the_fix(name, expected, tmp_path, isolated_registry):
    spec_file = tmp_path / "specs.py"
    spec_file.write_text(SPEC_FILE.format(examples=str(EXAMPLES)))
    value = f"{spec_file}:{name}" if name else str(spec_file)
    with pytest.raises(registry.ImplUsageError, match=".*" + expected.replace("(", r"\(").replace(")", r"\)")):
        registry.load_network(value)


def test_a_spec_or_its_factory_registers_with_importable_builders(tmp_path, isolated_registry):
    spec_file = tmp_path / "specs.py"
    spec_file.write_text(SPEC_FILE.format(examples=str(EXAMPLES)))
    spec = registry.load_network(f"{spec_file}:factory")
    assert spec.name == "example_mlp_from_factory" and networks.get(spec.name) is spec
    for styles in spec.builders.values():
        for ref in styles.values():  # a fresh process (a repro script) imports them by path
            path, _, attr = ref.rpartition(":")
            assert Path(path).is_file() and path.endswith("pair.py") and attr in ("torch_pair", "keras_pair"), ref
    assert spec.literals == str(tmp_path / "pair.literals.npz")  # relative to the file --network names
    assert spec.trajectory_window == 1 and spec.confident_head_scale is None  # fixtures/tolerances.PAIR_DEFAULTS


SOME_STATED = '''
import dataclasses, sys
sys.path.insert(0, {examples!r})
import pair
# the laws stated, the weights and counts left out: read off the torch twin
SPEC = dataclasses.replace(pair.SPEC, name="some_stated", canonical_weights=None, param_counts=None, literals=None)
def raises():
    raise RuntimeError("no torch here")
BROKEN = dataclasses.replace(pair.SPEC, name="broken_builder", param_layers=None, literals=None,
                             builders={{"torch": {{"module": raises}}, "keras": pair.SPEC.builders["keras"]}})
'''


def test_left_out_literals_are_read_off_the_torch_twin_and_a_failure_is_a_usage_error(tmp_path, isolated_registry):
    (tmp_path / "some.py").write_text(SOME_STATED.format(examples=str(EXAMPLES)))
    spec = registry.load_network(f"{tmp_path / 'some.py'}:SPEC")
    example = _example_spec()
    assert spec.derived_literals == ("canonical_weights", "param_counts"), spec.derived_literals
    assert spec.canonical_weights == example.canonical_weights and spec.param_counts == example.param_counts
    assert spec.init_laws == example.init_laws and spec.param_layers == example.param_layers  # as stated
    with pytest.raises(registry.ImplUsageError, match="states no param_layers, and reading them off its torch twin "
                                                      "failed: CandidateError: .*no torch here"):
        registry.load_network(f"{tmp_path / 'some.py'}:BROKEN")
    assert networks.get("broken_builder").param_layers is None  # left as registered, not half-filled


def test_an_optimizer_the_oracle_cannot_replay_is_refused_by_the_spec():
    from twinbench.suites import oracle

    assert set(oracle.UPDATES) == set(networks.OPTIMIZER_KINDS)
    sys.path.insert(0, str(EXAMPLES))
    try:
        import pair
    finally:
        sys.path.remove(str(EXAMPLES))
    with pytest.raises(networks.SpecError, match=r"optimizer kind 'rmsprop' \(the float64 oracle replays adadelta, adam, sgd"):
        dataclasses.replace(pair.SPEC, optimizer={"kind": "rmsprop", "lr": 1e-3})
    with pytest.raises(networks.SpecError, match=r"optimizer \(a adam literal needs beta_1, beta_2, epsilon_hat\)"):
        dataclasses.replace(pair.SPEC, optimizer={"kind": "adam", "lr": 1e-3})


def test_the_ci_example_runs_the_commands_this_checkout_has():
    """examples/github-actions.yml: the make target it calls exists, and its pytest command line
    names only options the plugin registers."""
    text = (EXAMPLES / "github-actions.yml").read_text()
    assert "make -C .twinbench data" in text and "\ndata:" in (EXAMPLES.parent / "Makefile").read_text()
    command = text.split("-m pytest", 1)[1].split("\n      - ", 1)[0]
    options = {word.split("=")[0] for word in command.split() if word.startswith("--")}
    from twinbench.suites.plugin import options as plugin_options

    source = Path(plugin_options.__file__).read_text()
    known = {o for o in options if f'"{o}"' in source} | {"--junitxml"}
    assert options and options <= known, sorted(options - known)


BARE = '''
import dataclasses
import pair

def torch_model():
    return pair.torch_pair()["model"]

def keras_model():
    import keras
    return keras.Sequential([keras.Input((pair.IN,)), *pair.keras_layers("gelu")])

NO_RECIPE = dataclasses.replace(pair.SPEC, name="bare_mlp", literals=None, builders={{"torch": {{"module": torch_model}},
    "keras": {{"sequential": keras_model}}}}, train_batch=None, steps_per_epoch=None, last_batch=None,
    budget_epochs=None, lr_schedule=None, optimizer=None)
NO_DATA = dataclasses.replace(pair.SPEC, name="drawn_mlp", data=None, literals={literals!r})
'''


@pytest.mark.e2e
def test_a_pair_without_recipe_or_data_says_what_is_missing(user_folder):
    """No recipe: every recipe check is `no recipe`, the verdict INCOMPLETE (architecture only), and
    nothing crashes. No data: every check but the gates runs on inputs drawn from the input
    description, and convergence is skipped with the reason."""
    (user_folder / "bare.py").write_text(BARE.format(literals=str(user_folder / "pair.literals.npz")))
    run = _pytest(user_folder, "--network", "bare.py:NO_RECIPE", "--network", "bare.py:NO_DATA")
    assert run.returncode == 1, run.stdout[-3000:] + run.stderr[-2000:]
    lines = run.stdout.split("twinbench conformance matrix", 1)[-1].splitlines()
    verdicts = {line.split()[0]: line for line in lines if line.startswith(("torch-", "keras-"))}
    assert set(verdicts) == {"torch-bare_mlp-module", "keras-bare_mlp-sequential", "torch-drawn_mlp-module",
                             "keras-drawn_mlp-sequential"}, lines
    for twin in ("torch-bare_mlp-module", "keras-bare_mlp-sequential"):
        assert "INCOMPLETE (architecture only: no recipe)" in verdicts[twin] and " error" not in verdicts[twin], verdicts
    for twin in ("torch-drawn_mlp-module", "keras-drawn_mlp-sequential"):
        assert " conforms " in verdicts[twin] and "skipped here: GPU, convergence" in verdicts[twin], verdicts
    assert "drawn_mlp has no data (its inputs are drawn from its input description)" in run.stdout


LAYER_NORM = '''
import dataclasses, sys
sys.path.insert(0, {examples!r})
import pair

def torch_with_layer_norm():
    import torch
    r = pair.torch_pair()
    r["model"].act = torch.nn.Sequential(torch.nn.LayerNorm(pair.HIDDEN), torch.nn.GELU())
    return r

SPEC = dataclasses.replace(pair.SPEC, name="layer_norm_mlp", builders={{"torch": {{"module": torch_with_layer_norm}},
                                                                       "keras": pair.SPEC.builders["keras"]}})
'''


def test_a_layer_without_a_partner_is_named_with_its_kind_shapes_and_the_fix(tmp_path, isolated_registry):
    from twinbench.impls.adapter import CandidateError

    (tmp_path / "ln.py").write_text(LAYER_NORM.format(examples=str(EXAMPLES)))
    spec = registry.load_network(f"{tmp_path / 'ln.py'}:SPEC")
    twin = registry.build(registry.reference("torch", spec.name), seed=0)
    with pytest.raises(CandidateError) as err:
        twin.param_layer_map()
    assert ("act.0 (LayerNorm, kind other; weight (64,), bias (64,)) has no partner: the adapters map no layer of "
            "this kind (they map conv, dense, embedding, batchnorm, gru, lstm)") in str(err.value), str(err.value)


@pytest.mark.e2e
def test_the_console_command_gives_the_verdict(user_folder, installed_python):
    """``twinbench check`` (pyproject's console script; ``python -m twinbench`` here, whatever was
    installed when) runs the candidate profile and exits as pytest does; with no subject it is a
    usage error (exit 2)."""
    import tomllib

    scripts = tomllib.loads((EXAMPLES.parent / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"twinbench": "twinbench.cli:main"}
    text = (user_folder / "pair.py").read_text()
    assert "gate_permille=860," in text
    (user_folder / "unreachable.py").write_text(text.replace("gate_permille=860,", "gate_permille=999,"))
    check = [sys.executable, "-m", "twinbench", "check"]
    run, gates = at_once(
        lambda: subprocess.run([*check, "--network", "pair.py:SPEC", "--", "-m", "golden"],
                               cwd=user_folder, capture_output=True, text=True, timeout=600),
        lambda: subprocess.run([installed_python, "-m", "twinbench", "check", "--network", "unreachable.py:SPEC",
                                "--gates", "--report", "gates", "--",
                                "-m", "convergence", "-k", "keras and gate"], cwd=user_folder, capture_output=True,
                               text=True, timeout=600))
    assert run.returncode == 0 and run.stdout.count(" conforms ") == 2, run.stdout[-3000:] + run.stderr[-2000:]
    # a gate out of reach (the installed wheel): rejected by check_accuracy_gate, whose repro (a
    # check that runs through its pytest test) reruns the pair's own test and exits 1
    assert gates.returncode == 1 and "fail  check_accuracy_gate" in gates.stdout, gates.stdout[-3000:]
    script = user_folder / "gates" / "repro" / "keras-example_mlp-sequential.py"
    repro = subprocess.run([installed_python, str(script)], cwd=user_folder.parent, capture_output=True, text=True,
                           timeout=600)
    assert repro.returncode == 1, repro.stdout[-2000:] + repro.stderr[-2000:]
    assert "test_convergence[keras-example_mlp-sequential-check_accuracy_gate]" in repro.stdout, repro.stdout[-2000:]
    bare = subprocess.run([sys.executable, "-m", "twinbench", "check"], cwd=user_folder, capture_output=True, text=True)
    assert bare.returncode == 2 and "check needs --network PATH:NAME" in bare.stderr, bare.stderr

"""The house rules, checked: every check is in the catalogue, test modules are leaves, suites
never import a framework, and the catalogue prints as ``pytest --list-checks`` says."""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from twinbench.fixtures import tolerances as T
from twinbench.suites import catalogue

pytestmark = pytest.mark.selftest

ROOT = Path(__file__).resolve().parent.parent
SUITES = ROOT / "suites"


SAMPLES = SUITES / "plugin_samples"  # candidates a user could write (torch and Keras models), not suite code


def _python_files(*folders):
    return sorted(p for folder in folders if (ROOT / folder).is_dir() for p in (ROOT / folder).rglob("*.py")
                  if SAMPLES not in p.parents)


def _imports(path: Path) -> set:
    """The modules a file imports, fully named (``from twinbench.suites import x`` gives twinbench.suites and twinbench.suites.x)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
    return names


PACKAGES = ("impls", "suites", "fixtures")  # imported as twinbench.<folder> (twinbench/__init__.py)


def _module_name(path: Path) -> str:
    name = path.relative_to(ROOT).with_suffix("").as_posix().replace("/", ".")
    return f"twinbench.{name}" if name.split(".")[0] in PACKAGES else name


def test_every_check_function_is_in_the_catalogue():
    """A function named check_* anywhere in suites/ or tools/ is a check of the catalogue (its
    record names that very function), so that no check runs, or hides, outside the one list."""
    outside = []
    for path in _python_files("suites", "tools") + [ROOT / "conftest.py"]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("check_"):
                record = catalogue.BY_NAME.get(node.name)
                if record is None or record.func.__module__ != _module_name(path):
                    outside.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}")
    assert not outside, "check_* functions outside the catalogue (suites/catalogue.py): " + ", ".join(outside)


def test_every_catalogue_record_is_complete():
    for record in catalogue.CHECKS:
        assert record.family in catalogue.FAMILIES, f"{record.name}: family {record.family!r}"
        assert record.func.__module__.startswith("twinbench.suites.checks."), f"{record.name} lives in {record.func.__module__}"
        assert (SUITES / f"test_{record.group}.py").is_file(), f"{record.name}: no suites/test_{record.group}.py"
        assert record.compares.strip(), f"{record.name}: says nothing of what it compares"
        for name in record.tolerances:
            module, _, attr = (name if name.startswith(("T.", "E.")) else f"T.{name}").partition(".")
            source = T if module == "T" else catalogue.E
            assert hasattr(source, attr), f"{record.name}: tolerance {name} is not in fixtures/"
    for group in catalogue.TWIN_GROUPS:
        text = (SUITES / f"test_{group}.py").read_text()
        assert f'GROUP = "{group}"' in text, f"suites/test_{group}.py does not run the catalogue's {group} group"


@pytest.mark.e2e
def test_list_checks_prints_every_check_with_its_tolerance():
    env = dict(os.environ)
    env.pop("TWINBENCH_IMPL", None)
    done = subprocess.run([sys.executable, "-m", "pytest", "--list-checks"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    listed = [line.split()[0] for line in done.stdout.splitlines() if line.startswith("check_")]
    assert listed == [c.name for c in catalogue.CHECKS], listed
    assert f"{len(catalogue.CHECKS)} in the catalogue" in done.stdout
    assert f"T.FORWARD_ATOL={T.FORWARD_ATOL!r}" in done.stdout and f"T.GRAD_RTOL={T.GRAD_RTOL!r}" in done.stdout


def test_test_modules_are_leaves():
    """No test module imports another, and no library module imports a test module: what two of
    them share lives in a library module."""
    tests = {_module_name(p) for p in SUITES.glob("test_*.py")}
    tests |= {name.removeprefix("twinbench.") for name in tests}  # pytest imports them as suites.test_*
    found = []
    for path in _python_files("suites", "tools", "impls", "fixtures") + [ROOT / "conftest.py"]:
        hits = sorted(n for n in _imports(path) if n in tests and n != _module_name(path))
        if hits:
            found.append(f"{path.relative_to(ROOT)} imports {', '.join(hits)}")
    assert not found, "; ".join(found)


OS_STARTS = ("system", "popen", "fork", "forkpty", "posix_spawn", "posix_spawnp")  # and os.exec*, os.spawn*


def _starts_directly(tree: ast.Module):
    """A predicate: does a node's code start a process itself (subprocess under any import name,
    os.system and its kin, multiprocessing, a process pool)?"""
    sub, sub_names, oses, mp = {"subprocess"}, set(), {"os"}, {"multiprocessing"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                {"subprocess": sub, "os": oses, "multiprocessing": mp}.get(a.name, set()).add(a.asname or a.name)
        elif isinstance(node, ast.ImportFrom) and node.module == "subprocess":
            sub_names |= {a.asname or a.name for a in node.names}

    def starts(n) -> bool:
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in sub_names:
            return True
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and isinstance(n.func.value, ast.Name):
            owner, attr = n.func.value.id, n.func.attr
            return ((owner in sub and attr != "list2cmdline") or owner in mp
                    or (owner in oses and (attr in OS_STARTS or attr.startswith(("exec", "spawn")))))
        return isinstance(n, ast.Name) and n.id == "ProcessPoolExecutor"

    return lambda node: any(starts(n) for n in ast.walk(node))


def _starting_processes(tree: ast.Module) -> set:
    """The module-level names (functions, fixtures, classes, assigned values) of a test module that
    start a process: their code does (``_starts_directly``), or refers to such a name."""
    direct = _starts_directly(tree)
    defs = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            defs[node.name] = node
        elif isinstance(node, ast.Assign):
            defs.update({t.id: node for t in node.targets if isinstance(t, ast.Name)})
    starting = {name for name, node in defs.items() if direct(node)}
    while True:
        more = {name for name, node in defs.items() if name not in starting and _refers(node) & starting}
        if not more:
            return starting
        starting |= more


def _refers(node) -> set:
    """The names a node's code uses, and a function's parameters (fixtures, by name)."""
    used = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
    if isinstance(node, ast.FunctionDef):
        used |= {a.arg for a in node.args.args}
    return used


def _marked_e2e(tree: ast.Module, node: ast.FunctionDef) -> bool:
    module = [n.value for n in tree.body if isinstance(n, ast.Assign)
              and any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in n.targets)]
    return any(isinstance(n, ast.Attribute) and n.attr == "e2e" and isinstance(n.value, ast.Attribute)
               and n.value.attr == "mark" for d in [*node.decorator_list, *module] for n in ast.walk(d))


def test_a_test_that_starts_a_process_is_marked_e2e():
    """``make test`` leaves out the tests marked e2e and ``make selftest`` (CI) runs them, so the
    mark says what a test does: it is on every test that starts a process (a pytest session, a
    repro script, the installed wheel, a probe), itself or through a helper or fixture of its
    module, and on no other."""
    unmarked, needless = [], []
    for path in sorted(SUITES.glob("test_*.py")):
        tree = ast.parse(path.read_text())
        starting = _starting_processes(tree)  # the tests among them: they are module-level functions too
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                starts = node.name in starting
                if starts != _marked_e2e(tree, node):
                    (unmarked if starts else needless).append(f"{path.name}::{node.name}")
    assert not unmarked, f"start a process but are not marked e2e (make test would run them): {unmarked}"
    assert not needless, f"marked e2e but start no process (make test would leave them out): {needless}"


def test_the_process_rule_sees_every_way_to_start_one():
    """The rule above, on a module that starts processes every way it knows, under other import
    names and through helpers; and a subprocess function that starts nothing."""
    tree = ast.parse("import os as o\nimport subprocess as sp\nfrom subprocess import run as go\n"
                     "from concurrent.futures import ProcessPoolExecutor\n"
                     "def a(): sp.check_output(['x'])\ndef b(): go(['x'])\ndef c(): o.system('x')\n"
                     "def d(): o.execv('x', [])\ndef e(): ProcessPoolExecutor()\ndef f(x=a): pass\n"
                     "def g(): sp.list2cmdline(['x'])\nH = {'run': lambda: b()}\ndef i(): H['run']()\n"
                     "def j(): return o.path.join('a')\n")
    assert _starting_processes(tree) == {"a", "b", "c", "d", "e", "f", "H", "i"}


FRAMEWORKS = ("torch", "tensorflow", "keras", "tf_keras", "torchvision", "torchinfo")


def test_suites_never_import_a_framework():
    """suites/ speaks to twins through impls (the adapters, impls.frameworks) and never imports
    torch or TensorFlow itself (the probe scripts of tools/ time torch's kernels directly)."""
    found = []
    for path in _python_files("suites") + [ROOT / "conftest.py"]:
        hits = sorted(n for n in _imports(path) if n.split(".")[0] in FRAMEWORKS)
        if hits:
            found.append(f"{path.relative_to(ROOT)} imports {', '.join(hits)}")
    assert not found, "; ".join(found)


def test_the_conftest_is_a_list_of_plugin_modules():
    text = (ROOT / "conftest.py").read_text()
    assert len(text.splitlines()) <= 60
    tree = ast.parse(text)
    statements = [n for n in tree.body if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))]
    assert [type(n).__name__ for n in statements] == ["Assign"] and statements[0].targets[0].id == "pytest_plugins"


@pytest.mark.e2e
def test_tools_compile_and_edit_no_sys_path(tmp_path):
    """tools/ holds the scripts (run from the repository root as ``python -m tools.NAME``): each
    compiles, and none edits sys.path; reports/ holds no script."""
    import py_compile

    scripts = sorted((ROOT / "tools").glob("*.py"))
    assert scripts, "tools/ holds no script"
    for path in scripts:
        py_compile.compile(str(path), doraise=True, cfile=str(tmp_path / (path.stem + ".pyc")))
        assert "sys.path" not in path.read_text(), f"{path.relative_to(ROOT)} edits sys.path"
    tracked = subprocess.run(["git", "ls-files", "reports"], cwd=ROOT, capture_output=True, text=True)
    stray = [p for p in tracked.stdout.split() if p.endswith((".py", ".sh"))]  # a run's own repro scripts are not tracked
    assert not stray, f"scripts committed under reports/ (they belong in tools/): {stray}"


README = ROOT / "README.md"


def _section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else len(text)]


def test_the_readme_is_a_users_document():
    """At most 350 lines; the quick start is exactly two commands; no commit hashes, dated figures
    or first person (those go to docs/measurements.md)."""
    import re

    text = README.read_text()
    assert len(text.splitlines()) <= 350, f"README.md has {len(text.splitlines())} lines"
    quick = _section("Quick start")
    commands = re.findall(r"```\n(.*?)```", quick, flags=re.S)
    assert len(commands) == 1 and commands[0].split("\n")[:-1] == ["make conform", "make test"], commands
    assert not re.search(r"\b[0-9a-f]{7,40}\b", text.replace("sha256", "")), re.search(r"\b[0-9a-f]{7,40}\b", text)
    assert not re.search(r"\b20\d\d-\d\d-\d\d\b", text), "a dated figure in the README"
    assert not re.search(r"\b(I|I've|I'm|my)\b", text.replace("my_port", "")), "first person in the README"
    assert (ROOT / "docs" / "measurements.md").is_file()


def test_the_readme_layout_names_what_exists():
    """Every path the Layout section names exists (its claims are held by the tests above)."""
    import re

    layout = _section("Layout")
    paths = [p for p in re.findall(r"`([^`\s]+)`", layout)
             if "/" in p or re.fullmatch(r"[\w.-]+\.(py|ini|toml|md)|Makefile", p)]
    assert paths, "the Layout section names no path"
    missing = [p for p in paths if not (list(ROOT.glob(p.rstrip("/"))) if "*" in p else (ROOT / p.rstrip("/")).exists())]
    assert not missing, f"README Layout names paths that do not exist: {missing}"

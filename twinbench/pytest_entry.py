"""The ``pytest11`` entry point: twinbench's options for a command line pytest misreads.

pytest finds its rootdir and pytest.ini from the command line's free arguments *before* it
loads any plugin, so in ``pytest --conform-report /tmp/out`` from the checkout, with /tmp/out
an existing folder, it takes /tmp/out for a test path, looks for an ini file above /tmp/out,
finds none, and never reads pytest.ini's ``-p twinbench.suites.plugin``: the run stops with
"unrecognized arguments" (a folder that does not exist yet is skipped by that search, and
``--conform-report=/tmp/out`` is one argument, so both work without this module).

Entry points are loaded after that search but before the command line is parsed for good. When
pytest.ini's plugin is not loaded by then and pytest runs inside the checkout this package was
installed from, this module loads it (its options are known from then on, so /tmp/out is read
as the option's value) and redoes the search with the free arguments pytest now sees: the
rootdir and pytest.ini it would have found without the option, with their addopts and
pythonpath. Outside the checkout it does nothing, unless the command line names ``--network``,
``--impl`` or ``--conform-report``: a user checking their own pair or port, or the reference
networks, from their own folder. Then it loads the plugin, and pytest runs the suite's
conformance checks (the catalogue's, the gates and the benchmarks) on those subjects, not the
suite's own self-tests, which need a checkout (``_load_for_a_run``; ``OUTSIDE``).
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

PLUGIN = "twinbench.suites.plugin"
HERE = Path(__file__).resolve().parent
CHECKOUT = HERE.parent  # a checkout's root when this package was installed from one (pip install -e)
# The suite's test modules: the checkout's suites/, or inside the package of an installed wheel.
SUITE = next((p for p in (HERE / "suites", CHECKOUT / "suites") if (p / "plugin" / "__init__.py").is_file()), None)


def checkout_for(invocation_dir: Path) -> Path | None:
    """The checkout this package was installed from (editable), when pytest runs inside it."""
    if SUITE != CHECKOUT / "suites":
        return None
    invocation_dir = invocation_dir.resolve()
    return CHECKOUT if invocation_dir == CHECKOUT or CHECKOUT in invocation_dir.parents else None


_loaded_here: list[Path] = []


def pytest_addoption(parser, pluginmanager):
    """Called when pytest registers this entry point: load the suite's plugin if pytest.ini did not."""
    if pluginmanager.get_plugin(PLUGIN) is not None:
        return
    root = checkout_for(Path.cwd())
    if root is None:
        return
    pluginmanager.import_plugin(PLUGIN)
    _loaded_here.append(root)


# A command line naming one of these is a twinbench run, from any folder: a user checking a pair
# or a port, or writing the references' conformance report.
RUN_OPTIONS = ("--network", "--impl", "--conform-report")
# Set on a run loaded from outside a checkout: only the conformance checks of its subjects run.
OUTSIDE = pytest.StashKey[bool]()


def _names_a_run(args) -> bool:
    return any(a == o or a.startswith(o + "=") for a in args for o in RUN_OPTIONS)


def _load_for_a_run(early_config, parser, args) -> None:
    """Outside the checkout, a command line that names one of ``RUN_OPTIONS`` is a user checking
    their own pair or port, or the references, from their own folder: load the suite's plugin,
    run its tests (the suite's test modules when no test path is given), under the checkout's
    pytest.ini when it was installed from one (an installed wheel has none: the plugin registers
    its markers). When it runs the suite's tests (no test path named), collection keeps the
    conformance checks alone (``OUTSIDE``)."""
    if SUITE is None:
        return
    early_config.pluginmanager.import_plugin(PLUGIN)
    _loaded_here.append(SUITE.parent)
    ns = parser.parse_known_args(args, namespace=copy.copy(early_config.option))  # the suite's options known now
    if not ns.file_or_dir:
        args.append(str(SUITE))
        early_config.stash[OUTSIDE] = True  # the suite's tests, not the user's own named ones
    early_config.known_args_namespace = parser.parse_known_args(args, namespace=copy.copy(early_config.option))


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config, parser, args):
    """Redo pytest's rootdir and ini search now that the suite's options are known."""
    if (not _loaded_here and early_config.pluginmanager.get_plugin(PLUGIN) is None
            and _names_a_run(args)):
        _load_for_a_run(early_config, parser, args)
    if not _loaded_here:
        return
    from _pytest.config.findpaths import determine_setup  # pinned pytest (pyproject.toml); tested

    config = early_config
    ns = config.known_args_namespace
    rootpath, inipath, inicfg, ignored = determine_setup(
        inifile=ns.inifilename, override_ini=ns.override_ini, args=ns.file_or_dir,
        rootdir_cmd_arg=ns.rootdir or None, invocation_dir=config.invocation_params.dir)
    if (rootpath, inipath) == (config.rootpath, config.inipath):
        return
    config._rootpath, config._inipath, config._inicfg = rootpath, inipath, inicfg
    config._ignored_config_files = ignored
    config._inicache.clear()
    parser.extra_info["rootdir"] = str(rootpath)
    parser.extra_info["inifile"] = str(inipath)
    args[:] = config._validate_args(config.getini("addopts"), "via addopts config") + args
    config.known_args_namespace = parser.parse_known_args(args, namespace=copy.copy(config.option))
    config._configure_python_path()
    config.pluginmanager.consider_preparse(args, exclude_only=False)
    if config.known_args_namespace.confcutdir is None:  # as pytest sets it: the ini's folder
        config.known_args_namespace.confcutdir = str(inipath.parent if inipath else rootpath)

"""The one place where implementations are chosen.

Reference twins, known-bad examples and user plug-ins (``--impl NAME=PATH:FACTORY``) all go
through the same contract: a zero-argument factory that returns a ``torch.nn.Module``, a
``keras.Model`` (compiled to carry a recipe), or a dict recipe with ``"model"``.
Suites ask this module for ``ImplSpec``s and for ``Twin``s; they never import a framework.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import random
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from twinbench.fixtures import expected as E
from twinbench.impls import networks
from twinbench.impls.adapter import OUTPUT_KINDS, CandidateError, Twin

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class ImplSpec:
    """What to build: a factory reference and what it is for."""

    id: str            # test-id prefix, e.g. "torch-mnist_cnn-sequential"
    network: str       # "mnist_cnn" | "tweet_fasttext"
    framework: str     # "torch" | "keras"
    style: str         # build style, or the plug-in's factory name
    factory: str       # "module.path:attr" or "/path/file.py:attr"
    role: str          # "reference" | "known_bad" | "candidate"
    doc: str = ""


def _ref(framework, network, style, factory):
    return ImplSpec(f"{framework}-{network}-{style}", network, framework, style, factory, "reference")


# The reference twins: every build style each reference network's spec names (impls/networks/),
# in its order: torch's styles, then Keras's.
def references_of(network: networks.NetworkSpec) -> tuple:
    return tuple(_ref(framework, network.name, style, factory)
                 for framework, styles in network.builders.items() for style, factory in styles.items())


REFERENCES = tuple(r for network in networks.references() for r in references_of(network))


def all_references() -> tuple:
    """The reference twins of every network known: the reference networks' (REFERENCES), then
    those of each network registered with impls.networks.register (a user's own pair)."""
    return REFERENCES + tuple(r for name in networks.names() if name not in E.NETWORKS
                              for r in references_of(networks.get(name)))

# The seeds' published defects, shipped so that `make test` shows the suite catching them.
# Which checks must catch each one is registered in fixtures/xfails.py, with the reason.
KNOWN_BAD = (
    ImplSpec("torch-tweet_fasttext-seed000", "tweet_fasttext", "torch", "seed000",
             "twinbench.impls.known_bad.seed000_torch_fasttext:factory", "known_bad",
             "seed 000's PyTorch fastText: AvgPool1d over the embedding axis, Linear(42, 1)"),
    ImplSpec("torch-mnist_cnn-seed003", "mnist_cnn", "torch", "seed003",
             "twinbench.impls.known_bad.seed003_torch_cnn:factory", "known_bad",
             "seed 003's PyTorch CNN: softmax output fed to F.cross_entropy (double softmax)"),
    ImplSpec("keras-mnist_cnn-seed003", "mnist_cnn", "keras", "seed003",
             "twinbench.impls.known_bad.seed003_keras_cnn:factory", "known_bad",
             "seed 003's Keras CNN: per-batch ExponentialDecay, Adadelta rho/epsilon defaults"),
    ImplSpec("keras-mnist_cnn-adadelta_defaults", "mnist_cnn", "keras", "adadelta_defaults",
             "twinbench.impls.known_bad.keras_adadelta_defaults:factory", "known_bad",
             "the reference Keras CNN with Keras's Adadelta defaults (0.001, 0.95, 1e-7), no decay"),
)

# The detection corpus (suites/test_detection.py): candidates written to the --impl contract.
# Each file has a one-line docstring, NETWORK, a ``factory`` and, for faulty ones, CAUGHT_BY:
# fnmatch patterns of the check names that must reject it.
CORPUS_DIRS = {"known_good": ROOT / "impls" / "known_good", "known_bad": ROOT / "impls" / "known_bad"}


@dataclass(frozen=True)
class CorpusEntry:
    spec: ImplSpec
    faulty: bool
    caught_by: tuple    # checks its author says must reject it; () for a correct twin or a mutant
    family: str = "hand-written"   # a mutant's operator family (impls/mutants.py)
    reason: str = ""    # why an equivalent mutant must be accepted


def corpus() -> list:
    """Every candidate under impls/known_good and impls/known_bad, as a candidate spec (compared
    with both frameworks' references, exactly as a user's --impl is)."""
    entries = []
    for kind, folder in CORPUS_DIRS.items():
        for file in sorted(folder.glob("*.py")):
            if file.name == "__init__.py":
                continue
            rel = file.relative_to(ROOT)
            try:
                module = importlib.import_module(f"twinbench.impls.{kind}.{file.stem}")
            except ImportError as exc:  # e.g. a Keras candidate on a machine without TensorFlow
                network = next((n for n in E.NETWORKS if n in file.stem), "mnist_cnn")
                spec = ImplSpec(f"{kind}-{file.stem}", network, "keras", file.stem,
                                f"twinbench.impls.{kind}.{file.stem}:factory", "candidate", f"cannot be imported here: {exc}")
                entries.append(CorpusEntry(spec, kind == "known_bad", ("unimportable",)))
                continue
            doc = (module.__doc__ or "").strip().splitlines()
            network = getattr(module, "NETWORK", None)
            framework = next((f for f in ("torch", "keras") if file.stem.startswith(f) or f"_{f}_" in file.stem), None)
            problems = [what for what, bad in (
                ("a one-line docstring", not doc), (f"NETWORK in {networks.names()}", network not in networks.names()),
                ("a factory", not callable(getattr(module, "factory", None))),
                ("a framework (torch/keras) in its file name", framework is None),
                ("CAUGHT_BY, the checks that must reject it", kind == "known_bad" and not getattr(module, "CAUGHT_BY", ())),
            ) if bad]
            if problems:
                raise ImplUsageError(f"corpus file {rel} lacks " + ", ".join(problems))
            spec = ImplSpec(f"{kind}-{file.stem}", network, framework, file.stem, f"twinbench.impls.{kind}.{file.stem}:factory",
                            "candidate", doc[0])
            entries.append(CorpusEntry(spec, kind == "known_bad", tuple(getattr(module, "CAUGHT_BY", ()))))
    return entries


def mutants() -> list:
    """The generated mutants (impls/mutants.py), as candidate specs judged exactly as the corpus is."""
    from twinbench.impls import mutants as M

    return [CorpusEntry(ImplSpec(f"mutant-{m.id}", m.network, m.framework, m.id, f"twinbench.impls.mutants:{m.key}",
                                 "candidate", m.doc), not m.equivalent, (), m.family, m.equivalent)
            for m in M.all_mutants()]


def by_id(impl_id: str) -> ImplSpec:
    """The reference or known-bad spec with this id."""
    for spec in all_references() + KNOWN_BAD:
        if spec.id == impl_id:
            return spec
    raise KeyError(f"no reference or known-bad impl {impl_id!r}")


def reference(framework: str, network: str) -> ImplSpec:
    """The reference of ``framework`` a twin of ``network`` is compared with: the first build style
    the network's spec names for that framework (pytorch/examples' module; Keras's Sequential)."""
    styles = networks.get(network).builders.get(framework)
    if not styles:
        raise KeyError(f"network {network!r} names no {framework} builder; its spec's builders are "
                       f"{sorted(networks.get(network).builders)}")
    return by_id(f"{framework}-{network}-{next(iter(styles))}")


def partners(spec: ImplSpec) -> list[ImplSpec]:
    """The references a subject is compared with: the other framework's for a reference twin;
    both frameworks' for a candidate (the other framework's first, then its own), including one
    whose factory raised before its framework could be known."""
    other = "keras" if spec.framework == "torch" else "torch"
    if spec.role != "candidate":
        return [reference(other, spec.network)]
    own = spec.framework if spec.framework in ("torch", "keras") else "keras"
    return [reference(other, spec.network), reference(own, spec.network)]


# ------------------------------------------------------------------------------------------
# Plug-ins: --impl NAME=PATH:FACTORY
# ------------------------------------------------------------------------------------------
class ImplUsageError(ValueError):
    """A bad --impl value. The message names the problem and the fix."""


USAGE = ("--impl NAME=PATH:FACTORY (NAME a reference network or one given with --network; PATH a .py file or "
         "module)")


def parse_impl(text: str) -> ImplSpec:
    """Parse, import and probe one --impl value; raise ImplUsageError with a clear message."""
    name, sep, rest = text.partition("=")
    if not sep or ":" not in rest:
        raise ImplUsageError(f"{text!r} is not of the form {USAGE}")
    if name not in networks.names():
        raise ImplUsageError(f"unknown network NAME {name!r} in {text!r}; use one of {', '.join(networks.names())}")
    path, _, attr = rest.rpartition(":")
    factory = load_factory(f"{path}:{attr}", for_option=text)
    try:
        obj = call_factory(factory)
    except Exception:  # the candidate's own fault: every check fails with the error, none is skipped
        framework = "unknown"
    else:
        framework = framework_of(unpack(obj, where=f"{path}:{attr}")[0])
    module = sys.modules.get(getattr(factory, "__module__", None) or "")
    doc = (getattr(module, "__doc__", None) or "").strip().splitlines()
    return ImplSpec(candidate_id(framework, name, f"{path}:{attr}"), name, framework, attr,
                    f"{path}:{attr}", "candidate", doc[0] if doc else "")


def candidate_id(framework: str, network: str, ref: str) -> str:
    """The id of the --impl candidate NETWORK=REF (PATH:FACTORY) whose model is of ``framework``."""
    path, _, attr = ref.rpartition(":")
    stem = Path(path).stem if path.endswith(".py") else path.rsplit(".", 1)[-1]
    return f"candidate-{framework}-{network}-{stem}.{attr}"


def load_factory(ref: str, for_option: str | None = None):
    path, _, attr = ref.rpartition(":")
    where = f" (from {for_option!r})" if for_option else ""
    module = load_module(path, for_option)
    factory = getattr(module, attr, None)
    if factory is None:
        raise ImplUsageError(f"{path} has no factory named {attr!r}{where}")
    if not callable(factory):
        raise ImplUsageError(f"{path}:{attr} is a {type(factory).__name__}, not a zero-argument callable{where}")
    return factory


def load_module(path: str, for_option: str | None = None):
    """The module a PATH (a .py file, imported once per process under a name of its own) or a
    module name refers to."""
    where = f" (from {for_option!r})" if for_option else ""
    if path.endswith(".py"):
        file = Path(path).expanduser()
        if not file.is_file():
            raise ImplUsageError(f"file {path} not found{where}; give a path to a .py file or a module name")
        mod_name = f"twinbench_plugin_{abs(hash(str(file.resolve())))}"
        if mod_name in sys.modules:
            module = sys.modules[mod_name]
        else:
            if str(file.resolve().parent) not in sys.path:  # its sibling modules import, as pytest's prepend mode does
                sys.path.append(str(file.resolve().parent))
            spec = importlib.util.spec_from_file_location(mod_name, file)
            module = importlib.util.module_from_spec(spec)
            sys.modules[mod_name] = module
            try:
                spec.loader.exec_module(module)
            except Exception as exc:
                del sys.modules[mod_name]
                raise ImplUsageError(f"importing {path} raised {type(exc).__name__}: {exc}{where}") from exc
    else:
        try:
            module = importlib.import_module(path)
        except ImportError as exc:
            raise ImplUsageError(f"cannot import module {path!r}{where}: {exc}") from exc
    return module


# ------------------------------------------------------------------------------------------
# A user's own pair: --network PATH:NAME
# ------------------------------------------------------------------------------------------
NETWORK_USAGE = ("--network PATH:NAME (PATH a .py file or module; NAME a NetworkSpec there, or a zero-argument "
                 "function returning one)")


def load_network(text: str, literals: str | None = None) -> networks.NetworkSpec:
    """Import a user's network spec from ``--network PATH:NAME`` and register it. Its builders may be
    functions of that file or "module:factory" strings; each becomes a reference a fresh process can
    import again (the file's absolute path), so repro scripts rebuild the pair. ``literals``: the
    file of its recorded literals in place of the one the spec names (--record-literals FILE)."""
    path, sep, attr = text.rpartition(":")
    if not sep or not path or not attr:
        raise ImplUsageError(f"{text!r} is not of the form {NETWORK_USAGE}")
    if path.endswith(".py"):
        path = str(Path(path).expanduser().resolve())
    module = load_module(path, for_option=text)
    obj = getattr(module, attr, None)
    if obj is None:
        raise ImplUsageError(f"{path} has no attribute {attr!r} (from {text!r}); name the spec object or the function "
                             "that returns it")
    if not isinstance(obj, networks.NetworkSpec) and callable(obj):
        try:
            obj = obj()
        except networks.SpecError as exc:
            raise ImplUsageError(f"{text}: {exc}") from exc
        except Exception as exc:
            raise ImplUsageError(f"{text}: calling {attr}() raised {type(exc).__name__}: {exc}") from exc
    if not isinstance(obj, networks.NetworkSpec):
        raise ImplUsageError(f"{path}:{attr} is a {type(obj).__name__}, not a twinbench.NetworkSpec (or a "
                             f"zero-argument function returning one) (from {text!r})")
    if obj.name in E.NETWORKS:
        raise ImplUsageError(f"{text}: the spec is named {obj.name!r}, a reference network's name; give it a name of "
                             "its own (NetworkSpec(name=...))")
    builders = {fw: {style: _builder_ref(fn, module, path, f"{text}: builders[{fw!r}][{style!r}]")
                     for style, fn in styles.items()} for fw, styles in obj.builders.items()}
    missing = sorted({"torch", "keras"} - set(builders))
    if missing:
        raise ImplUsageError(f"{text}: the spec names no {' or '.join(missing)} builder; a pair needs a torch and a "
                             "Keras builder (builders={'torch': {...}, 'keras': {...}})")
    recording, literals = literals is not None, literals or obj.literals
    if literals is not None and path.endswith(".py"):  # relative to the file --network names
        literals = str((Path(path).parent / Path(literals).expanduser()).resolve())
    spec = replace(obj, builders=builders, literals=literals)
    try:
        if spec.unstated() and literals is not None and not recording:  # the structure recorded in the file
            spec = replace(spec, **{k: v for k, v in recorded_structure(literals).items() if k in spec.unstated()})
        spec = networks.register(spec, source=f"{path}:{attr}")
    except networks.SpecError as exc:
        raise ImplUsageError(f"{text}: {exc}") from exc
    if spec.unstated():  # neither stated nor recorded: its torch twin's, for this run
        from twinbench.impls import derive

        unstated = ", ".join(spec.unstated())
        try:
            spec = derive.derive(spec.name)
        except ImplUsageError:
            raise
        except Exception as exc:  # the user's builder or data raised, or the literals contradict the spec
            raise ImplUsageError(f"{text}: the spec states no {unstated}, and reading them off its torch twin "
                                 f"failed: {type(exc).__name__}: {exc}") from exc
    return spec


def recorded_structure(literals: str) -> dict:
    """The STRUCTURE literals recorded beside a pair's golden outputs (FILE.json's "structure");
    none when the file does not exist yet (the golden check then says how to record them)."""
    import json

    from twinbench.impls import derive

    meta = Path(literals + ".json")
    if not meta.is_file():
        return {}
    try:
        return derive.from_json(json.loads(meta.read_text()).get("structure", {}))
    except (ValueError, OSError) as exc:
        raise ImplUsageError(f"{meta} cannot be read ({exc}): record the literals again with --record-literals "
                             "FILE --force") from exc


def _builder_ref(fn, module, path: str, where: str) -> str:
    """A builder as "PATH:FACTORY" or "module:factory": a function of the spec's own file by that
    file's path; a "module:factory" string naming the file's import name, likewise."""
    if isinstance(fn, str):
        mod, sep, attr = fn.rpartition(":")
        if not sep:
            raise ImplUsageError(f"{where} is {fn!r}; give a function or 'module:factory'")
        return f"{path}:{attr}" if mod == module.__name__ else fn
    if not callable(fn):
        raise ImplUsageError(f"{where} is a {type(fn).__name__}; give a zero-argument function returning the model")
    name = getattr(fn, "__name__", "")
    if getattr(module, name, None) is fn:
        return f"{path}:{name}"
    owner = sys.modules.get(getattr(fn, "__module__", "") or "")
    if owner is not None and getattr(owner, name, None) is fn:
        file = getattr(owner, "__file__", None)
        installed = file is None or any(part in ("site-packages", "dist-packages") for part in Path(file).parts)
        # an installed package by its name; a module of the user's own folders by its path, which a
        # fresh process finds without that folder on its path
        return f"{owner.__name__}:{name}" if installed else f"{Path(file).resolve()}:{name}"
    raise ImplUsageError(f"{where} is {fn!r}, which no import can find again (a lambda or a nested function); "
                         "define it at the top level of a module")


def impls_from_env() -> list[str]:
    """TWINBENCH_IMPL holds one or more NAME=PATH:FACTORY values separated by commas."""
    return [v.strip() for v in os.environ.get("TWINBENCH_IMPL", "").split(",") if v.strip()]


# ------------------------------------------------------------------------------------------
# Building twins
# ------------------------------------------------------------------------------------------
def seed_everything(seed: int) -> None:
    from twinbench.impls.frameworks import keras, torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if keras is not None:
        keras.utils.set_random_seed(seed)


def rng_state(cuda: bool = True):
    """The global random generators' state: python's, numpy's, torch's CPU one and, once CUDA is
    initialised, torch's CUDA ones. A run trained epoch by epoch (suites/training.py) keeps its
    own and restores it before each epoch, so that twins built between its epochs (``build``
    reseeds every generator) do not change the dropout masks of its later epochs. Keras layers
    draw from their own SeedGenerator state, which no reseeding touches. ``cuda=False`` leaves the
    CUDA generators out (a captured CUDA graph holds its own offsets into them)."""
    from twinbench.impls.frameworks import torch

    gpu = torch.cuda.get_rng_state_all() if cuda and torch.cuda.is_initialized() else None
    return random.getstate(), np.random.get_state(), torch.get_rng_state(), gpu


def set_rng_state(state) -> None:
    """Restore what ``rng_state`` returned."""
    from twinbench.impls.frameworks import torch

    py, nps, cpu, gpu = state
    random.setstate(py)
    np.random.set_state(nps)
    torch.set_rng_state(cpu)
    if gpu is not None:
        torch.cuda.set_rng_state_all(gpu)


def call_factory(factory, seed: int = 0):
    seed_everything(seed)
    return factory()


def framework_of(model) -> str:
    for cls in type(model).__mro__:
        mod = cls.__module__ or ""
        if mod.startswith("torch.nn"):
            return "torch"
        if mod.startswith("keras"):
            return "keras"
    raise ImplUsageError(f"the factory returned a {type(model).__module__}.{type(model).__name__}; "
                         "return a torch.nn.Module, a keras.Model or a dict recipe with 'model'")


def unpack(obj, where: str):
    """Split a factory's return value into (model, recipe dict)."""
    if isinstance(obj, dict):
        if "model" not in obj:
            raise ImplUsageError(f"{where} returned a dict without 'model'")
        recipe = dict(obj)
        model = recipe.pop("model")
    else:
        model, recipe = obj, {}
    output = recipe.get("output", "logits")
    if output not in OUTPUT_KINDS:
        raise ImplUsageError(f"{where}: output {output!r} is not one of {', '.join(OUTPUT_KINDS)}")
    framework = framework_of(model)
    if framework == "keras" and set(recipe) - {"output"}:
        raise ImplUsageError(f"{where}: a Keras model carries its recipe through compile(); "
                             f"drop {sorted(set(recipe) - {'output'})} from the dict")
    for key in ("loss", "optimizer", "scheduler"):
        if recipe.get(key) is not None and not callable(recipe[key]):
            raise ImplUsageError(f"{where}: recipe[{key!r}] must be callable")
    return model, recipe


def build(spec: ImplSpec, seed: int = 0) -> Twin:
    """Seed, call the factory, and wrap the result in the framework's adapter. A factory that
    raises is the candidate's fault: CandidateError, which a check reports as a failure."""
    factory = load_factory(spec.factory)
    try:
        obj = call_factory(factory, seed)
    except Exception as exc:
        raise CandidateError(f"the factory {spec.factory} raised {type(exc).__name__}: {exc}") from exc
    model, recipe = unpack(obj, where=spec.factory)
    if framework_of(model) == "torch":
        from twinbench.impls.torch_adapter import TorchTwin

        twin = TorchTwin(spec.id, spec.network, model, output=recipe.get("output", "logits"),
                         channels_last=bool(recipe.get("channels_last", False)),
                         loss=recipe.get("loss"), optimizer=recipe.get("optimizer"),
                         scheduler=recipe.get("scheduler"))
        twin.declared = {k: recipe[k] for k in ("batch_size", "epochs") if k in recipe}
    else:
        from twinbench.impls.keras_adapter import KerasTwin

        twin = KerasTwin(spec.id, spec.network, model, output=recipe.get("output", "logits"))
    twin.spec = spec
    return twin

"""twinbench: proves that a PyTorch model and a Keras model are the same model.

Everything twinbench imports lives under this one name, so that nothing it installs can shadow a
user's own ``fixtures`` or ``suites`` package: ``twinbench.impls`` (the models, adapters and
registry; the only place that imports torch or TensorFlow), ``twinbench.suites`` (the checks and
the pytest plugin) and ``twinbench.fixtures`` (data and literal expectations).

In the repository those three are the top-level folders ``impls/``, ``suites/`` and
``fixtures/`` (the layout the README describes); this package reaches them by adding the
checkout's root to its own path. An installed wheel (``pip install <the repository>``) holds them
inside this package instead (pyproject.toml's ``package-dir``), and the root is never added.

A user's own pair is declared with the names below::

    from twinbench import Input, NetworkSpec, Target
"""

from __future__ import annotations

from pathlib import Path

_HERE = Path(__file__).resolve().parent
_CHECKOUT = _HERE.parent
if not (_HERE / "suites").is_dir() and (_CHECKOUT / "suites" / "plugin" / "__init__.py").is_file() \
        and (_CHECKOUT / "impls" / "networks" / "__init__.py").is_file():
    __path__.append(str(_CHECKOUT))  # noqa: F821 (a package's __path__): twinbench.suites is <checkout>/suites

_PUBLIC = ("NetworkSpec", "Input", "Target", "SpecError")
__all__ = list(_PUBLIC)


def __getattr__(name: str):
    """The spec's names, imported on first use (they import no framework)."""
    if name in _PUBLIC:
        from twinbench.impls import networks

        return getattr(networks, name)
    raise AttributeError(f"module 'twinbench' has no attribute {name!r}")

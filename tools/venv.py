"""Build a checkout's ``.venv`` on an environment shared by every checkout with the same pins.

``make``'s first step. The pinned set (pyproject.toml's dependencies, about 7.8 GB installed:
torch's CUDA build, TensorFlow) is installed once per pin set and Python version into
``$TWINBENCH_DATA/venvs/<key>/`` (default ``~/.cache/twinbench``, next to the data cache), built
in a temporary folder and renamed into place when complete, so an interrupted build is never
used. A checkout's ``.venv`` is then a bare virtual environment (no pip of its own) whose
``twinbench-shared.pth`` puts that environment's site-packages on its path, with this checkout
installed into it (``pip install -e . --no-deps``: the ``pytest11`` entry point of
``twinbench/``). A fresh clone takes seconds instead of reinstalling the set (~70 s).

    python3.11 tools/venv.py .venv            # what make runs
    python3.11 tools/venv.py .venv --no-share # a self-contained .venv (the old way)

A ``.venv`` that already holds its own set (built with ``--no-share``) is updated in place.

Changing a pin changes the key: a new shared environment is built, the old ones are kept (delete
``venvs/<key>`` folders by hand to reclaim the space; each is named by the key printed here).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PIP = ("-m", "pip", "install", "--quiet", "--disable-pip-version-check")


def pins() -> list[str]:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return list(tomllib.load(f)["project"]["dependencies"])


def key(deps: list[str]) -> str:
    """The pins and the interpreter (version, platform) the set is installed for."""
    what = {"deps": deps, "python": sys.version.split()[0], "platform": sysconfig.get_platform()}
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:12]


def cache_root() -> Path:
    return Path(os.environ.get("TWINBENCH_DATA") or Path.home() / ".cache" / "twinbench").expanduser()


def run(*cmd) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True)


def site_packages(venv: Path) -> Path:
    got = subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         check=True, capture_output=True, text=True)
    return Path(got.stdout.strip())


def install_set(venv: Path, deps: list[str]) -> None:
    run(sys.executable, "-m", "venv", venv)
    requirements = venv / "requirements.txt"
    requirements.write_text("\n".join(deps) + "\n")
    run(venv / "bin" / "python", *PIP, "-r", requirements)


def shared_env(deps: list[str]) -> Path:
    """The shared environment for these pins, built first when there is none."""
    home = cache_root() / "venvs"
    final = home / key(deps)
    if (final / ".complete").is_file():
        print(f"tools/venv.py: the pinned set is installed in {final}", flush=True)
        return final
    home.mkdir(parents=True, exist_ok=True)
    building = home / f"{final.name}.building-{os.getpid()}"
    shutil.rmtree(building, ignore_errors=True)
    print(f"tools/venv.py: installing the pinned set into {final} (once per pin set; minutes)", flush=True)
    install_set(building, deps)
    (building / ".complete").write_text("\n".join(deps) + "\n")
    try:
        building.rename(final)
    except OSError:  # another checkout finished the same set first: use that one
        if not (final / ".complete").is_file():
            raise
        shutil.rmtree(building, ignore_errors=True)
    # A venv's scripts name its own folder: the shared set is used through `python -m` only.
    return final


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("venv", type=Path, help="the checkout's virtual environment to build (.venv)")
    parser.add_argument("--no-share", action="store_true", help="install the pinned set into VENV itself")
    args = parser.parse_args(argv)
    venv = args.venv.resolve()
    deps = pins()
    own = (venv / "bin" / "python").exists() and not (venv / "twinbench-shared").is_file()
    if args.no_share or own:  # a .venv that holds its own set (built --no-share) is kept as it is
        if not (venv / "bin" / "python").exists():
            install_set(venv, deps)
        else:
            (venv / "requirements.txt").write_text("\n".join(deps) + "\n")
            run(venv / "bin" / "python", *PIP, "-r", venv / "requirements.txt")
    else:
        shared = shared_env(deps)
        if not (venv / "bin" / "python").exists():
            run(sys.executable, "-m", "venv", "--without-pip", venv)
        (site_packages(venv) / "twinbench-shared.pth").write_text(str(site_packages(shared)) + "\n")
        (venv / "twinbench-shared").write_text(f"{shared}\n")
    run(venv / "bin" / "python", *PIP, "--no-deps", "--no-build-isolation", "-e", ROOT)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``twinbench check``: a pair's or a port's verdict, for people who do not think in pytest.

    twinbench check --network pair.py:SPEC            # your pair: exit 0 conforms, 1 rejected/incomplete
    twinbench check --impl mnist_cnn=my_port.py:factory --gates --report out/

It runs the checks a candidate gets (``pytest --network ... / --impl ...``), without the
convergence gates unless ``--gates``, and prints pytest's verdict lines. Anything after ``--`` goes
to pytest as it is.
"""

from __future__ import annotations

import argparse
import subprocess
import sys


def command(args) -> list[str]:
    """The pytest command line ``twinbench check`` runs."""
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--benchmark-disable"]
    for value in args.network:
        cmd += ["--network", value]
    for value in args.impl:
        cmd += ["--impl", value]
    cmd += ["-m", "not benchmark" if args.gates else "not benchmark and not convergence"]
    if args.report:
        cmd += ["--conform-report", args.report]
    return cmd + list(args.pytest_args)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="twinbench", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="check your pair (--network) or your port (--impl); exit 0 when it "
                                              "conforms, 1 when rejected or incomplete")
    check.add_argument("--network", action="append", default=[], metavar="PATH:NAME",
                       help="your pair: PATH a .py file, NAME its NetworkSpec (README, 'Check your own pair')")
    check.add_argument("--impl", action="append", default=[], metavar="NAME=PATH:FACTORY",
                       help="your port of a network (README, 'Check your own port')")
    check.add_argument("--gates", action="store_true", help="also train to the accuracy gates (convergence)")
    check.add_argument("--report", metavar="DIR", help="write the conformance report and repro scripts to DIR")
    check.add_argument("pytest_args", nargs="*", metavar="-- PYTEST_ARGS", help="passed to pytest as they are")
    args = parser.parse_args(argv)
    if not args.network and not args.impl:
        parser.error("check needs --network PATH:NAME (your pair) or --impl NAME=PATH:FACTORY (your port)")
    return subprocess.call(command(args))


if __name__ == "__main__":
    sys.exit(main())

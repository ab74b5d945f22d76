"""One catalogue check over the whole detection corpus, against the detection literal.

    .venv/bin/python -m tools.check_sweep check_train_mode_parity            # every candidate
    .venv/bin/python -m tools.check_sweep check_train_mode_parity --corpus hand-written

For each candidate (``--corpus``: as pytest's option; default ``all``, every generated mutant
included), every instance of the check the detection self-test runs on it (each partner), run as
the self-test runs it. Prints each instance whose outcome differs from the literal
(fixtures/detection_expected.json: a check named in ``failed`` was a kill), the smallest margin
of a kill (measured / tolerance) with its candidate, the largest margin of a correct candidate
that passes (how near a false rejection it came), the kills only this check makes, and the
counts. Exit status 1 when an outcome differs from the literal, or a correct candidate fails:
what a change to a check does to the verdicts, in a few minutes instead of a whole
``--corpus all`` run (the literal itself is regenerated from a pytest run only).
"""

from __future__ import annotations

import argparse
import sys
import time

from twinbench.impls import frameworks  # torch before TensorFlow
from twinbench.fixtures import detection as DE
from twinbench.impls import registry
from twinbench.suites import catalogue, corpus
from twinbench.suites.catalogue import name_of
from twinbench.suites.helpers import run_one
from twinbench.suites.status import Status


def sweep(check: str, which: str) -> int:
    frameworks.set_determinism()
    if check not in catalogue.BY_NAME:
        raise SystemExit(f"no check named {check!r} in the catalogue; see pytest --list-checks")
    expected = DE.expected()
    changed, kills, only, errors, false, passes = [], [], [], [], [], []
    started, entries = time.perf_counter(), corpus.candidates(which)
    for entry in entries:
        spec, want = entry.spec, expected.get(entry.spec.id, {}).get("failed", [])
        for c in catalogue.checks_for(spec, catalogue.SELFTEST_GROUPS):
            if catalogue.record_of(c).name != check:
                continue
            name, got = name_of(c), run_one(c, lambda: registry.build(spec, seed=0))
            failed = got.status is Status.FAIL
            if got.status is Status.ERROR:
                errors.append(f"{spec.id} {name}: {got.message[:200]}")
            if failed != (name in want):
                changed.append(f"{spec.id} {name}: {'fails' if failed else 'passes'} now, the literal says "
                               f"{'failed' if name in want else 'passed'}: {got.message[:200]}")
            if failed and entry.faulty:
                margin = got.measured.get("margin")
                kills.append((float("inf") if margin is None else margin, spec.id, name))
                if all(n.split("(")[0] == check for n in want) and want:
                    only.append(spec.id)
            if failed and not entry.faulty:
                false.append(f"{spec.id} {name}: {got.message[:200]}")
            if got.status is Status.PASS and not entry.faulty and "margin" in got.measured:
                passes.append((got.measured["margin"], spec.id, name))
    faulty = sum(e.faulty for e in entries)
    print(f"{check} over {len(entries)} candidates ({faulty} faulty, --corpus {which}) in "
          f"{time.perf_counter() - started:.0f} s")
    print(f"kills: {len({k[1] for k in kills})} faulty candidates; smallest margin "
          + (f"{min(kills)[0]:.3g} ({min(kills)[1]}, {min(kills)[2]})" if kills else "none"))
    print("largest margin of a correct candidate that passes: "
          + (f"{max(passes)[0]:.3g} ({max(passes)[1]}, {max(passes)[2]})" if passes else "none measured"))
    print(f"only this check kills: {', '.join(sorted(set(only))) or 'none'}")
    for title, rows in (("false rejections", false), ("errors", errors), ("outcomes that differ from the literal", changed)):
        print(f"{title}: {len(rows)}")
        for row in rows:
            print("  " + row)
    return 1 if changed or false else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("check", help="a check's name, as pytest --list-checks prints it")
    parser.add_argument("--corpus", choices=corpus.CHOICES, default="all")
    args = parser.parse_args(argv)
    return sweep(args.check, args.corpus)


if __name__ == "__main__":
    sys.exit(main())

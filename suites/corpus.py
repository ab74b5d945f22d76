"""Which detection candidates a run judges (``--corpus``), chosen by rule, not by a list.

- ``all`` (``make conform``): the hand-written corpus (``impls/known_bad``, ``impls/known_good``)
  and every generated mutant;
- ``selftest`` (``make selftest``, which CI runs after ``make test``): the hand-written corpus, the
  committed mutant sample ``fixtures.detection.MUTANT_SAMPLE``, and the mutants the ``stratified``
  rule picks beyond it (so that CI judges every candidate the quick sample judges);
- ``hand-written``: the hand-written corpus alone;
- ``stratified`` (the default, ``pytest -m detection`` while editing a check, about 10 min): a
  sample derived from the detection literal by three rules, so that it follows the corpus as the
  corpus grows:
  1. every hand-written correct candidate (impls/known_good): a false rejection costs a user as
     much as a miss;
  2. every faulty candidate that only one check rejects: that check's power rests on it;
  3. for each operator family of the generator (impls/mutants.py's, "equivalent" included) and
     the hand-written faulty corpus, with no candidate from 2, its hardest: the one its literal
     names the fewest rejecting checks for (ties by id; for the equivalent mutants, the first).
  The equivalent mutants beyond their family's one are judged by ``make selftest`` (CI), whose
  committed sample holds them all, and by ``make conform``.
"""

from __future__ import annotations

import pytest

from twinbench.fixtures import detection as DE
from twinbench.impls import frameworks, registry

CHOICES = ("stratified", "selftest", "hand-written", "all")


def _committed_sample(mutants: list) -> list:
    known = {e.spec.style for e in mutants}
    missing = sorted(m for m in set(DE.MUTANT_SAMPLE) - known if not (m.startswith("keras-") and frameworks.keras is None))
    if missing:
        raise pytest.UsageError(f"twinbench.fixtures.detection.MUTANT_SAMPLE names mutants impls/mutants.py no longer "
                                f"generates: {', '.join(missing)}; update the sample")
    return [e for e in mutants if e.spec.style in DE.MUTANT_SAMPLE]


def stratified(entries: list, expected: dict) -> list:
    """The ``stratified`` rule over ``entries`` (every candidate there is), given the literal."""
    def rejecting(entry):
        return expected.get(entry.spec.id, {}).get("failed")

    chosen = {e.spec.id for e in entries if not e.faulty and e.family == "hand-written"}
    chosen |= {e.spec.id for e in entries if e.faulty and rejecting(e) is not None and len(rejecting(e)) == 1}
    families: dict = {}
    for e in entries:
        if e.faulty or e.family != "hand-written":
            families.setdefault(e.family, []).append(e)
    for members in families.values():
        if not any(e.spec.id in chosen for e in members):
            hardest = min(members, key=lambda e: (len(rejecting(e) or ()) or 10**6, e.spec.id))
            chosen.add(hardest.spec.id)
    return [e for e in entries if e.spec.id in chosen]


def candidates(which: str) -> list:
    """The detection candidates ``which`` selects, hand-written first, in a stable order."""
    if which not in CHOICES:
        raise pytest.UsageError(f"--corpus must be one of {', '.join(CHOICES)}, got {which!r}")
    written = registry.corpus()
    if which == "hand-written":
        return written
    mutants = registry.mutants()
    if which == "selftest":
        chosen = {e.spec.id for e in _committed_sample(mutants)}
        chosen |= {e.spec.id for e in stratified(written + mutants, DE.expected())}
        return written + [e for e in mutants if e.spec.id in chosen]
    if which == "all":
        return written + mutants
    return stratified(written + mutants, DE.expected())

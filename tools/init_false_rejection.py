"""How often the initialisation check rejects the reference twins themselves (a false rejection).

    .venv/bin/python -m tools.init_false_rejection [RUNS]

Runs ``check_initial_weights_law``'s test RUNS times (default 50) on each reference build style,
each run from its own block of seeds, and prints per twin the runs rejected and the largest
margin seen (the check rejects above 1). The figures go to docs/measurements.md.
"""

import sys
import time

from twinbench.impls import frameworks  # noqa: F401  (torch before TensorFlow)
from twinbench.fixtures import tolerances as T
from twinbench.impls import registry
from twinbench.suites.checks import initialization as I


def main(runs: int) -> None:
    for spec in registry.REFERENCES:
        t0, rejected, worst = time.time(), 0, 0.0
        for r in range(runs):
            rows, _ = I.judge(spec, spec.network, first_seed=100_000 + r * T.INIT_MAX_BUILDS)  # disjoint seed blocks
            margin = max(d / crit for _, _, _, d, crit, _ in rows)
            worst = max(worst, margin)
            rejected += margin > 1
        print(f"{spec.id}: {rejected} of {runs} runs rejected, largest margin {worst:.3f} "
              f"({time.time() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 50)

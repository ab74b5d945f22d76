"""The markers and warning filters the suite's tests use, registered by the plugin itself.

They live here, not in pytest.ini, so that an installed twinbench run from a user's folder
(``pytest --network pair.py:SPEC``, where no twinbench pytest.ini is read) knows them as the
checkout does; ``--strict-markers`` (pytest.ini's addopts) holds every test to this list.
"""

MARKERS = (
    'frameworks(*names): the frameworks a test needs beyond its subject and partners (skipped with the reason where one is missing)',
    'gpu: needs a CUDA (or MPS) device; skipped with a reason when none is visible, failed under --require-gpu',
    'convergence: trains the references (or --impl candidates) to the accuracy gates, time-to-accuracy (slow: ~7 min)',
    'benchmark: pytest-benchmark timing; runs once untimed under --benchmark-disable',
    "data: verifies the offline data and both frameworks' loaders",
    'shapes: per-layer and output shapes against the literal tables in fixtures/',
    'parameters: per-layer and total parameter counts against literals',
    "initialization: fresh builds' weights against the reference's initialisation law (deselect for a port of trained weights only)",
    'equivalence: forward, loss, gradient, optimizer-step and LR-schedule parity after weight transfer',
    'trajectory: 200 training steps in both frameworks from the same weights; loss curves and final weights compared (slow: ~2 min)',
    'summaries: torchinfo and keras summaries written side by side to reports/',
    'detection: the suite against a corpus of faulty and correct candidates (impls/known_bad, impls/known_good); kill rate to reports/detection.json',
    "golden: today's logits against the recorded golden outputs (fixtures/golden/), for framework upgrades",
    'baseline: the comparison with --compare-baseline NAME, one test per baseline entry, run last',
    'randomness: training-time stochastic ops against the literal list, and training-mode parity with shared masks',
    "selftest: tests of twinbench's own error handling (bad data, bad --impl values)",
    "e2e: starts a process (a pytest session, a repro script, the installed wheel, the twinbench command): "
    "make selftest runs these with the detection self-test, make test leaves them out",
)

# TensorFlow's and Keras's own deprecation warnings, which no twinbench test can act on
FILTERWARNINGS = (
    'ignore::DeprecationWarning:tensorflow.*',
    'ignore::DeprecationWarning:keras.*',
    'ignore::DeprecationWarning:tensorflow_datasets.*',
)


def pytest_configure(config):
    for line in MARKERS:
        config.addinivalue_line("markers", line)
    for line in FILTERWARNINGS:
        config.addinivalue_line("filterwarnings", line)

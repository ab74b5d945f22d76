"""twinbench's pytest plugin, loaded with ``-p twinbench.suites.plugin`` (pytest.ini's addopts) so
that its options are known before pytest reads the command line. Each module has one job:

- ``options``: the options, their checks, the run state, the report header, ``--list-checks``;
- ``collection``: the catalogue parametrized over the twins, selection, skips, expected failures;
- ``session``: each report's status and cell, the verdicts, diagnosis, the exit status;
- ``baselines``: ``--save-baseline`` / ``--compare-baseline``;
- ``terminal``: the matrix and detection summaries, and the report files;
- ``xdist``: a pytest-xdist worker's hand-over to its controller;
- ``markers``: the markers and warning filters (registered here, so an installed run knows them).
"""

from twinbench.impls import frameworks  # noqa: F401  (torch before tensorflow, before anything else imports either)

pytest_plugins = [f"twinbench.suites.plugin.{name}" for name in
                  ("markers", "options", "collection", "session", "baselines", "terminal", "xdist")]

"""twinbench's pytest plugin, loaded with ``-p suites.plugin`` (pytest.ini's addopts) so that its
options are known before pytest reads the command line. Each module has one job:

- ``options``: the options, their checks, the run state, the report header, ``--list-checks``;
- ``collection``: the catalogue parametrized over the twins, selection, skips, expected failures;
- ``session``: each report's status and cell, the verdicts, diagnosis, the exit status;
- ``baselines``: ``--save-baseline`` / ``--compare-baseline``;
- ``terminal``: the matrix and detection summaries, and the report files;
- ``xdist``: a pytest-xdist worker's hand-over to its controller.
"""

from impls import frameworks  # noqa: F401  (torch before tensorflow, before anything else imports either)

pytest_plugins = ["suites.plugin.options", "suites.plugin.collection", "suites.plugin.session",
                  "suites.plugin.baselines", "suites.plugin.terminal", "suites.plugin.xdist"]

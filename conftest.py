"""twinbench's root conftest: a list of plugin modules, nothing else.

The plugin lives in ``suites/plugin/`` (one module per job: options, collection, session,
baselines, terminal, xdist). pytest.ini's ``addopts`` loads it with ``-p twinbench.suites.plugin`` before
the command line is read, so its options are known to the parser with any value; naming it here
too keeps it loaded when pytest runs with another configuration (``-c``, ``-o addopts=``). A
module already loaded by ``-p`` is not loaded twice. It imports torch before TensorFlow.
"""

pytest_plugins = ["twinbench.suites.plugin"]

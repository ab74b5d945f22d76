"""twinbench's installed entry point.

``pip install -e .`` (make's venv does it) installs this package alone: its ``pytest_entry``
module is the ``pytest11`` entry point that keeps twinbench's options known when pytest does
not find the checkout's pytest.ini. The suite itself stays in the checkout (``suites/``,
``impls/``, ``fixtures/``), loaded by pytest.ini's ``-p suites.plugin``.
"""

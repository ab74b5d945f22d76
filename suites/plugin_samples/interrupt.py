"""Simulates Ctrl-C in the third test (loaded with ``-p twinbench.suites.plugin_samples.interrupt``)."""

_calls = []


def pytest_runtest_call(item):
    _calls.append(item.nodeid)
    if len(_calls) == 3:
        raise KeyboardInterrupt

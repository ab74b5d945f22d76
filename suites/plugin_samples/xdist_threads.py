"""Run by suites/test_plugin.py's xdist test under ``pytest -n 2``: the worker's thread counts
(not collected by a normal run: plugin_samples/ holds no test_*.py)."""

import os

import pytest

from twinbench.impls import frameworks


def test_the_worker_runs_on_its_share_of_the_cores(request):
    if not hasattr(request.config, "workerinput"):
        pytest.skip("not a pytest-xdist worker: the one-process run of the same test list")
    want = int(os.environ["TWINBENCH_EXPECT_THREADS"])
    tf = frameworks.tf.config.threading
    got = (frameworks.torch.get_num_threads(), tf.get_intra_op_parallelism_threads(), tf.get_inter_op_parallelism_threads())
    assert got == (want, want, want), got

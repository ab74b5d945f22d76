"""Run by suites/test_plugin.py under ``pytest -n 2``: the worker's thread counts (not collected
by a normal run: plugin_samples/ holds no test_*.py)."""

import os

from impls import frameworks


def test_the_worker_runs_on_its_share_of_the_cores(request):
    assert hasattr(request.config, "workerinput"), "run me under pytest -n 2"
    want = int(os.environ["TWINBENCH_EXPECT_THREADS"])
    tf = frameworks.tf.config.threading
    got = (frameworks.torch.get_num_threads(), tf.get_intra_op_parallelism_threads(), tf.get_inter_op_parallelism_threads())
    assert got == (want, want, want), got

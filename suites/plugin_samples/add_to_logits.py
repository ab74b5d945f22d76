"""A deliberately injected framework regression for the baseline self-test: every torch Linear
layer's output gets +1e-3 (loaded with ``-p twinbench.suites.plugin_samples.add_to_logits``)."""

import torch


def pytest_configure(config):
    original = torch.nn.Linear.forward

    def forward(self, x):
        return original(self, x) + 1e-3

    torch.nn.Linear.forward = forward

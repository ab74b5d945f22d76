"""Seed 000's PyTorch fastText (AStoeffelbauer/PyTorchVsTensorFlow, blogpost.ipynb), as published.

Known defects, each of which twinbench must catch:
- ``nn.AvgPool1d(kernel_size=50)`` on the (N, 42, 50) embedding output averages over the
  embedding axis, not the sequence: (N, 42, 1) where the reference pools to (N, 50);
- so the head is ``Linear(42, 1)``: 1,000,043 parameters against 1,000,051;
- ``.view(32, 42)`` hard-codes batch 32: any other batch size crashes;
- the output is a sigmoid probability, trained with ``BCELoss`` on targets shaped (32,)
  against outputs shaped (32, 1).
"""

import torch
import torch.nn as nn

NETWORK = "tweet_fasttext"
CAUGHT_BY = ("check_output_shape*", "check_layer_shapes*", "check_param_count_per_layer",
             "check_param_count_total", "check_forward_parity*", "check_gradient_parity*",
             "check_optimizer_step_parity*", "check_weight_roundtrip*", "check_transfer_refuses_bad_shapes",
             "check_checkpoint_roundtrip", "check_loss_parity", "check_trajectory_parity*", "check_initial_weights_law",
             "check_layer_options",
             "check_stochastic_ops", "check_train_mode_parity*", "check_optimizer_dynamics*",
             "check_every_random_draw_is_fed", "check_optimizer_options")


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(20000, 50)
        self.avgpool = nn.AvgPool1d(kernel_size=50)
        self.fc = nn.Linear(42, 1)

    def forward(self, x):
        x = self.embedding(x)
        x = self.avgpool(x)
        x = x.view(32, 42)
        x = self.fc(x)
        return torch.sigmoid(x)


def factory():
    criterion = nn.BCELoss()
    return {
        "model": Model(),
        "output": "probs",
        "loss": lambda outputs, targets: criterion(outputs, targets),
        "optimizer": lambda params: torch.optim.Adam(params),
    }

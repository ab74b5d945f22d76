"""fastText tweet classifier in PyTorch: Embedding(20000, 50) -> mean over the 42 positions -> Dense(1).

Inputs are int token ids (N, 42), 0 = padding. The mean runs over all 42 positions, padding
included, exactly as Keras's ``GlobalAveragePooling1D`` does without a mask. The model returns
one logit per tweet; the loss is BCE from logits. The Keras twin is
``impls/keras_tweet_fasttext.py``.
"""

import math
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F

VOCAB_SIZE = 20000
EMBED_DIM = 50
SEQ_LEN = 42
# Recipe: Adam 1e-3, batch 32. Every value explicit.
LR = 1e-3
BETAS = (0.9, 0.999)
# Adam's epsilon in Keras's "epsilon-hat" placement: added to sqrt(v) before bias correction.
# torch adds eps to sqrt(v_hat); the two agree only if torch's eps at step t is
# EPSILON_HAT / sqrt(1 - beta2**t) (3.2e-6 at step 1, 1.3e-7 at step 1000). No constant does
# that, and eps = 0 divides 0 by 0 for embedding rows whose gradient is still zero. Measured
# with torch's eps=1e-8 against Keras's 1e-7: embedding weights 2.2e-3 apart after 3 steps.
EPSILON_HAT = 1e-7
BATCH_SIZE = 32
EPOCHS = 10


class GlobalAveragePool1d(nn.Module):
    """(N, L, C) -> (N, C): the mean over the sequence axis (dim 1)."""

    def forward(self, x):
        return x.mean(dim=1)


class FastText(nn.Module):
    """Build style "module": an ``nn.Module`` subclass."""

    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(VOCAB_SIZE, EMBED_DIM)
        self.pool = GlobalAveragePool1d()
        self.fc = nn.Linear(EMBED_DIM, 1)
        init_weights(self)

    def forward(self, ids):
        x = self.embedding(ids)     # (N, 42, 50)
        x = self.pool(x)            # (N, 50)
        return self.fc(x)           # (N, 1) logits


def build_sequential():
    """Build style "sequential"."""
    model = nn.Sequential(OrderedDict([
        ("embedding", nn.Embedding(VOCAB_SIZE, EMBED_DIM)),
        ("pool", GlobalAveragePool1d()),
        ("fc", nn.Linear(EMBED_DIM, 1)),
    ]))
    init_weights(model)
    return model


def init_weights(model):
    """Written out: embeddings N(0, 1); dense weight and bias U(+-1/sqrt(fan_in))."""
    for m in model.modules():
        if isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, mean=0.0, std=1.0)
        elif isinstance(m, nn.Linear):
            nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5))
            bound = 1 / math.sqrt(m.in_features)
            nn.init.uniform_(m.bias, -bound, bound)


def loss(outputs, targets):
    """BCE from logits; targets (N,) float {0, 1} are shaped like the (N, 1) outputs."""
    return F.binary_cross_entropy_with_logits(outputs, targets.reshape(outputs.shape), reduction="mean")


class AdamEpsilonHat(torch.optim.Adam):
    """torch Adam with the epsilon-hat placement (Kingma & Ba, section 2; Keras, TF1):
    before each step, eps is set to EPSILON_HAT / sqrt(1 - beta2**t)."""

    def __init__(self, params, lr, betas, epsilon_hat):
        super().__init__(params, lr=lr, betas=betas, eps=epsilon_hat, weight_decay=0.0, amsgrad=False,
                         foreach=False)
        self.epsilon_hat, self.t = epsilon_hat, 0

    @torch.no_grad()
    def step(self, closure=None):
        if any(group["capturable"] for group in self.param_groups):
            return self._capturable_step()
        self.t += 1
        for group in self.param_groups:
            group["eps"] = self.epsilon_hat / math.sqrt(1 - group["betas"][1] ** self.t)
        return super().step(closure)

    def _capturable_step(self):
        """The same update with ``capturable=True`` (the speed suite's CUDA-graph variant): the step
        count, bias corrections and eps are float64 tensors on the device, so a captured step
        replays correctly at every t. Each operation mirrors torch's single-tensor Adam above."""
        for group in self.param_groups:
            unsupported = [k for k in ("weight_decay", "amsgrad", "maximize") if group.get(k)]
            if unsupported:
                raise NotImplementedError(f"AdamEpsilonHat's capturable step does not implement {', '.join(unsupported)}")
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = torch.zeros((), dtype=torch.float64, device=p.device)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                step, exp_avg, exp_avg_sq = state["step"], state["exp_avg"], state["exp_avg_sq"]
                step += 1
                exp_avg.lerp_(p.grad, 1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                bias_correction2_sqrt = (1 - beta2 ** step).sqrt()
                step_size = group["lr"] / (1 - beta1 ** step)
                denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(self.epsilon_hat / bias_correction2_sqrt)
                p.sub_(exp_avg / denom * step_size)


def optimizer(params):
    return AdamEpsilonHat(params, lr=LR, betas=BETAS, epsilon_hat=EPSILON_HAT)


def recipe(model):
    return {"model": model, "output": "logits", "loss": loss, "optimizer": optimizer,
            "scheduler": None, "batch_size": BATCH_SIZE, "epochs": EPOCHS}


def module():
    return recipe(FastText())


def sequential():
    return recipe(build_sequential())

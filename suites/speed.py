"""Speed variants that change how training runs must first train like eager: the parity gate.

``graph_parity`` trains the eager twin and the ``graph`` variant (impls/speed/torch_graph.py) of one
torch reference from the same weights, the same batch order and the same dropout stream, three
epochs over 10.5 batches each (33 steps). The half batch puts the epoch's remainder graph and its
warm-up in play; the second epoch the re-capture after the scheduler's step (MNIST) and the
remainder's capture into the shared pool; the third the full-batch graph replayed after that
capture (the tweets, whose graphs are never re-captured). Both are judged
by the suite's own trajectory criteria (fixtures/tolerances.py TRAJECTORY_*): the epoch's mean
loss within the loss tolerance of its last step, and each layer's weights within the weight
tolerance of their movement.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from twinbench.fixtures import tolerances as T
from twinbench.impls import frameworks, networks, registry
from twinbench.suites import training

PARITY_EPOCHS = 3
PARITY_BATCHES = 10.5  # per epoch: ten full batches and a half one


@dataclass
class Parity:
    network: str
    steps: int
    losses: dict = field(default_factory=dict)       # variant -> per-epoch mean losses
    loss_diffs: list = field(default_factory=list)   # per epoch |graph - eager|
    loss_tolerances: list = field(default_factory=list)
    weight_diffs: dict = field(default_factory=dict)  # layer -> max |w_graph - w_eager| / max |w_eager - w_start|
    weight_tolerance: float = 0.0
    captures: int = 0
    eager_steps: int = 0
    capture_seconds: float = 0.0
    runner: dict = field(default_factory=dict)  # StepGraphs.counters(): flat optimizer, GEMM weight gradients

    @property
    def ok(self) -> bool:
        return (all(d <= t for d, t in zip(self.loss_diffs, self.loss_tolerances))
                and all(d <= self.weight_tolerance for d in self.weight_diffs.values()))

    @property
    def exact(self) -> bool:
        return max(self.loss_diffs) == 0 and max(self.weight_diffs.values()) == 0

    def describe(self) -> str:
        worst = max(self.weight_diffs, key=self.weight_diffs.get)
        return (f"{self.steps} steps: mean loss |diff| {max(self.loss_diffs):.3g} (tolerance "
                f"{min(self.loss_tolerances):.3g}), weights {self.weight_diffs[worst]:.3g} of their movement "
                f"at {worst} (tolerance {self.weight_tolerance:.3g}); {self.captures} captures "
                f"({self.capture_seconds:.3f} s), {self.eager_steps} eager warm-up steps; optimizer "
                f"{'on one flat buffer' if self.runner.get('flat_optimizer') else 'per parameter'}, "
                f"{self.runner.get('gemm_wgrad_convs', 0)} conv weight gradients as GEMMs")


def _train(spec, device: str, variant: str, x, y, start, options=None):
    twin = registry.build(spec, seed=0)
    twin.set_weights(start)
    twin.place(device)
    if variant != "eager":
        twin.use_variant(variant)
        twin.graph_options = dict(options or {})
    frameworks.torch.manual_seed(T.TRAJECTORY_DROPOUT_SEED)  # the same dropout stream for both
    losses = [twin.fit_epoch(x, y, epoch, networks.get(spec.network).train_batch, T.TRAJECTORY_SEED)
              for epoch in range(PARITY_EPOCHS)]
    return twin, losses


def _parity_data(network: str) -> tuple:
    """The parity run's rows and start weights: PARITY_BATCHES batches of the training split."""
    x, y = networks.get(network).split("train", int(PARITY_BATCHES * networks.get(network).train_batch))
    return x, y, training.trajectory_start(network)


def graph_parity(spec, device: str, variant: str = "graph", options: dict | None = None) -> Parity:
    """``options``: StepGraphs arguments to force (``flat``, ``gemm_wgrad``); by default its own choice."""
    network = spec.network
    x, y, start = _parity_data(network)
    eager, eager_losses = _train(spec, device, "eager", x, y, start)
    graph, graph_losses = _train(spec, device, variant, x, y, start, options)
    steps = PARITY_EPOCHS * int(np.ceil(PARITY_BATCHES))
    per_epoch = int(np.ceil(PARITY_BATCHES))
    tol = training.free_run_loss_tolerance(network, steps)
    runner = graph.step_graphs
    out = Parity(network, steps, {"eager": eager_losses, variant: graph_losses},
                 [abs(a - b) for a, b in zip(graph_losses, eager_losses)],
                 [float(tol[(e + 1) * per_epoch - 1]) for e in range(PARITY_EPOCHS)],
                 weight_tolerance=training.free_run_weight_tolerance(network, steps - 1),
                 captures=runner.captures, eager_steps=runner.eager_steps, capture_seconds=runner.capture_seconds,
                 runner=runner.counters())
    got, want = graph.get_weights(), eager.get_weights()
    for name, w in want.items():
        moved = float(np.max(np.abs(w - start[name])))
        out.weight_diffs[name] = float(np.max(np.abs(got[name] - w))) / moved if moved else float(
            np.max(np.abs(got[name] - w)))
    return out


def repeat_difference(spec, device: str, variant: str = "graph") -> float:
    """Train ``variant`` twice as the parity run does; the largest |difference| between the two runs'
    epoch losses and weights (0 where its kernels are deterministic)."""
    x, y, start = _parity_data(spec.network)
    runs = [_train(spec, device, variant, x, y, start) for _ in range(2)]
    (a, a_losses), (b, b_losses) = runs
    wa, wb = a.get_weights(), b.get_weights()
    return max([abs(p - q) for p, q in zip(a_losses, b_losses)]
               + [float(np.max(np.abs(wa[k] - wb[k]))) for k in wa])

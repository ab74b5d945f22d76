"""An example of a user's own pair: a small MLP kept in PyTorch and in Keras, checked with

    pytest --network examples/pair.py:SPEC

Linear(20, 64) · GELU · Dropout(0.1) · Linear(64, 4) on synthetic features (a fixed, nonlinear
teacher labels them), SGD with momentum 0.9 at 0.05, batch 32, 5 epochs. Copy this file, put your
own two builders, data and recipe in it, and keep the literals true: the checks hold each twin to
them and to the other twin.

The two twins agree where the frameworks differ by default:
- initialisation: torch's Linear draws U(±1/sqrt(fan_in)) for weight and bias; Keras's Dense
  defaults are Glorot uniform and zeros, so the Keras twin states torch's law;
- GELU: torch's nn.GELU() is the exact erf form; Keras's "gelu" activation is too
  (approximate=False). ``pair_faulty.py`` is this pair with the tanh approximation in Keras;
- dropout: both drop with rate 0.1 and scale the kept units by 1/0.9;
- SGD with momentum: torch keeps b = 0.9 b + g, Keras v = 0.9 v - lr g; the same steps while
  the learning rate is constant;
- the loss: torch's cross_entropy on logits; Keras's SparseCategoricalCrossentropy(from_logits=True).
"""

from __future__ import annotations

import math

import numpy as np

from twinbench import Input, NetworkSpec, Target

B = "B"  # the batch axis in shapes
IN, HIDDEN, CLASSES = 20, 64, 4
TRAIN, TEST = 2000, 512
LR, MOMENTUM, BATCH, EPOCHS = 0.05, 0.9, 32, 5


def data(part: str):
    """(features, class ids) of the "train" or "test" split: standard normal features, the class
    the argmax of a fixed two-layer teacher."""
    rng = np.random.RandomState({"train": 0, "test": 1}[part])
    x = rng.standard_normal((TRAIN if part == "train" else TEST, IN)).astype(np.float32)
    teacher = np.random.RandomState(2)
    w1, w2 = teacher.standard_normal((IN, 4)), teacher.standard_normal((4, CLASSES))
    y = np.argmax(np.tanh(x @ w1 * (2 / math.sqrt(IN))) @ w2, axis=1).astype(np.int64)
    return x, y


# -- PyTorch -----------------------------------------------------------------------------------
def torch_pair():
    import torch
    import torch.nn.functional as F

    class MLP(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.hidden = torch.nn.Linear(IN, HIDDEN)
            self.act = torch.nn.GELU()
            self.drop = torch.nn.Dropout(0.1)
            self.out = torch.nn.Linear(HIDDEN, CLASSES)

        def forward(self, x):
            return self.out(self.drop(self.act(self.hidden(x))))

    return {"model": MLP(), "output": "logits", "loss": F.cross_entropy,
            "optimizer": lambda params: torch.optim.SGD(params, lr=LR, momentum=MOMENTUM),
            "batch_size": BATCH, "epochs": EPOCHS}


# -- Keras -------------------------------------------------------------------------------------
def _uniform(fan_in: int):
    import keras

    bound = 1 / math.sqrt(fan_in)
    return keras.initializers.RandomUniform(-bound, bound)


def keras_layers(gelu):
    import keras

    return [
        keras.layers.Dense(HIDDEN, activation=gelu, name="hidden", kernel_initializer=_uniform(IN),
                           bias_initializer=_uniform(IN)),
        keras.layers.Dropout(0.1, name="drop"),
        keras.layers.Dense(CLASSES, name="out", kernel_initializer=_uniform(HIDDEN), bias_initializer=_uniform(HIDDEN)),
    ]


def keras_compiled(model):
    import keras

    model.compile(optimizer=keras.optimizers.SGD(learning_rate=LR, momentum=MOMENTUM),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def keras_pair():
    import keras

    return keras_compiled(keras.Sequential([keras.Input((IN,)), *keras_layers("gelu")]))


# -- the spec ------------------------------------------------------------------------------------
SPEC = NetworkSpec(
    name="example_mlp",
    input=Input(shape=(IN,), kind="features", draw_range=(-5.0, 5.0), saturated=5.0),
    target=Target(kind="classes", classes=CLASSES),
    builders={"torch": {"module": torch_pair}, "keras": {"sequential": keras_pair}},
    data=data,
    # literals: what each twin must have, layer by layer. They may be left out: --record-literals
    # FILE then records them from the torch twin (these are what it records), with the golden outputs
    output_shape=(B, CLASSES),
    param_layers=(("hidden", "dense", (B, IN), (B, HIDDEN)), ("out", "dense", (B, HIDDEN), (B, CLASSES))),
    canonical_weights={"hidden.kernel": (IN, HIDDEN), "hidden.bias": (HIDDEN,),
                       "out.kernel": (HIDDEN, CLASSES), "out.bias": (CLASSES,)},
    init_laws={"hidden.kernel": ("uniform", 1 / math.sqrt(IN)), "hidden.bias": ("uniform", 1 / math.sqrt(IN)),
               "out.kernel": ("uniform", 1 / math.sqrt(HIDDEN)), "out.bias": ("uniform", 1 / math.sqrt(HIDDEN))},
    param_counts={"hidden": IN * HIDDEN + HIDDEN, "out": HIDDEN * CLASSES + CLASSES},
    total_params=IN * HIDDEN + HIDDEN + HIDDEN * CLASSES + CLASSES,
    non_trainable_params=0,
    stochastic_ops=(("dropout", "element", 0.1, "hidden"),),
    # the recipe, as both twins state it
    train_batch=BATCH, steps_per_epoch=math.ceil(TRAIN / BATCH), last_batch=TRAIN % BATCH, budget_epochs=EPOCHS,
    lr_schedule=lambda epoch: LR,
    # gates: measured over seeds 1-5 (pytest --network examples/pair.py:SPEC -m convergence --full-recipe
    # --seeds 5): both twins 82-87% after epoch 1 and 88.5-91% after epoch 5
    gate_permille=860, agreement_points=3.0, agreement_epochs=2,
    # golden outputs, recorded once: pytest --network examples/pair.py:SPEC --record-literals examples/pair.literals.npz
    literals="pair.literals.npz",
    optimizer={"kind": "sgd", "lr": LR, "momentum": MOMENTUM, "weight_decay": 0.0},
)

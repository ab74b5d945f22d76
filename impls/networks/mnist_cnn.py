"""The pytorch/examples MNIST CNN as a spec: every value is a literal of fixtures/expected.py or
fixtures/tolerances.py, gathered here by name."""

from fixtures import expected as E
from fixtures import tolerances as T
from impls.networks import Input, NetworkSpec, Target

NAME = "mnist_cnn"


def data(part: str):
    """The normalised MNIST split (fixtures/data.py, from the verified wheel), NHWC float32."""
    from fixtures import data as D

    return D.split(NAME, part)


SPEC = NetworkSpec(
    name=NAME,
    input=Input(shape=E.INPUT_SHAPES[NAME][1:], kind="image", draw_range=E.MNIST_DRAW_RANGE,
                saturated=E.MNIST_SATURATED),
    target=Target(kind="classes", classes=E.OUTPUT_SHAPES[NAME][1]),
    builders={
        "torch": {"module": "impls.torch_mnist_cnn:module", "sequential": "impls.torch_mnist_cnn:sequential"},
        "keras": {"sequential": "impls.keras_mnist_cnn:sequential", "functional": "impls.keras_mnist_cnn:functional",
                  "subclass": "impls.keras_mnist_cnn:subclass"},
    },
    data=data,
    output_shape=E.OUTPUT_SHAPES[NAME],
    param_layers=E.PARAM_LAYERS[NAME],
    canonical_weights=E.CANONICAL_WEIGHTS[NAME],
    init_laws=E.INIT_LAWS[NAME],
    param_counts=E.PARAM_COUNTS[NAME],
    total_params=E.TOTAL_PARAMS[NAME],
    non_trainable_params=E.NON_TRAINABLE_PARAMS[NAME],
    optional_layers=E.OPTIONAL_LAYERS[NAME],
    fused_layers={layer: fused for (net, layer), fused in E.FUSED_LAYERS.items() if net == NAME},
    stochastic_ops=E.STOCHASTIC_OPS[NAME],
    flattened_from=E.FLATTENED_FROM[NAME],
    train_batch=E.TRAIN_BATCH[NAME],
    steps_per_epoch=E.STEPS_PER_EPOCH[NAME],
    last_batch=E.LAST_BATCH[NAME],
    budget_epochs=E.BUDGET_EPOCHS[NAME],
    lr_schedule=E.LR_SCHEDULE[NAME],
    optimizer=E.OPTIMIZER[NAME],
    gate_permille=E.GATE_PERMILLE[NAME],
    agreement_points=E.AGREEMENT_POINTS[NAME],
    agreement_epochs=E.AGREEMENT_EPOCHS[NAME],
    flops_per_sample=E.FLOPS_PER_SAMPLE[NAME],
    confident_head_scale=T.CONFIDENT_HEAD_SCALE[NAME],
    trajectory_window=T.TRAJECTORY_WINDOW[NAME],
    trajectory_exact_steps=T.TRAJECTORY_EXACT_STEPS[NAME],
    trajectory_weight_rtol_exact=T.TRAJECTORY_WEIGHT_RTOL_EXACT[NAME],
)

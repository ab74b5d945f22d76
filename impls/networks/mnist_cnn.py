"""The pytorch/examples MNIST CNN as a spec: every value is a literal of fixtures/expected.py or
fixtures/tolerances.py, gathered here by name."""

from fixtures import expected as E
from impls.networks import Input, Target, from_literals

NAME = "mnist_cnn"


def data(part: str):
    """The normalised MNIST split (fixtures/data.py, from the verified wheel), NHWC float32."""
    from fixtures import data as D

    return D.split(NAME, part)


SPEC = from_literals(
    NAME,
    input=Input(shape=E.INPUT_SHAPES[NAME][1:], kind="image", draw_range=E.MNIST_DRAW_RANGE,
                saturated=E.MNIST_SATURATED),
    target=Target(kind="classes", classes=E.OUTPUT_SHAPES[NAME][1]),
    builders={
        "torch": {"module": "impls.torch_mnist_cnn:module", "sequential": "impls.torch_mnist_cnn:sequential"},
        "keras": {"sequential": "impls.keras_mnist_cnn:sequential", "functional": "impls.keras_mnist_cnn:functional",
                  "subclass": "impls.keras_mnist_cnn:subclass"},
    },
    data=data,
)

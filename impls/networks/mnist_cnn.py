"""The pytorch/examples MNIST CNN as a spec: every value is a literal of fixtures/expected.py or
fixtures/tolerances.py, gathered here by name."""

from twinbench.fixtures import expected as E
from twinbench.impls.networks import Input, Target, from_literals

NAME = "mnist_cnn"


def data(part: str):
    """The normalised MNIST split (fixtures/data.py, from the verified wheel), NHWC float32."""
    from twinbench.fixtures import data as D

    return D.split(NAME, part)


SPEC = from_literals(
    NAME,
    input=Input(shape=E.INPUT_SHAPES[NAME][1:], kind="image", draw_range=E.MNIST_DRAW_RANGE,
                saturated=E.MNIST_SATURATED),
    target=Target(kind="classes", classes=E.OUTPUT_SHAPES[NAME][1]),
    builders={
        "torch": {"module": "twinbench.impls.torch_mnist_cnn:module", "sequential": "twinbench.impls.torch_mnist_cnn:sequential"},
        "keras": {"sequential": "twinbench.impls.keras_mnist_cnn:sequential", "functional": "twinbench.impls.keras_mnist_cnn:functional",
                  "subclass": "twinbench.impls.keras_mnist_cnn:subclass"},
    },
    data=data,
)

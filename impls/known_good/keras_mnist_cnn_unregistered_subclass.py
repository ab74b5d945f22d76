"""A Keras subclassed CNN that is not registered with register_keras_serializable: its weights round-trip, its .keras file does not."""

import numpy as np

from twinbench.impls import keras_mnist_cnn as ref

NETWORK = "mnist_cnn"


class PortedNet(ref.keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        (self.conv1, self.conv2, self.pool, self.dropout1, self.flatten,
         self.fc1, self.dropout2, self.fc2) = ref.the_layers()

    def call(self, x, training=False):
        x = self.dropout1(self.pool(self.conv2(self.conv1(x))), training=training)
        x = self.dropout2(self.fc1(self.flatten(x)), training=training)
        return self.fc2(x)


def factory():
    model = PortedNet(name="ported")
    model(np.zeros((1, 28, 28, 1), dtype="float32"))
    return ref.compile_recipe(model)

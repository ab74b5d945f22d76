"""The reference Keras MNIST CNN compiled with Keras's Adadelta defaults (lr 0.001, rho 0.95, epsilon 1e-7) and no decay.

A common port: ``optimizer="adadelta"`` looks like pytorch/examples' ``Adadelta(lr=1.0)`` but
takes steps a thousand times smaller, so the model stays far below the 99% gate in 14 epochs.
"""

import keras

from twinbench.impls import keras_mnist_cnn

NETWORK = "mnist_cnn"
CAUGHT_BY = ("check_lr_schedule_parity*", "check_optimizer_step_parity*", "check_trajectory_parity*",
             "check_optimizer_dynamics*", "check_optimizer_options", "check_fit_path_parity")


def factory():
    model = keras_mnist_cnn.build_sequential()
    model.compile(optimizer=keras.optimizers.Adadelta(),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    return model

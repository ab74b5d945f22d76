"""The reference Keras CNN with Adadelta rho=0.95 (Keras's default) and everything else right."""

import keras

from twinbench.impls import keras_mnist_cnn as ref

NETWORK = "mnist_cnn"
CAUGHT_BY = ("check_optimizer_step_parity*", "check_trajectory_parity*")


def factory():
    model = ref.build_sequential()
    schedule = keras.optimizers.schedules.ExponentialDecay(1.0, decay_steps=938, decay_rate=0.7, staircase=True)
    model.compile(optimizer=keras.optimizers.Adadelta(learning_rate=schedule, rho=0.95, epsilon=1e-6),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model

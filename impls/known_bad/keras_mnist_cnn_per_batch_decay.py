"""The reference Keras CNN with ExponentialDecay(1.0, 938, 0.7) but no staircase: the LR decays a little every batch instead of once per epoch."""

import keras

from twinbench.impls import keras_mnist_cnn as ref

NETWORK = "mnist_cnn"
CAUGHT_BY = ("check_lr_schedule_parity*",)


def factory():
    model = ref.build_sequential()
    schedule = keras.optimizers.schedules.ExponentialDecay(1.0, decay_steps=938, decay_rate=0.7)
    model.compile(optimizer=keras.optimizers.Adadelta(learning_rate=schedule, rho=0.9, epsilon=1e-6),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model

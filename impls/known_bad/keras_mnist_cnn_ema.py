"""The reference Keras CNN whose Adadelta keeps an exponential moving average of the weights (use_ema=True): fit overwrites the weights with the average at its end, so every per-step update is the reference's."""

from impls import keras_mnist_cnn as ref

NETWORK = "mnist_cnn"
CAUGHT_BY = ("check_optimizer_options",)


def factory():
    model = ref.build_sequential()
    schedule = ref.keras.optimizers.schedules.ExponentialDecay(
        initial_learning_rate=ref.LR, decay_steps=ref.STEPS_PER_EPOCH, decay_rate=ref.GAMMA, staircase=True)
    model.compile(optimizer=ref.keras.optimizers.Adadelta(learning_rate=schedule, rho=ref.RHO, epsilon=ref.EPS,
                                                           use_ema=True),
                  loss=ref.keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    return model

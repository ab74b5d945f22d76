"""The reference Keras CNN whose Adadelta clips each gradient to norm 1.0 (clipnorm=1.0): it binds only on gradients larger than that."""

from impls import keras_mnist_cnn as ref

NETWORK = "mnist_cnn"
CAUGHT_BY = ("check_optimizer_options",)


def factory():
    model = ref.build_sequential()
    schedule = ref.keras.optimizers.schedules.ExponentialDecay(
        initial_learning_rate=ref.LR, decay_steps=ref.STEPS_PER_EPOCH, decay_rate=ref.GAMMA, staircase=True)
    model.compile(optimizer=ref.keras.optimizers.Adadelta(learning_rate=schedule, rho=ref.RHO, epsilon=ref.EPS,
                                                           clipnorm=1.0),
                  loss=ref.keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    return model

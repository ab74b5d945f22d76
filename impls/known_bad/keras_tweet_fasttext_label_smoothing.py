"""The reference Keras fastText trained with BinaryCrossentropy(from_logits=True, label_smoothing=0.1)."""

import keras

from twinbench.impls import keras_tweet_fasttext as ref

NETWORK = "tweet_fasttext"
CAUGHT_BY = ("check_loss_parity", "check_gradient_parity*", "check_trajectory_parity*")


def factory():
    model = ref.build_sequential()
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3, epsilon=1e-7),
                  loss=keras.losses.BinaryCrossentropy(from_logits=True, label_smoothing=0.1))
    return model

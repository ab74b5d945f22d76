"""The reference Keras fastText compiled with Adam(amsgrad=True), everything else as the recipe."""

import keras

from twinbench.impls import keras_tweet_fasttext as ref

NETWORK = "tweet_fasttext"
CAUGHT_BY = ("check_optimizer_dynamics*",)


def factory():
    model = ref.build_sequential()
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=ref.LR, beta_1=ref.BETA_1, beta_2=ref.BETA_2,
                                                  epsilon=ref.ADAM_EPSILON, amsgrad=True),
                  loss=keras.losses.BinaryCrossentropy(from_logits=True))
    return model

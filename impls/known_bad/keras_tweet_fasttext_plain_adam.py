"""The reference Keras fastText compiled with keras.optimizers.Adam, as most ports are: fit hands Adam the embedding's gradient as IndexedSlices, and Keras's Adam then moves a repeated id (the padding) ~26x further than torch's dense Adam on the first step."""

import keras

from twinbench.impls import keras_tweet_fasttext as ref

NETWORK = "tweet_fasttext"
CAUGHT_BY = ("check_fit_path_parity",)


def factory():
    model = ref.build_sequential()
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=ref.LR, beta_1=ref.BETA_1, beta_2=ref.BETA_2,
                                                  epsilon=ref.ADAM_EPSILON),
                  loss=keras.losses.BinaryCrossentropy(from_logits=True))
    return model

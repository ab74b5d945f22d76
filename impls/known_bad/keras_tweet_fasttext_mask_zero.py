"""The reference Keras fastText with Embedding(mask_zero=True): GlobalAveragePooling1D then averages only the unmasked positions."""

import keras
from keras import layers

from twinbench.impls import keras_tweet_fasttext as ref

NETWORK = "tweet_fasttext"
CAUGHT_BY = ("check_forward_parity*", "check_gradient_parity*", "check_trajectory_parity*")


def factory():
    _, pool, fc = ref.the_layers()
    embedding = layers.Embedding(20000, 50, mask_zero=True, name="embedding")
    model = keras.Sequential([keras.Input((42,), dtype="int32"), embedding, pool, fc])
    return ref.compile_recipe(model)

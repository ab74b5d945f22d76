"""The reference Keras fastText with GlobalAveragePooling1D(data_format="channels_first"): it pools the 50 embedding features, not the 42 positions."""

import keras
from keras import layers

from twinbench.impls import keras_tweet_fasttext as ref

NETWORK = "tweet_fasttext"
CAUGHT_BY = ("check_layer_shapes*", "check_param_count_per_layer", "check_param_count_total",
             "check_forward_parity*", "check_gradient_parity*")


def factory():
    embedding, _, _ = ref.the_layers()
    model = keras.Sequential([keras.Input((42,), dtype="int32"), embedding,
                              layers.GlobalAveragePooling1D(data_format="channels_first", name="pool"),
                              layers.Dense(1, name="fc")])
    return ref.compile_recipe(model)

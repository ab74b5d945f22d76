"""A Keras fastText whose output is NaN for any tweet that contains the last vocabulary id (19999)."""

import keras
from keras import layers, ops

from twinbench.impls import keras_tweet_fasttext as ref

NETWORK = "tweet_fasttext"
CAUGHT_BY = ("check_forward_parity_hypothesis*",)


class PoisonEdge(layers.Layer):
    """Adds NaN to the logit of rows holding id 19999; passes everything else through."""

    def call(self, inputs):
        ids, logits = inputs
        hit = ops.any(ops.equal(ids, 19999), axis=1, keepdims=True)
        return ops.where(hit, logits * float("nan"), logits)


def factory():
    ids = keras.Input((42,), dtype="int32")
    embedding, pool, fc = ref.the_layers()
    logits = PoisonEdge(name="poison")([ids, fc(pool(embedding(ids)))])
    return ref.compile_recipe(keras.Model(ids, logits))

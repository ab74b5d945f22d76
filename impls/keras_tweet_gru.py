"""GRU tweet classifier in Keras 3 (TensorFlow backend): the twin of ``impls/torch_tweet_gru.py``.

    embedding (20000 x 50) -> GRU(64), its last step -> fc (1 logit)

Every option that differs from torch's is set: ``reset_after=True`` (torch's formula, a (2, 192)
bias), sigmoid and tanh, no dropout of either kind, the sequence read forwards, no mask (the
padding at the end is read, as torch's GRU reads it), and torch's initialisation, U(+-1/8) for the
kernel, the recurrent kernel and both biases where Keras's defaults are glorot, orthogonal and
zeros. The recipe is the fastText twin's (``DenseAdam``, BCE from logits, batch 32).
"""

import math

import keras
import numpy as np
from keras import layers

# The fastText twin's recipe; LR, BETA_1, BETA_2, ADAM_EPSILON and DenseAdam are read here by impls/mutants.py.
from twinbench.impls.keras_tweet_fasttext import (ADAM_EPSILON, BETA_1, BETA_2, EMBED_DIM, LR, SEQ_LEN,  # noqa: F401
                                        VOCAB_SIZE, DenseAdam, compile_recipe)

UNITS = 64
EPOCHS = 10


def uniform(bound):
    return keras.initializers.RandomUniform(-bound, bound)


def the_layers():
    bound = 1 / math.sqrt(UNITS)
    return [
        layers.Embedding(VOCAB_SIZE, EMBED_DIM, mask_zero=False, name="embedding",
                         embeddings_initializer=keras.initializers.RandomNormal(mean=0.0, stddev=1.0)),
        layers.GRU(UNITS, activation="tanh", recurrent_activation="sigmoid", use_bias=True, reset_after=True,
                   dropout=0.0, recurrent_dropout=0.0, return_sequences=False, go_backwards=False,
                   kernel_initializer=uniform(bound), recurrent_initializer=uniform(bound),
                   bias_initializer=uniform(bound), name="gru"),
        layers.Dense(1, activation=None, name="fc",
                     kernel_initializer=keras.initializers.VarianceScaling(1 / 3, "fan_in", "uniform"),
                     bias_initializer=uniform(1 / math.sqrt(UNITS))),
    ]


def build_sequential():
    return keras.Sequential([keras.Input((SEQ_LEN,), dtype="int32")] + the_layers(), name="tweet_gru_sequential")


def build_functional():
    inputs = keras.Input((SEQ_LEN,), dtype="int32", name="ids")
    x = inputs
    for layer in the_layers():
        x = layer(x)
    return keras.Model(inputs, x, name="tweet_gru_functional")


@keras.saving.register_keras_serializable(package="twinbench")
class TweetGRU(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.embedding, self.gru, self.fc = the_layers()

    def call(self, ids, training=False):
        return self.fc(self.gru(self.embedding(ids), training=training))


def sequential():
    return compile_recipe(build_sequential())


def functional():
    return compile_recipe(build_functional())


def subclass():
    model = TweetGRU(name="tweet_gru_subclass")
    model(np.zeros((1, SEQ_LEN), dtype="int32"))  # builds the weights
    return compile_recipe(model)

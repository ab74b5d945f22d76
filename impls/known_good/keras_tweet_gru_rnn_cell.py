"""A GRU tweet classifier in Keras written as RNN(GRUCell(...)) in a functional model, torch's initialisation spelled out."""

import math

import keras

from twinbench.impls.keras_tweet_gru import DenseAdam

NETWORK = "tweet_gru"


def factory():
    bound = 1 / math.sqrt(64)
    uniform = keras.initializers.RandomUniform(-bound, bound)
    ids = keras.Input((42,), dtype="int32")
    x = keras.layers.Embedding(20000, 50, embeddings_initializer=keras.initializers.RandomNormal(stddev=1.0))(ids)
    x = keras.layers.RNN(keras.layers.GRUCell(64, kernel_initializer=uniform, recurrent_initializer=uniform,
                                              bias_initializer=uniform))(x)
    out = keras.layers.Dense(1, kernel_initializer=uniform, bias_initializer=uniform)(x)
    model = keras.Model(ids, out)
    model.compile(optimizer=DenseAdam(learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-7),
                  loss=keras.losses.BinaryCrossentropy(from_logits=True))
    return model

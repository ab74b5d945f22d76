"""Seed 000's Keras fastText (AStoeffelbauer/PyTorchVsTensorFlow): Keras's default initialisers, where torch draws N(0, 1) embeddings.

Its recipe conforms (sigmoid output with binary_crossentropy on probabilities; Adam's Keras
defaults are the recipe's). Its initialisers are Keras's: embeddings U(+-0.05) where torch's
nn.Embedding draws N(0, 1), a glorot-uniform head kernel (bound sqrt(6/51) = 0.343 where torch's
is 1/sqrt(50) = 0.141) and a zero bias. So it starts training from another distribution.
"""

import keras
from keras import layers

NETWORK = "tweet_fasttext"
CAUGHT_BY = ("check_initial_weights_law",)


def factory():
    model = keras.Sequential([
        keras.Input((42,)),
        layers.Embedding(20000, 50),
        layers.GlobalAveragePooling1D(),
        layers.Dense(1, activation="sigmoid"),
    ])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return {"model": model, "output": "probs"}

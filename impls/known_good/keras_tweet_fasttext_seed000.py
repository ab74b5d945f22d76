"""Seed 000's Keras fastText (AStoeffelbauer/PyTorchVsTensorFlow): sigmoid output, binary_crossentropy on probabilities, Adam defaults."""

import keras
from keras import layers

NETWORK = "tweet_fasttext"


def factory():
    model = keras.Sequential([
        keras.Input((42,)),
        layers.Embedding(20000, 50),
        layers.GlobalAveragePooling1D(),
        layers.Dense(1, activation="sigmoid"),
    ])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return {"model": model, "output": "probs"}

"""A Keras fastText with a sigmoid output trained with BinaryCrossentropy(from_logits=True): BCE of probabilities taken as logits.

On the TensorFlow backend Keras warns and quietly takes the sigmoid's own logits while
training (measured: gradients and the 200-step trajectory match the reference), so only the
loss itself, applied to the model's declared probability output, shows the mismatch. On any
path without that rescue (another backend, a custom loop, a loss on saved outputs) the recipe
trains on sigmoid(sigmoid(z)).
"""

import keras
from keras import layers

from twinbench.impls import keras_tweet_fasttext as ref

NETWORK = "tweet_fasttext"
CAUGHT_BY = ("check_loss_parity",)


def factory():
    embedding, pool, _ = ref.the_layers()
    model = keras.Sequential([keras.Input((42,), dtype="int32"), embedding, pool,
                              layers.Dense(1, activation="sigmoid", name="fc")])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3, epsilon=1e-7),
                  loss=keras.losses.BinaryCrossentropy(from_logits=True))
    return {"model": model, "output": "probs"}

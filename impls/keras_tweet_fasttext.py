"""fastText tweet classifier in Keras 3 (TensorFlow backend): the twin of
``impls/torch_tweet_fasttext.py``.

    embedding (20000 x 50) -> global average pool over the 42 positions -> fc (1 logit)

Inputs are int token ids (N, 42). No mask: padding positions count in the mean, as in torch.
The pool's data_format is pinned to channels_last, so a global image_data_format setting
cannot make it pool the wrong axis. Adam runs on dense gradients (``DenseAdam``): in ``fit``,
TensorFlow hands Adam the embedding's gradient as IndexedSlices, one row per occurrence of an id,
and Keras's Adam then adds the square of each occurrence's gradient to v where torch's dense
Adam adds the square of their sum (the padding id, repeated in every tweet, moves ~26x further
on the first step).
"""

import math

import keras
import numpy as np
from keras import layers

VOCAB_SIZE = 20000
EMBED_DIM = 50
SEQ_LEN = 42
LR = 1e-3
BETA_1, BETA_2 = 0.9, 0.999
ADAM_EPSILON = 1e-7
BATCH_SIZE = 32
EPOCHS = 10


@keras.saving.register_keras_serializable(package="twinbench")
class DenseAdam(keras.optimizers.Adam):
    """Keras's Adam given dense gradients, as torch's Adam is: IndexedSlices are summed per row
    first (tf.convert_to_tensor). Its options are Adam's (get_config is unchanged)."""

    def apply(self, grads, trainable_variables=None):
        import tensorflow as tf

        grads = [tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g for g in grads]
        return super().apply(grads, trainable_variables)


def the_layers():
    bound = 1 / math.sqrt(EMBED_DIM)
    return [
        layers.Embedding(VOCAB_SIZE, EMBED_DIM, mask_zero=False, name="embedding",
                         embeddings_initializer=keras.initializers.RandomNormal(mean=0.0, stddev=1.0)),
        layers.GlobalAveragePooling1D(data_format="channels_last", name="pool"),
        layers.Dense(1, activation=None, name="fc",
                     kernel_initializer=keras.initializers.VarianceScaling(1 / 3, "fan_in", "uniform"),
                     bias_initializer=keras.initializers.RandomUniform(-bound, bound)),
    ]


def build_sequential():
    return keras.Sequential([keras.Input((SEQ_LEN,), dtype="int32")] + the_layers(),
                            name="tweet_fasttext_sequential")


def build_functional():
    inputs = keras.Input((SEQ_LEN,), dtype="int32", name="ids")
    x = inputs
    for layer in the_layers():
        x = layer(x)
    return keras.Model(inputs, x, name="tweet_fasttext_functional")


@keras.saving.register_keras_serializable(package="twinbench")
class FastText(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.embedding, self.pool, self.fc = the_layers()

    def call(self, ids, training=False):
        return self.fc(self.pool(self.embedding(ids)))


def compile_recipe(model):
    """Adam 1e-3, BCE from logits."""
    model.compile(
        optimizer=DenseAdam(learning_rate=LR, beta_1=BETA_1, beta_2=BETA_2, epsilon=ADAM_EPSILON, amsgrad=False),
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
        metrics=[keras.metrics.BinaryAccuracy(threshold=0.0)],
    )
    return model


def sequential():
    return compile_recipe(build_sequential())


def functional():
    return compile_recipe(build_functional())


def subclass():
    model = FastText(name="tweet_fasttext_subclass")
    model(np.zeros((1, SEQ_LEN), dtype="int32"))  # builds the weights
    return compile_recipe(model)

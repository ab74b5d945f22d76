"""A Keras fastText whose Model subclass densifies the gradients in its own train_step, so fit's Adam sees torch's dense gradients (written unlike the reference's DenseAdam)."""

import math

import keras
import tensorflow as tf

NETWORK = "tweet_fasttext"


class FastText(keras.Model):
    def __init__(self):
        super().__init__()
        b = 1 / math.sqrt(50)
        self.embed = keras.layers.Embedding(20000, 50, embeddings_initializer=keras.initializers.RandomNormal(0.0, 1.0))
        self.pool = keras.layers.GlobalAveragePooling1D()
        self.head = keras.layers.Dense(1, kernel_initializer=keras.initializers.RandomUniform(-b, b),
                                       bias_initializer=keras.initializers.RandomUniform(-b, b))

    def call(self, ids, training=False):
        return self.head(self.pool(self.embed(ids)))

    def train_step(self, data):
        x, y = data
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.compute_loss(x=x, y=y, y_pred=y_pred, training=True)
        grads = [tf.convert_to_tensor(g) for g in tape.gradient(loss, self.trainable_variables)]  # IndexedSlices -> dense
        self.optimizer.apply(grads, self.trainable_variables)
        return {"loss": loss}


def factory():
    model = FastText()
    model(tf.zeros((1, 42), tf.int32))
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3, epsilon=1e-7),
                  loss=keras.losses.BinaryCrossentropy(from_logits=True))
    return model

"""The reference Keras CNN in a Sequential subclass whose train_step calls the model without training=True: fit trains with dropout off, every per-step check still sees the reference."""

import keras
import tensorflow as tf

from twinbench.impls import keras_mnist_cnn as ref

NETWORK = "mnist_cnn"
CAUGHT_BY = ("check_fit_path_parity",)


class Trainer(keras.Sequential):
    def train_step(self, data):
        x, y = data
        with tf.GradientTape() as tape:
            y_pred = self(x)  # training=True forgotten: the dropout layers are off in fit
            loss = self.compute_loss(x=x, y=y, y_pred=y_pred)
        grads = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
        return {"loss": loss}


def factory():
    model = Trainer([keras.Input((28, 28, 1))] + ref.the_layers())
    schedule = keras.optimizers.schedules.ExponentialDecay(
        initial_learning_rate=ref.LR, decay_steps=ref.STEPS_PER_EPOCH, decay_rate=ref.GAMMA, staircase=True)
    model.compile(optimizer=keras.optimizers.Adadelta(learning_rate=schedule, rho=ref.RHO, epsilon=ref.EPS),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model

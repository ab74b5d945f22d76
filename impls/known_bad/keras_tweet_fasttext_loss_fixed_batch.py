"""The reference Keras fastText whose loss sums the batch's BCE and divides by 32, the recipe's batch size: right on the recipe's batches of 32, wrong on the epoch's last batch (28 tweets) and on any other size."""

import keras

from twinbench.impls import keras_tweet_fasttext as ref

NETWORK = "tweet_fasttext"
CAUGHT_BY = ("check_loss_parity",)


class SumOver32(keras.losses.Loss):
    def __init__(self):
        super().__init__(name="bce_sum_over_32", reduction="sum")

    def call(self, y_true, y_pred):
        y_true = keras.ops.reshape(keras.ops.cast(y_true, y_pred.dtype), keras.ops.shape(y_pred))
        return keras.losses.binary_crossentropy(y_true, y_pred, from_logits=True) / 32.0


def factory():
    model = ref.build_sequential()
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=ref.LR, beta_1=ref.BETA_1, beta_2=ref.BETA_2,
                                                  epsilon=ref.ADAM_EPSILON),
                  loss=SumOver32())
    return model

"""A torch fastText built in float64 (model.double()): its outputs are float64, not float32."""

from twinbench.impls import torch_tweet_fasttext as ref

NETWORK = "tweet_fasttext"
CAUGHT_BY = ("check_output_shape*",)


def factory():
    return ref.recipe(ref.FastText().double())

"""The reference torch fastText whose embedding renormalises looked-up rows to norm 1 or less (nn.Embedding(max_norm=1.0)): N(0, 1) rows of 50 have norm ~7, so every row seen is rescaled in place."""

from twinbench.impls import torch_tweet_fasttext as ref

NETWORK = "tweet_fasttext"
CAUGHT_BY = ("check_layer_options",)


def factory():
    model = ref.FastText()
    model.embedding.max_norm = 1.0
    return ref.recipe(model)

"""The reference torch fastText with Linear(50, 1, bias=False) (a missing bias)."""

from twinbench.impls import torch_tweet_fasttext as ref

NETWORK = "tweet_fasttext"
CAUGHT_BY = ("check_param_count_per_layer", "check_param_count_total", "check_forward_parity*",
             "check_weight_roundtrip*")


class FastText(ref.FastText):
    def __init__(self):
        super().__init__()
        self.fc = ref.nn.Linear(50, 1, bias=False)


def factory():
    return ref.recipe(FastText())

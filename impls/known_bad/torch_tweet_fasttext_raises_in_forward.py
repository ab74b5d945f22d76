"""A torch fastText whose forward raises on batches that are not a multiple of 8."""

from twinbench.impls import torch_tweet_fasttext as ref

NETWORK = "tweet_fasttext"
CAUGHT_BY = ("check_output_shape(batch=[17])", "check_layer_shapes(batch=[17])", "check_layer_shapes_hypothesis",
             "check_forward_parity_hypothesis*")


class FastText(ref.FastText):
    def forward(self, ids):
        if len(ids) % 8:
            raise ValueError(f"batch {len(ids)} is not a multiple of 8")
        return super().forward(ids)


def factory():
    return ref.recipe(FastText())

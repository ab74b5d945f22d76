"""The GRU tweet classifier as a spec: the fastText network's tweets (its input, target and data),
a GRU in place of the mean; every other value is a literal of fixtures/expected.py or
fixtures/tolerances.py, gathered here by name."""

from twinbench.fixtures import expected as E
from twinbench.impls.networks import from_literals
from twinbench.impls.networks import tweet_fasttext as tweets

NAME = "tweet_gru"

SPEC = from_literals(
    NAME,
    input=tweets.SPEC.input,
    target=tweets.SPEC.target,
    builders={
        "torch": {"module": "twinbench.impls.torch_tweet_gru:module", "sequential": "twinbench.impls.torch_tweet_gru:sequential"},
        "keras": {"sequential": "twinbench.impls.keras_tweet_gru:sequential", "functional": "twinbench.impls.keras_tweet_gru:functional",
                  "subclass": "twinbench.impls.keras_tweet_gru:subclass"},
    },
    data=tweets.data,
    majority_percent=E.TWEETS_MAJORITY_PERCENT,
)

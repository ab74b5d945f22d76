"""The reference torch fastText whose Adam puts the head (fc) in its own param group at lr 2e-3, the embedding at the recipe's 1e-3."""

from twinbench.impls import torch_tweet_fasttext as ref

NETWORK = "tweet_fasttext"
CAUGHT_BY = ("check_optimizer_dynamics*", "check_optimizer_step_parity*", "check_trajectory_parity*")


def factory():
    recipe = ref.module()
    model = recipe["model"]

    def optimizer(params):  # the twin passes model.parameters(); the port regroups them by layer
        groups = [{"params": list(model.embedding.parameters())},
                  {"params": list(model.fc.parameters()), "lr": 2e-3}]
        return ref.AdamEpsilonHat(groups, lr=ref.LR, betas=ref.BETAS, epsilon_hat=ref.EPSILON_HAT)

    recipe["optimizer"] = optimizer
    return recipe

"""The reference torch CNN with Adadelta's learning rate 1% high (1.01): a fault at the edge of what trajectories can see."""

from twinbench.impls import torch_mnist_cnn as ref

NETWORK = "mnist_cnn"
CAUGHT_BY = ("check_trajectory_parity*",
             "check_optimizer_dynamics*")


def factory():
    recipe = ref.recipe(ref.Net())
    recipe["optimizer"] = lambda params: ref.torch.optim.Adadelta(params, lr=ref.LR * 1.01, rho=ref.RHO, eps=ref.EPS,
                                                                  weight_decay=ref.WEIGHT_DECAY)
    return recipe

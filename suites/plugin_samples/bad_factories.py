"""Broken factories for the --impl self-tests."""


def raises():
    raise RuntimeError("boom in factory")


def wrong_type():
    return 42


def no_model():
    return {"output": "logits"}


not_callable = 3


def scheduler_adds_a_group():
    """The reference torch CNN whose scheduler adds a param group (fc2, "unfrozen") at epoch 3."""
    import torch

    from twinbench.impls import torch_mnist_cnn as ref

    model = ref.Net()

    class Unfreeze(torch.optim.lr_scheduler.StepLR):
        def step(self, epoch=None):
            super().step(epoch)
            if self.last_epoch == 3:
                self.optimizer.add_param_group({"params": list(model.fc2.parameters())})

    def optimizer(params):
        return torch.optim.Adadelta([p for n, p in model.named_parameters() if not n.startswith("fc2")],
                                    lr=ref.LR, rho=ref.RHO, eps=ref.EPS)

    return dict(ref.recipe(model), optimizer=optimizer, scheduler=lambda opt: Unfreeze(opt, 1, ref.GAMMA))

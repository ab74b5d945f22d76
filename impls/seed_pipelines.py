"""The seeds' own input pipelines, for comparison with ours in a benchmark (never an assert).

- torch: ``torchvision.datasets.MNIST`` with ``transforms.Compose([ToTensor(), Normalize(...)])``
  read through a ``DataLoader``: every sample is converted and normalised in Python, per step.
- Keras: ``model.fit`` on numpy arrays, Keras building its own pipeline each call.

Ours build tensors once (``Twin.fit_epoch``). Both sides train the same reference model for the
same number of steps, so the difference is the pipeline.
"""

import torch
from torch.utils.data import DataLoader, Subset
from torchvision import transforms
from torchvision.datasets import MNIST

from fixtures import data as D
from fixtures import expected as E


def torch_dataloader_steps(twin, steps: int, batch_size: int = 64, seed: int = 0) -> None:
    """``steps`` training steps of a torch twin fed by the seed's DataLoader pipeline."""
    D.ensure_mnist_idx()
    mean, std = E.MNIST_NORMALISATION
    dataset = MNIST(str(D.mnist_root()), train=True, download=False,
                    transform=transforms.Compose([transforms.ToTensor(), transforms.Normalize((mean,), (std,))]))
    loader = DataLoader(Subset(dataset, range(steps * batch_size)), batch_size=batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(seed))
    opt = twin._optimizer()
    twin.model.train(True)
    for images, labels in loader:
        opt.zero_grad(set_to_none=True)
        twin._loss(twin.model(images), labels).backward()
        opt.step()


def keras_numpy_fit_steps(twin, steps: int, batch_size: int = 64) -> None:
    """``steps`` training steps of a Keras twin through ``model.fit`` on numpy arrays."""
    x, y = D.split("mnist_cnn", "train", steps * batch_size)
    twin.model.fit(x, y, batch_size=batch_size, epochs=1,
                   shuffle=True, verbose=0)

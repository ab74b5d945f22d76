"""The seeds' own input pipelines, for comparison with ours in a benchmark (never an assert).

- torch: ``torchvision.datasets.MNIST`` with ``transforms.Compose([ToTensor(), Normalize(...)])``
  read through a ``DataLoader``: every sample is converted and normalised in Python, per step.
- Keras: ``model.fit`` on numpy arrays, Keras building its own pipeline each call.

Ours build tensors once (``Twin.fit_epoch``). Both sides train the same reference model for the
same number of steps, so the difference is the pipeline.
"""

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from twinbench.fixtures import data as D
from twinbench.fixtures import expected as E


def torch_dataloader_steps(twin, steps: int, batch_size: int = 64, seed: int = 0) -> None:
    """``steps`` training steps of a torch twin fed by the seed's DataLoader pipeline."""
    from torchvision import transforms  # here: the lent GPU image has no torchvision
    from torchvision.datasets import MNIST

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


class _ExamplesMNIST(Dataset):
    """pytorch/examples' training set, torchvision-free: each item converts one uint8 image in
    Python as ``ToTensor()`` then ``Normalize((0.1307,), (0.3081,))`` do."""

    def __init__(self):
        self.images, self.labels = D.mnist_idx_arrays("train")
        self.mean, self.std = E.MNIST_NORMALISATION

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        x = torch.from_numpy(np.array(self.images[i], dtype=np.uint8)).unsqueeze(0).float().div(255)  # ToTensor
        return (x - self.mean) / self.std, int(self.labels[i])                                          # Normalize


def examples_pipeline_epoch(twin, batch_size: int = 64, seed: int = 0, log_interval: int = 10) -> None:
    """One epoch of pytorch/examples mnist/main.py's training loop on the twin's device: a
    DataLoader (shuffle, 1 worker, pin_memory, as its CUDA kwargs) over per-sample transforms,
    each batch copied to the device, the loss read back every ``log_interval`` batches (its
    logging). torchvision is replaced by the equivalent per-sample conversion, since the lent GPU
    image has none; the model, loss and optimizer are the twin's recipe."""
    loader = DataLoader(_ExamplesMNIST(), batch_size=batch_size, shuffle=True, num_workers=1, pin_memory=True,
                        generator=torch.Generator().manual_seed(seed))
    opt = twin._optimizer()
    twin.model.train(True)
    for batch_idx, (images, labels) in enumerate(loader):
        images, labels = images.to(twin.device), labels.to(twin.device)
        opt.zero_grad()
        loss = twin._loss(twin.model(images), labels)
        loss.backward()
        opt.step()
        if batch_idx % log_interval == 0:
            loss.item()


def examples_batch(n: int) -> torch.Tensor:
    """The first ``n`` training images as pytorch/examples' DataLoader batches them (per-sample
    ToTensor and Normalize, then default_collate's stack): its values and its memory layout."""
    from torch.utils.data import default_collate

    data = _ExamplesMNIST()
    return default_collate([data[i] for i in range(n)])[0]

import pytest
import torch
from darwinian_upgrades import config as config_mod
from torch.utils.data import TensorDataset


def toy_images(num_classes: int = 6, per_class: int = 8, seed: int = 0) -> TensorDataset:
    """Class templates plus noise, [N, 3, 16, 16], in memory (fast training tests)."""
    g = torch.Generator().manual_seed(seed)
    templates = torch.randn(num_classes, 3, 16, 16, generator=g)
    labels = torch.arange(num_classes).repeat_interleave(per_class)
    images = templates[labels] + 0.5 * torch.randn(len(labels), 3, 16, 16, generator=g)
    return TensorDataset(images, labels)


@pytest.fixture
def tiny_cfg():
    def make(*overrides: str):
        return config_mod.load(
            "tiny",
            ["train.batch_size=16", "train.steps=4", "train.old_steps=4", "train.log_every=2", *overrides],
        )

    return make

"""Input transforms and the feature cache.

With a frozen extractor the features of every image are computed once. Caching drops the training augmentation
of CIFAR/NOD (RandomResizedCrop + HFlip); ``augment_views=K`` caches K augmented views of every training image
instead, and training draws one at random each time an image is used.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from curriculum_cl.data.datasets import ImageSplit
from visioncore.files import atomic_path

STATS = {
    "mnist": ((0.1307,), (0.3081,)),
    "fashion-mnist": ((0.5,), (0.5,)),
    "digits": ((0.5,), (0.5,)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}


class Transform:
    """uint8 ``[C, H, W]`` -> normalised float: the paper's inputs. MNIST-like: Resize(s), MNIST/0.5 statistics,
    grey expanded to 3 channels; CIFAR/NOD: eval Resize(256/224 * s) -> CenterCrop(s), train RandomResizedCrop(s)
    + HFlip (torchvision), ImageNet statistics. ``image_size`` 0 keeps the size. Eval ops are plain torch (no
    torchvision import on the digits path)."""

    def __init__(self, kind: str, image_size: int, channels: int, *, train: bool):
        mean, std = STATS[kind]
        self.mean = torch.tensor(mean).view(-1, 1, 1)
        self.std = torch.tensor(std).view(-1, 1, 1)
        self.kind, self.size, self.channels, self.train = kind, image_size, channels, train
        self.augment = None
        if train and kind == "imagenet" and image_size:
            from torchvision.transforms import v2

            self.augment = v2.Compose(
                [v2.RandomResizedCrop(image_size, antialias=True), v2.RandomHorizontalFlip()]
            )

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        if self.augment is not None:
            img = self.augment(img)
        x = img.float() / 255.0
        if self.size and self.augment is None:
            x = self._resize(x)
        x = (x - self.mean) / self.std
        if self.channels == 3 and x.shape[0] == 1:
            x = x.expand(3, *x.shape[-2:])
        elif self.channels == 1 and x.shape[0] == 3:
            x = (0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2])[None]
        return x

    def _resize(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind != "imagenet":
            return F.interpolate(x[None], size=(self.size, self.size), mode="bilinear", antialias=True)[0]
        h, w = x.shape[-2:]
        short = round(self.size * 256 / 224)
        new = (short, max(1, round(w * short / h))) if h <= w else (max(1, round(h * short / w)), short)
        x = F.interpolate(x[None], size=new, mode="bilinear", antialias=True)[0]
        top, left = (new[0] - self.size) // 2, (new[1] - self.size) // 2
        return x[:, top : top + self.size, left : left + self.size]


def make_transform(kind: str, image_size: int, channels: int, *, train: bool) -> Transform:
    return Transform(kind, image_size, channels, train=train)


class TransformedSplit(torch.utils.data.Dataset):
    def __init__(self, split: ImageSplit, transform):
        self.split, self.transform = split, transform

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int):
        img, label = self.split[i]
        if img.shape[0] == 4:
            img = img[:3]
        return self.transform(img), label


@torch.no_grad()
def extract_features(
    extractor: torch.nn.Module,
    split: ImageSplit,
    transform,
    *,
    batch_size: int = 64,
    embed: bool = False,
    progress=None,
) -> torch.Tensor:
    """Features [N, D] of every image of ``split`` (``embed=True``: the designer embedding)."""
    extractor.eval()
    weight = next(extractor.parameters())  # inputs follow the extractor's device and dtype
    device, dtype = weight.device, weight.dtype
    loader = torch.utils.data.DataLoader(
        TransformedSplit(split, transform), batch_size=batch_size, shuffle=False
    )
    fn = extractor.embed if embed else extractor
    batches = loader if progress is None else progress(loader)
    return (
        torch.cat([fn(x.to(device, dtype)).float().cpu() for x, _ in batches])
        if len(split)
        else torch.zeros(0)
    )


def cached(path: Path, compute) -> dict[str, torch.Tensor]:
    """Load the tensors at ``path`` or compute and save them (safetensors)."""
    if path.is_file():
        return load_file(str(path))
    tensors = {k: v.contiguous() for k, v in compute().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp))
    return tensors

"""Feature extractors of the continual learner and of the curriculum designer.

- ``squeezenet1_1``: the paper's learner and designer embedder (torchvision's constructor, ``weights=None``, plus a
  local weights file; the paper used a private ImageNet-100 checkpoint). Learner features: the 512-channel last fire
  map, globally average-pooled (the paper's trainable head is a 1x1 conv 512 -> 10 on that map followed by ReLU and
  pooling; with cached pooled features our head is the linear map, see README "Deviations"). Designer embedding
  ("layer 12"): the full network's 1000-d pooled, post-ReLU classifier output.
- ``resnet18``: visioncore's timm ResNet-18 with local weights, pooled 512-d features (designer: the same).
- ``smallcnn``: a tiny CNN (2 conv layers of 16 channels, 64-d post-ReLU penultimate) for digits-scale work: the
  acceptance experiment pre-trains it on digits 5-9 and freezes it.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from visioncore.hub import CheckpointError, PretrainedMixin, read_state_dict

EXTRACTORS = ("squeezenet1_1", "resnet18", "smallcnn")


class SmallCNN(nn.Module, PretrainedMixin):
    """conv3x3(16) - ReLU - conv3x3(16) - ReLU - maxpool2 - flatten - linear(embed_dim) - ReLU [- linear(classes)]."""

    def __init__(
        self,
        in_channels: int = 1,
        image_size: int = 8,
        width: int = 16,
        embed_dim: int = 64,
        num_classes: int = 5,
    ):
        super().__init__()
        self.trunk = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(width * (image_size // 2) ** 2, embed_dim),
            nn.ReLU(),
        )
        self.classifier = nn.Linear(embed_dim, num_classes)
        self.out_dim = embed_dim

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.trunk(images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.trunk(images))


class FeatureExtractor(nn.Module):
    """``forward`` gives the learner's features [B, out_dim]; ``embed`` the designer's embedding."""

    def __init__(self, body: nn.Module, kind: str, out_dim: int):
        super().__init__()
        self.body, self.kind, self.out_dim = body, kind, out_dim

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.kind == "squeezenet1_1":
            return self.body.features(images).mean((2, 3))
        if self.kind == "resnet18":
            return self.body.forward_maps(images).mean((2, 3))
        return self.body.features(images)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        if self.kind == "squeezenet1_1":
            return self.body(images)  # 1000-d: classifier conv, ReLU, global average pool ("layer 12")
        return self.forward(images)


def _load_state(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise FileNotFoundError(f"extractor.weights: file not found: {path}")
    return {k.removeprefix("module."): v for k, v in read_state_dict(path).items()}


def build_extractor(
    name: str, weights: str = "", *, in_channels: int = 1, image_size: int = 8
) -> FeatureExtractor:
    """Build an extractor; ``weights`` is a local file (a SmallCNN save_pretrained folder for ``smallcnn``)."""
    if name == "squeezenet1_1":
        from torchvision.models import squeezenet1_1

        net = squeezenet1_1(weights=None)
        if weights:
            state = _load_state(Path(weights))
            try:
                net.load_state_dict(state)
            except RuntimeError as err:
                raise CheckpointError(
                    f"{weights}: does not fit squeezenet1_1 ({str(err).splitlines()[0]})"
                ) from None
        return FeatureExtractor(net, name, 512)
    if name == "resnet18":
        from visioncore.backbones import resnet18  # timm: imported only when used

        return FeatureExtractor(resnet18(weights=weights or None), name, 512)
    if name == "smallcnn":
        net = SmallCNN.from_pretrained(weights) if weights else SmallCNN(in_channels, image_size)
        net.classifier = nn.Identity()  # the teacher's head is not part of the extractor
        return FeatureExtractor(net, name, net.out_dim)
    raise ValueError(f"extractor.name: unknown extractor {name!r}; choose one of {', '.join(EXTRACTORS)}")

"""The retrieval embedding model φ with its classifier ω (OpenCompatible's ``Resnet_GeM``, our own code).

backbone -> GeM pooling (p = 3, fixed) -> ``fc_emb`` (retrieval feature, raw) -> bias-free ``fc_classifier``.
The classifier head is ``linear`` (raw logits, the landmark default), ``cosine`` (s·cos) or ``arcface``
(s·cos(θ + m) on the true class while training, with the angle clamped and the usual fallback past π − m).
"""

from __future__ import annotations

import math
import os

import torch
import torch.nn.functional as F
from torch import nn

from visioncore.hub import PretrainedMixin

HEADS = ("linear", "cosine", "arcface")
BACKBONES = ("tiny", "resnet50", "resnet101", "iresnet18", "iresnet50")


class GeM(nn.Module):
    """Generalised-mean pooling, (mean x^p)^(1/p) over the spatial positions, p fixed (3 as upstream)."""

    def __init__(self, p: float = 3.0, eps: float = 1e-6):
        super().__init__()
        self.p, self.eps = p, eps

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        return maps.clamp(min=self.eps).pow(self.p).mean(dim=(-2, -1)).pow(1.0 / self.p)


class TinyCNN(nn.Module):
    """Three conv-BN-ReLU stages of 16-32-64 channels (times ``width``), max-pooled twice; for tests and CPU runs."""

    def __init__(self, width: float = 1.0, in_chans: int = 3):
        super().__init__()
        chans = [max(1, round(c * width)) for c in (16, 32, 64)]
        layers: list[nn.Module] = []
        prev = in_chans
        for i, c in enumerate(chans):
            layers += [nn.Conv2d(prev, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
            if i < len(chans) - 1:
                layers.append(nn.MaxPool2d(2))
            prev = c
        self.body = nn.Sequential(*layers)
        self.out_channels = prev

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.body(images)


def _backbone(name: str, width: float) -> tuple[nn.Module, int]:
    if name == "tiny":
        net = TinyCNN(width)
        return net, net.out_channels
    if name.startswith("iresnet"):
        from darwinian_upgrades.models.iresnet import IResNet

        net = IResNet(int(name.removeprefix("iresnet")), width)
        return net, net.out_channels
    from visioncore import backbones  # timm is imported only for the paper-size models

    net = backbones.resnet50() if name == "resnet50" else backbones.resnet101()
    return net, net.out_channels


def class_logits(
    feats: torch.Tensor,
    weight: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    head: str = "linear",
    scale: float | None = None,
    margin: float = 0.0,
) -> torch.Tensor:
    """Logits of ``feats`` [B, d] under classifier rows ``weight`` [C, d].

    ``linear``: f·w (scale ignored unless given). ``cosine``: s·cos(f, w), s = 64 by default. ``arcface``: the
    cosine logits with the true class (``labels``) replaced by s·cos(θ + m); θ is clamped away from 0 and π, and past
    π − m the additive fallback cos θ − m·sin m keeps the logit monotone (upstream has neither).
    """
    if head not in HEADS:
        raise ValueError(f"head must be one of {', '.join(HEADS)}, got {head!r}")
    if head == "linear":
        logits = feats @ weight.t()
        return logits if scale is None else logits * scale
    s = 64.0 if scale is None else scale
    cos = F.normalize(feats, dim=1) @ F.normalize(weight, dim=1).t()
    if head == "arcface" and labels is not None and margin > 0:
        cos_y = cos.gather(1, labels[:, None]).clamp(-1 + 1e-7, 1 - 1e-7)
        theta = torch.acos(cos_y)
        shifted = torch.where(
            theta + margin < math.pi, torch.cos(theta + margin), cos_y - margin * math.sin(margin)
        )
        cos = cos.scatter(1, labels[:, None], shifted)
    return s * cos


class EmbeddingModel(nn.Module, PretrainedMixin):
    """φ (backbone + GeM + ``fc_emb``) and ω (``fc_classifier``, bias-free), Sec. 3 notation.

    ``forward(images, labels=None) -> (feats, logits)``; ``embed(images)`` gives the raw ``fc_emb`` feature
    (L2-normalise it for search, as the gallery code does). The buffer ``seen_classes`` marks the classes the model
    was trained on; BCT/DMU replace the other rows of an old classifier by class means (``synthesise_old_rows``).
    """

    def __init__(
        self,
        num_classes: int,
        *,
        backbone: str = "resnet50",
        width: float = 1.0,
        embed_dim: int = 512,
        head: str = "linear",
        scale: float = 64.0,
        margin: float = 0.5,
        gem_p: float = 3.0,
    ):
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {', '.join(BACKBONES)}, got {backbone!r}")
        if head not in HEADS:
            raise ValueError(f"head must be one of {', '.join(HEADS)}, got {head!r}")
        if num_classes < 1 or embed_dim < 1 or width <= 0:
            raise ValueError(
                f"num_classes, embed_dim and width must be positive ({num_classes}, {embed_dim}, {width})"
            )
        self.num_classes, self.embed_dim, self.head = num_classes, embed_dim, head
        self.scale, self.margin = scale, margin
        self.backbone, channels = _backbone(backbone, width)
        self.pool = GeM(gem_p)
        self.fc_emb = nn.Linear(channels, embed_dim)
        self.fc_classifier = nn.Linear(embed_dim, num_classes, bias=False)
        self.register_buffer("seen_classes", torch.zeros(num_classes, dtype=torch.bool))

    def _maps(self, images: torch.Tensor) -> torch.Tensor:
        fn = getattr(self.backbone, "forward_maps", None)
        return fn(images) if fn is not None else self.backbone(images)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """φ(x): the raw retrieval feature [B, embed_dim]."""
        return self.fc_emb(self.pool(self._maps(images)))

    def logits(self, feats: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """ω·φ(x) under this model's head (ArcFace margin only when ``labels`` are given)."""
        scale = self.scale if self.head != "linear" else None
        return class_logits(
            feats, self.fc_classifier.weight, labels, head=self.head, scale=scale, margin=self.margin
        )

    def forward(
        self, images: torch.Tensor, labels: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.embed(images)
        return feats, self.logits(feats, labels)

    def load_backbone_weights(self, path: str | os.PathLike) -> None:
        """Initialise from a local file: an official ``Resnet_GeM`` state dict (it has ``fc_emb`` weights) loads
        whole, anything else is a torchvision/timm ResNet for the backbone (``visioncore.backbones.load_weights``)."""
        from visioncore.backbones import load_weights

        if _is_official(path):
            load_official_state_dict(self, path)
        else:
            load_weights(self.backbone, path)


def _is_official(path: str | os.PathLike) -> bool:
    if str(path).endswith(".safetensors"):
        return False
    try:
        obj = torch.load(path, map_location="meta", weights_only=True)
    except Exception:  # unreadable files are reported by the loader that runs next
        return False
    state = obj.get("state_dict", obj.get("model", obj)) if isinstance(obj, dict) else {}
    return any(str(k).removeprefix("module.") == "fc_emb.weight" for k in state)


# Applied in order: DataParallel prefix, then the classifier name of ``model/resnet_gem.py``, then the backbone.
OFFICIAL_KEY_MAP = {"module.": "", "fc_classify.": "fc_classifier.", "backbone.": "backbone.timm_model."}


def load_official_state_dict(model: EmbeddingModel, path: str | os.PathLike) -> None:
    """Load an OpenCompatible ``Resnet_GeM`` state dict (``fc_classify`` or ``fc_classifier``), checked and strict.

    Files are read with ``weights_only=True``; keys are mapped onto ours (the torchvision layer names of the backbone
    match timm's ResNet); the GeM ``p`` is not a parameter here and is dropped.
    """
    from visioncore.hub import CheckpointError, _load_checked

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as err:  # unpickling / zip errors: one message naming the file
        raise CheckpointError(f"{path}: cannot read checkpoint (weights_only=True): {err}") from err
    state = obj.get("state_dict", obj.get("model", obj)) if isinstance(obj, dict) else obj
    mapped: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        for old, new in OFFICIAL_KEY_MAP.items():
            if key.startswith(old):
                key = new + key[len(old) :]
        mapped[key] = value
    # Upstream keeps no record of the trained classes: every row counts as trained.
    mapped.setdefault("seen_classes", torch.ones(model.num_classes, dtype=torch.bool))
    _load_checked(model, mapped, source=path, strict=True)

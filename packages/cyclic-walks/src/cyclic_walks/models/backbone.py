"""Frozen feature extractors ("parts"). The paper uses DINO ViT-S/8: tokens of the last block before the final
LayerNorm, CLS dropped, position embedding interpolated to the input size. CNN maps and two small generic
extractors (tests, CPU experiments) give the same [B, N, D] token contract."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INPUT_NORMS = ("imagenet", "signed", "unit")


class BackboneError(ValueError):
    """An unknown backbone option or a weights file that does not fit; the message names it."""


@dataclass
class BackboneConfig:
    kind: str = "vit_small"  # vit_tiny|vit_small|vit_base|resnet18|resnet50|colour_histogram|random_conv
    patch_size: int = 8
    weights: str = ""  # local .pth (DINO), timm .safetensors/.pth, or a transformers ViT checkpoint
    input_norm: str = "imagenet"  # imagenet | signed ([-1, 1], fine-grained sets) | unit
    embed_dim: int = 0  # 0: the constructor's default; tiny test ViTs and random convs set it
    depth: int = 0
    num_heads: int = 0
    histogram_bins: int = 4


class ColourHistogram(nn.Module):
    """Soft colour histogram of each stride x stride patch (Gaussian votes to a bins^3 RGB grid), square-rooted so
    that the cosine of two tokens is their Bhattacharyya coefficient. Generic: no learning, no masks."""

    def __init__(self, bins: int = 4, stride: int = 4) -> None:
        super().__init__()
        axis = (torch.arange(bins, dtype=torch.float32) + 0.5) / bins
        centres = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1).reshape(-1, 3)
        self.register_buffer("centres", centres, persistent=False)
        self.sigma, self.stride, self.dim = 0.5 / bins, stride, bins**3

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        # -|x - c|^2 up to a per-pixel constant (|x|^2 cancels in the softmax over bins): 2 x.c - |c|^2.
        logits = (
            2 * torch.einsum("bchw,mc->bmhw", images, self.centres)
            - self.centres.pow(2).sum(-1)[:, None, None]
        )
        votes = (logits / (2 * self.sigma**2)).softmax(dim=1)
        return F.avg_pool2d(votes, self.stride).clamp_min(0).sqrt()


class RandomConv(nn.Module):
    """A fixed, seeded, randomly initialised conv stem (3x3 stride-2 convs + ReLU), stride = 2^layers."""

    def __init__(self, dim: int = 48, stride: int = 8, seed: int = 0) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        generator = torch.Generator().manual_seed(seed)
        for _ in range(max(stride.bit_length() - 1, 1)):
            conv = nn.Conv2d(channels, dim, 3, stride=2, padding=1)
            with torch.no_grad():
                conv.weight.copy_(
                    torch.randn(conv.weight.shape, generator=generator) * (2 / (9 * channels)) ** 0.5
                )
                conv.bias.zero_()
            layers += [conv, nn.ReLU()]
            channels = dim
        self.net = nn.Sequential(*layers[:-1])
        self.stride, self.dim = stride, dim

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)


class FrozenBackbone(nn.Module):
    """Wraps an extractor: normalises [0, 1] images, runs it without gradients, returns tokens [B, N, D] and the
    token grid (h, w). Always in eval mode."""

    def __init__(
        self, extractor: nn.Module, kind: str, feature_dim: int, stride: int, input_norm: str
    ) -> None:
        super().__init__()
        if input_norm not in INPUT_NORMS:
            raise BackboneError(f"unknown backbone.input_norm {input_norm!r}; expected one of {INPUT_NORMS}")
        self.extractor, self.kind = extractor, kind
        self.feature_dim, self.stride, self.input_norm = feature_dim, stride, input_norm
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> FrozenBackbone:
        return super().train(False)  # frozen: dropout/batch-norm stay in inference mode

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        if self.input_norm == "imagenet":
            return (images - self.mean) / self.std
        return images * 2 - 1 if self.input_norm == "signed" else images

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        h, w = images.shape[-2] // self.stride, images.shape[-1] // self.stride
        x = self.normalise(images)
        if self.kind.startswith("vit"):
            tokens = self.extractor.forward_tokens(x, with_cls=False, final_norm=False)
        elif self.kind.startswith("resnet"):
            maps = self.extractor.forward_maps(x)
            h, w = maps.shape[-2:]
            tokens = rearrange(maps, "b c h w -> b (h w) c")
        else:
            maps = self.extractor(x)
            h, w = maps.shape[-2:]
            tokens = rearrange(maps, "b c h w -> b (h w) c")
        return tokens.float(), (h, w)


def build_backbone(cfg: BackboneConfig) -> FrozenBackbone:
    """The extractor named by ``cfg.kind``, with ``cfg.weights`` loaded from a local file when given."""
    kind = cfg.kind
    if kind == "colour_histogram":
        extractor: nn.Module = ColourHistogram(cfg.histogram_bins, cfg.patch_size)
        return FrozenBackbone(extractor, kind, extractor.dim, cfg.patch_size, cfg.input_norm)
    if kind == "random_conv":
        extractor = RandomConv(cfg.embed_dim or 48, cfg.patch_size)
        return FrozenBackbone(extractor, kind, extractor.dim, cfg.patch_size, cfg.input_norm)
    from visioncore import backbones

    if kind in ("vit_tiny", "vit_small", "vit_base"):
        overrides = {
            k: v
            for k, v in (("embed_dim", cfg.embed_dim), ("depth", cfg.depth), ("num_heads", cfg.num_heads))
            if v
        }
        vit = getattr(backbones, kind)(patch_size=cfg.patch_size, **overrides)
        if cfg.weights:
            load_vit_weights(vit, cfg.weights)
        return FrozenBackbone(vit, kind, vit.embed_dim, vit.patch_size, cfg.input_norm)
    if kind in ("resnet18", "resnet50"):
        net = getattr(backbones, kind)()
        if cfg.weights:
            _load(net, cfg.weights)
        dim = 512 if kind == "resnet18" else 2048
        return FrozenBackbone(net, kind, dim, 32, cfg.input_norm)
    raise BackboneError(
        f"unknown backbone.kind {kind!r}; expected vit_tiny, vit_small, vit_base, resnet18, resnet50, "
        "colour_histogram or random_conv"
    )


def _load(model: nn.Module, path: str | Path) -> None:
    from visioncore.backbones import load_weights

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: backbone weights not found")
    load_weights(model, path)


def load_vit_weights(vit: nn.Module, path: str | Path) -> None:
    """DINO ``.pth`` (teacher/backbone prefixes), timm and safetensors go through visioncore's ``load_weights``.

    The transformers ``ViTModel`` layouts (``embeddings.*`` with ``encoder.layer.*`` or ``layers.*``) have separate q/k/v matrices that a
    key renaming cannot fuse into timm's ``qkv``, so they are converted first and handed to ``load_weights`` from a
    temporary safetensors file (position-embedding resampling and shape checks still apply).
    """
    import tempfile

    from safetensors.torch import save_file

    from visioncore.hub import CheckpointError, read_state_dict

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: backbone weights not found")
    state = read_state_dict(path)
    if not is_transformers_vit(state):
        _load(vit, path)
        return
    try:
        converted = transformers_vit_to_timm(state)
    except KeyError as err:
        raise BackboneError(f"{path}: transformers ViT checkpoint lacks {err}") from None
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp) / "converted.safetensors"
        save_file({k: v.contiguous() for k, v in converted.items()}, str(tmp_path))
        try:
            _load(vit, tmp_path)
        except CheckpointError as err:
            raise BackboneError(str(err).replace(str(tmp_path), f"{path} (transformers layout)")) from None


# (timm name, transformers 4.x name under encoder.layer.{i}., transformers 5.x name under layers.{i}.)
_HF_BLOCK_NAMES = (
    ("norm1", "layernorm_before", "layernorm_before"),
    ("norm2", "layernorm_after", "layernorm_after"),
    ("attn.proj", "attention.output.dense", "attention.o_proj"),
    ("mlp.fc1", "intermediate.dense", "mlp.fc1"),
    ("mlp.fc2", "output.dense", "mlp.fc2"),
)
_HF_QKV = {
    4: ("attention.attention.query", "attention.attention.key", "attention.attention.value"),
    5: ("attention.q_proj", "attention.k_proj", "attention.v_proj"),
}


def is_transformers_vit(state: dict[str, torch.Tensor]) -> bool:
    return any(k.removeprefix("vit.").startswith(("encoder.layer.", "layers.")) for k in state)


def transformers_vit_to_timm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a transformers ``ViTModel`` state dict (4.x ``encoder.layer.*``, as in the hub's facebook/dino-vits8
    files, or 5.x ``layers.*``) to timm's VisionTransformer keys, fusing q/k/v into ``qkv``."""
    state = {k.removeprefix("vit."): v for k, v in state.items()}
    version = 4 if any(k.startswith("encoder.layer.") for k in state) else 5
    block = "encoder.layer.{}." if version == 4 else "layers.{}."
    out = {
        "cls_token": state["embeddings.cls_token"],
        "pos_embed": state["embeddings.position_embeddings"],
        "patch_embed.proj.weight": state["embeddings.patch_embeddings.projection.weight"],
        "patch_embed.proj.bias": state["embeddings.patch_embeddings.projection.bias"],
        "norm.weight": state["layernorm.weight"],
        "norm.bias": state["layernorm.bias"],
    }
    prefix = block.split("{")[0]
    depth = 1 + max(int(k[len(prefix) :].split(".")[0]) for k in state if k.startswith(prefix))
    for i in range(depth):
        src = block.format(i)
        for part in ("weight", "bias"):
            out[f"blocks.{i}.attn.qkv.{part}"] = torch.cat(
                [state[f"{src}{n}.{part}"] for n in _HF_QKV[version]]
            )
            for timm_name, v4_name, v5_name in _HF_BLOCK_NAMES:
                out[f"blocks.{i}.{timm_name}.{part}"] = state[
                    f"{src}{v4_name if version == 4 else v5_name}.{part}"
                ]
    return out

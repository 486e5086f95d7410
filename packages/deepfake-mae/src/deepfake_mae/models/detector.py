"""DeepfakeDetector: the paper's Stage B dual network.

Network 1: the pretrained MAE encoder, finetuned on unmasked frames; per-frame CLS (or mean) token, temporal
aggregation (mean or a small temporal transformer), linear head -> s_enc.
Network 2: its own copy of the pretrained MAE (encoder + decoder). Each facial part is masked in turn (the three views
in one forward) and reconstructed; the per-part discrepancy d_p (MSE over the part's pixels in normalised-pixel space)
is averaged over time, and a monotone MLP on log d gives s_dec. Trained with the margin discrepancy loss (real pulled
to the input, fakes pushed beyond a margin; per part by default). Fused logit s = s_enc + s_dec; fake = 1.
"""

from __future__ import annotations

import inspect
import re

import torch
import torch.nn.functional as F
from torch import nn

from deepfake_mae.losses import part_pixel_error
from deepfake_mae.models.mae import FacePartMAE, build_encoder, mae_initialize_
from deepfake_mae.models.masking import box_pixel_mask, every_part_mask, patch_membership
from visioncore.hub import PretrainedMixin

BRANCHES = ("both", "encoder", "decoder")


class TemporalTransformer(nn.Module):
    """A small transformer over per-frame features (RealForensics / FTCN style), mean-pooled over time."""

    def __init__(self, dim: int, depth: int, num_heads: int, max_frames: int):
        super().__init__()
        self.pos = nn.Parameter(torch.zeros(1, max_frames, dim))
        layer = nn.TransformerEncoderLayer(
            dim, num_heads, 2 * dim, dropout=0.0, batch_first=True, norm_first=True
        )
        self.blocks = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        nn.init.normal_(self.pos, std=0.02)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.blocks(feats + self.pos[:, : feats.shape[1]]).mean(1)


class PartDiscrepancyHead(nn.Module):
    """Network 2's head on the per-part log discrepancies, monotone non-decreasing in every discrepancy.

    Each part's log discrepancy is standardised (BatchNorm without affine, i.e. running z-scores per part), one
    monotone MLP shared by all parts scores it (non-negative weights through softplus, ReLU; ``hidden=0``: a linear
    head with a non-negative slope), and the part scores are summed. A larger reconstruction discrepancy can thus never
    mean "less fake" (an unconstrained MLP learned U-shaped scores). Sharing the MLP treats the parts as exchangeable,
    so a head trained on one manipulated part (e.g. mouth swaps) also reads a large discrepancy on another part.
    """

    def __init__(self, num_parts: int, hidden: int):
        super().__init__()
        self.norm = nn.BatchNorm1d(num_parts, affine=False)
        width = max(hidden, 1)
        self.hidden = hidden
        self.w1 = nn.Parameter(
            torch.randn(width) * 0.5
        )  # raw weights: the used weights are softplus(raw) > 0
        self.b1 = nn.Parameter(torch.zeros(width))
        self.w2 = nn.Parameter(torch.randn(width) * 0.5 - 1.0)
        self.b2 = nn.Parameter(torch.zeros(()))

    def part_scores(self, z: torch.Tensor) -> torch.Tensor:
        """(..., P) standardised log discrepancies -> (..., P) part scores, non-decreasing in each input."""
        x = z.unsqueeze(-1)
        if self.hidden > 0:
            x = torch.relu(x * F.softplus(self.w1) + self.b1)
        return (x * F.softplus(self.w2)).sum(-1) + self.b2 / z.shape[-1]

    def forward(self, discrepancy: torch.Tensor) -> torch.Tensor:
        # in the head's own dtype (network 2's pixel errors come in float32 under bf16 inference)
        z = self.norm(discrepancy.to(self.b1.dtype).clamp_min(1e-6).log())
        return self.part_scores(z).sum(-1)


class DeepfakeDetector(nn.Module, PretrainedMixin):
    """forward(frames (B, T, 3, H, W) ImageNet-normalised, boxes (B, T, P, 4)) -> dict of logits and discrepancies.

    ``mae`` is the FacePartMAE configuration (its constructor's keyword arguments, e.g. ``config.mae_kwargs``): network
    1's encoder and network 2's MAE are built from it, so the two can never disagree.
    """

    def __init__(
        self,
        mae: dict | None = None,
        drop_path: float = 0.1,
        pool: str = "cls",
        temporal: str = "mean",
        temporal_depth: int = 1,
        max_frames: int = 64,
        num_parts: int = 3,
        mask_ratio: float = 0.75,
        part_margin: float = 4.0,
        head_hidden: int = 64,
        branches: str = "both",
        freeze_net2: bool = False,
    ):
        super().__init__()
        if pool not in ("cls", "mean") or temporal not in ("mean", "transformer") or branches not in BRANCHES:
            raise ValueError(
                f"bad detector options pool={pool!r} temporal={temporal!r} branches={branches!r}"
            )
        params = inspect.signature(FacePartMAE).parameters
        unknown = sorted(set(mae or {}) - set(params))
        if unknown:
            raise ValueError(f"DeepfakeDetector: unknown MAE option(s) {', '.join(unknown)}")
        m = {name: p.default for name, p in params.items()} | dict(mae or {})
        self.pool, self.branches, self.freeze_net2 = pool, branches, freeze_net2
        self.mask_ratio, self.part_margin, self.num_parts = mask_ratio, part_margin, num_parts
        self.mae = FacePartMAE(**m)
        self.encoder = build_encoder(
            m["img_size"],
            m["patch_size"],
            m["embed_dim"],
            m["depth"],
            m["num_heads"],
            m["mlp_ratio"],
            drop_path,
        )
        mae_initialize_(self.encoder)  # network 1 starts from the MAE recipe too (load_mae overwrites both)
        embed_dim = m["embed_dim"]
        self.temporal = (
            TemporalTransformer(embed_dim, temporal_depth, m["num_heads"], max_frames)
            if temporal == "transformer"
            else None
        )
        self.enc_head = nn.Linear(embed_dim, 1)
        self.dec_head = PartDiscrepancyHead(num_parts, head_hidden)
        # Unused branches are frozen so that DDP sees no parameter without a gradient.
        if freeze_net2 or branches == "encoder":
            self.mae.requires_grad_(False)
        if branches == "encoder":
            self.dec_head.requires_grad_(False)
        if branches == "decoder":
            for module in (self.encoder, self.enc_head, self.temporal):
                if module is not None:
                    module.requires_grad_(False)

    @torch.no_grad()
    def load_mae(self, mae: FacePartMAE) -> None:
        """Initialise both networks from a pretrained FacePartMAE (network 1 gets its encoder, network 2 a copy)."""
        self.encoder.load_state_dict(mae.encoder.state_dict())
        self.mae.load_state_dict(mae.state_dict())

    def encoder_logit(self, frames: torch.Tensor) -> torch.Tensor:
        batch, time = frames.shape[:2]
        tokens = self.encoder.forward_tokens(frames.flatten(0, 1), with_cls=True, final_norm=True)
        feats = tokens[:, 0] if self.pool == "cls" else tokens[:, 1:].mean(1)
        feats = feats.view(batch, time, -1)
        video = self.temporal(feats) if self.temporal is not None else feats.mean(1)
        return self.enc_head(video).squeeze(-1)

    def discrepancies(
        self, frames: torch.Tensor, boxes: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """(B, P) per-part reconstruction discrepancy, each part masked in turn, averaged over the clip's frames."""
        batch, time = frames.shape[:2]
        if self.freeze_net2:  # fixed masks make a frozen network 2 a pure function of the clip (cacheable)
            generator = torch.Generator(device=frames.device).manual_seed(0)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_net2):
            err = part_discrepancies(
                self.mae,
                frames.flatten(0, 1),
                boxes.flatten(0, 1),
                self.part_margin,
                self.mask_ratio,
                generator,
            )
        return err.view(batch, time, -1).mean(1)

    def forward(
        self,
        frames: torch.Tensor,
        boxes: torch.Tensor,
        generator: torch.Generator | None = None,
        discrepancy: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Returns {"logit", "enc_logit", "dec_logit", "discrepancy" (B, P)}; a cached `discrepancy` skips network 2."""
        zeros = frames.new_zeros(frames.shape[0])
        enc = self.encoder_logit(frames) if self.branches != "decoder" else zeros
        if self.branches == "encoder":
            return {
                "logit": enc,
                "enc_logit": enc,
                "dec_logit": zeros,
                "discrepancy": frames.new_zeros(len(zeros), self.num_parts),
            }
        if discrepancy is None:
            discrepancy = self.discrepancies(frames, boxes, generator)
        dec = self.dec_head(discrepancy)
        return {"logit": enc + dec, "enc_logit": enc, "dec_logit": dec, "discrepancy": discrepancy}


def layer_id(name: str, depth: int) -> int:
    """ViT layer index for layer-wise lr decay: embeddings 0, block i -> i + 1, everything else depth + 1."""
    if re.search(r"encoder\.(timm_model\.)?(patch_embed|cls_token|pos_embed)", name):
        return 0
    match = re.search(r"encoder\.(?:timm_model\.)?blocks\.(\d+)\.", name)
    return int(match.group(1)) + 1 if match else depth + 1


def skips_weight_decay(name: str, param: nn.Parameter) -> bool:
    """The MAE recipe's undecayed parameters: biases and other 1-D parameters (norms), tokens, position embeddings."""
    return param.ndim <= 1 or name.endswith((".bias", "cls_token", "pos_embed", "mask_token", ".pos"))


def weight_decay_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two AdamW groups as MAE's pretraining: decayed weights, and the undecayed ones (weight_decay 0)."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (no_decay if skips_weight_decay(name, param) else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def param_groups(model: nn.Module, weight_decay: float, layer_decay: float, depth: int) -> list[dict]:
    """AdamW groups with layer-wise lr decay (BEiT/MAE finetuning): scale = decay^(depth + 1 - layer); no weight decay
    on biases, norms and tokens. Each group carries `lr_scale` (multiply the base lr by it)."""
    groups: dict[tuple[int, bool], dict] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        no_decay = skips_weight_decay(name, param)
        layer = layer_id(name, depth)
        group = groups.setdefault(
            (layer, no_decay),
            {
                "params": [],
                "weight_decay": 0.0 if no_decay else weight_decay,
                "lr_scale": layer_decay ** (depth + 1 - layer),
            },
        )
        group["params"].append(param)
    return list(groups.values())


def part_discrepancies(
    mae: FacePartMAE,
    images: torch.Tensor,
    boxes: torch.Tensor,
    part_margin: float,
    mask_ratio: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """(N, P) reconstruction discrepancy of each image's parts (MSE over the part's pixels in normalised-pixel space,
    the part masked and topped up to ``mask_ratio``): the P part-masked views run through the MAE in ONE forward.

    The single implementation behind network 2 and the label-free scores. ``generator`` lives on the images' device.
    """
    n = images.shape[0]
    boxes = boxes.to(images.device)
    member = patch_membership(boxes, mae.grid, mae.patch_size, part_margin)  # (N, P, L)
    parts = member.shape[1]
    pixels = box_pixel_mask(boxes, images.shape[-2], images.shape[-1])  # (N, P, H, W)
    mask, _ = every_part_mask(member, mask_ratio, generator)  # (P*N, L), part-major
    views = images.repeat(parts, 1, 1, 1)
    target = mae.target(images).repeat(parts, 1, 1)
    err = part_pixel_error(
        mae(views, mask), target, pixels.transpose(0, 1).flatten(0, 1), mae.patch_size, mae.grid
    )
    return err.view(parts, n).T

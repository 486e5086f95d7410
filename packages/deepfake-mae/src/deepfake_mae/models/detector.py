"""DeepfakeDetector: the paper's Stage B dual network.

Network 1: the pretrained MAE encoder, finetuned on unmasked frames; per-frame CLS (or mean) token, temporal
aggregation (mean or a small temporal transformer), linear head -> s_enc.
Network 2: its own copy of the pretrained MAE (encoder + decoder). Each facial part is masked in turn and
reconstructed; the per-part discrepancy d_p (MSE over the part's pixels in normalised-pixel space) is averaged over
time, and an MLP on log d gives s_dec. Trained with the margin discrepancy loss (real pulled to the input, fakes pushed
beyond a margin). Fused logit s = s_enc + s_dec; fake = 1.
"""

from __future__ import annotations

import re

import torch
from torch import nn

from deepfake_mae.losses import part_pixel_error
from deepfake_mae.models.mae import FacePartMAE, build_encoder
from deepfake_mae.models.masking import box_pixel_mask, patch_membership, single_part_mask
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
    """MLP head of network 2 on the per-part log discrepancies.

    Each part's log discrepancy is standardised (BatchNorm without affine, i.e. running z-scores per part), one MLP
    shared by all parts scores it, and the part scores are summed. Sharing the MLP treats the parts as exchangeable,
    so a head trained on one manipulated part (e.g. mouth swaps) also reads a large discrepancy on another part.
    """

    def __init__(self, num_parts: int, hidden: int):
        super().__init__()
        self.norm = nn.BatchNorm1d(num_parts, affine=False)
        self.mlp = nn.Sequential(nn.Linear(1, hidden), nn.GELU(), nn.Linear(hidden, 1))

    def forward(self, discrepancy: torch.Tensor) -> torch.Tensor:
        z = self.norm(discrepancy.clamp_min(1e-6).log())
        return self.mlp(z.unsqueeze(-1)).squeeze(-1).sum(-1)


class DeepfakeDetector(nn.Module, PretrainedMixin):
    """forward(frames (B, T, 3, H, W) ImageNet-normalised, boxes (B, T, P, 4)) -> dict of logits and discrepancies."""

    def __init__(
        self,
        img_size: int = 224,
        patch_size: int = 16,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        decoder_embed_dim: int = 512,
        decoder_depth: int = 8,
        decoder_num_heads: int = 16,
        mlp_ratio: float = 4.0,
        norm_pix_loss: bool = True,
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
        self.pool, self.branches, self.freeze_net2 = pool, branches, freeze_net2
        self.mask_ratio, self.part_margin, self.num_parts = mask_ratio, part_margin, num_parts
        self.encoder = build_encoder(img_size, patch_size, embed_dim, depth, num_heads, mlp_ratio, drop_path)
        self.temporal = (
            TemporalTransformer(embed_dim, temporal_depth, num_heads, max_frames)
            if temporal == "transformer"
            else None
        )
        self.enc_head = nn.Linear(embed_dim, 1)
        self.mae = FacePartMAE(
            img_size,
            patch_size,
            embed_dim,
            depth,
            num_heads,
            decoder_embed_dim,
            decoder_depth,
            decoder_num_heads,
            mlp_ratio,
            norm_pix_loss,
        )
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
    ):
        """(B, P) per-part reconstruction discrepancy, each part masked in turn, averaged over the clip's frames."""
        batch, time = frames.shape[:2]
        images, flat_boxes = frames.flatten(0, 1), boxes.flatten(0, 1)
        mae = self.mae
        member = patch_membership(flat_boxes, mae.grid, mae.patch_size, self.part_margin)
        pixels = box_pixel_mask(flat_boxes, images.shape[-2], images.shape[-1])
        if self.freeze_net2:  # fixed masks make a frozen network 2 a pure function of the clip (cacheable)
            generator = torch.Generator().manual_seed(0)
        target = mae.target(images)
        out = []
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_net2):
            for part in range(member.shape[1]):
                mask, _ = single_part_mask(member, part, self.mask_ratio, generator)
                err = part_pixel_error(
                    mae(images, mask.to(images.device)), target, pixels[:, part], mae.patch_size, mae.grid
                )
                out.append(err.view(batch, time).mean(1))
        return torch.stack(out, 1)

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


def param_groups(model: nn.Module, weight_decay: float, layer_decay: float, depth: int) -> list[dict]:
    """AdamW groups with layer-wise lr decay (BEiT/MAE finetuning): scale = decay^(depth + 1 - layer); no weight decay
    on biases, norms and tokens. Each group carries `lr_scale` (multiply the base lr by it)."""
    groups: dict[tuple[int, bool], dict] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        no_decay = param.ndim == 1 or name.endswith(("cls_token", "pos_embed", "mask_token", ".pos"))
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

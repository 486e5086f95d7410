"""FacePartMAE: the Stage A masked autoencoder (MAE ViT encoder on visioncore's backbone + a light decoder).

Encoder: visioncore's timm ViT run on the visible patches only (`forward_tokens(visible=...)`), with MAE's fixed 2-D
sin-cos position embeddings. Decoder: linear embed, mask tokens scattered back into place, fixed sin-cos positions,
transformer blocks, linear head to patch*patch*3 values. Defaults are ViT-B/16 at 224 with a 512-wide, 8-deep decoder.
"""

from __future__ import annotations

import torch
from timm.models.vision_transformer import Block
from torch import nn

from deepfake_mae.losses import mae_loss, normalize_patches, patchify
from visioncore.backbones import ViT, sincos_pos_embed_2d, vit_base
from visioncore.hub import PretrainedMixin

# ImageNet statistics: the encoder input normalisation of every public MAE checkpoint.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalize_images(frames: torch.Tensor) -> torch.Tensor:
    """uint8 or [0, 1] float (..., 3, H, W) -> ImageNet-normalised float."""
    x = frames.float() / 255.0 if frames.dtype == torch.uint8 else frames.float()
    mean = x.new_tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = x.new_tensor(IMAGENET_STD).view(3, 1, 1)
    return (x - mean) / std


def build_encoder(
    img_size: int,
    patch_size: int,
    embed_dim: int,
    depth: int,
    num_heads: int,
    mlp_ratio: float,
    drop_path: float,
) -> ViT:
    """A visioncore ViT (no classifier) with MAE's fixed, frozen 2-D sin-cos position embedding."""
    return vit_base(
        patch_size=patch_size,
        img_size=img_size,
        pos_embed="sincos",
        embed_dim=embed_dim,
        depth=depth,
        num_heads=num_heads,
        mlp_ratio=mlp_ratio,
        drop_path_rate=drop_path,
    )


class MAEDecoder(nn.Module):
    """MAE decoder: fills masked positions with a learned mask token and predicts every patch's pixels."""

    def __init__(
        self,
        encoder_dim: int,
        dim: int,
        depth: int,
        num_heads: int,
        grid: int,
        patch_size: int,
        mlp_ratio: float,
    ):
        super().__init__()
        self.embed = nn.Linear(encoder_dim, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.register_buffer(
            "pos_embed", sincos_pos_embed_2d(dim, grid, cls_token=True)[None], persistent=False
        )
        self.blocks = nn.ModuleList(Block(dim, num_heads, mlp_ratio, qkv_bias=True) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pred = nn.Linear(dim, patch_size * patch_size * 3)
        nn.init.normal_(self.mask_token, std=0.02)

    def forward(self, tokens: torch.Tensor, visible: torch.Tensor, num_patches: int) -> torch.Tensor:
        """tokens (B, 1+K, D_enc) for the CLS + visible patches at `visible` (B, K) -> (B, N, patch*patch*3)."""
        x = self.embed(tokens)
        batch, _, dim = x.shape
        full = self.mask_token.expand(batch, num_patches, dim).clone()
        full = full.scatter(1, visible[..., None].expand(-1, -1, dim), x[:, 1:])
        x = torch.cat([x[:, :1], full], dim=1) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.pred(self.norm(x))[:, 1:]


def visible_indices(mask: torch.Tensor) -> torch.Tensor:
    """(B, N) bool mask with equal counts -> (B, K) LongTensor of the visible patch indices, in raster order."""
    counts = (~mask).sum(1)
    if not bool((counts == counts[0]).all()):
        raise ValueError("every sample of a batch must keep the same number of visible patches")
    return (
        (~mask).float().argsort(dim=1, descending=True, stable=True)[:, : int(counts[0])].sort(dim=1).values
    )


class FacePartMAE(nn.Module, PretrainedMixin):
    """The facial-part MAE (Stage A). forward(images, mask) -> per-patch predictions (B, N, patch*patch*3)."""

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
        drop_path: float = 0.0,
    ):
        super().__init__()
        self.img_size, self.patch_size, self.norm_pix_loss = img_size, patch_size, norm_pix_loss
        self.encoder = build_encoder(img_size, patch_size, embed_dim, depth, num_heads, mlp_ratio, drop_path)
        self.grid = img_size // patch_size
        self.num_patches = self.grid * self.grid
        self.decoder = MAEDecoder(
            embed_dim, decoder_embed_dim, decoder_depth, decoder_num_heads, self.grid, patch_size, mlp_ratio
        )

    def encode(self, images: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        visible = visible_indices(mask)
        tokens = self.encoder.forward_tokens(images, visible=visible, with_cls=True, final_norm=True)
        return tokens, visible

    def forward(self, images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """images: ImageNet-normalised (B, 3, H, W); mask: bool (B, N), True = masked, equal counts per row."""
        tokens, visible = self.encode(images, mask)
        return self.decoder(tokens, visible, self.num_patches)

    def target(self, images: torch.Tensor) -> torch.Tensor:
        """Reconstruction target per patch: normalised pixels when `norm_pix_loss` (MAE's default)."""
        patches = patchify(images, self.patch_size)
        return normalize_patches(patches) if self.norm_pix_loss else patches

    def loss(
        self,
        images: torch.Tensor,
        mask: torch.Tensor,
        part_mask: torch.Tensor | None = None,
        part_weight: float = 0.0,
    ) -> torch.Tensor:
        """Stage A objective: MSE on masked patches (+ the part-only term)."""
        return mae_loss(self(images, mask), self.target(images), mask, part_mask, part_weight)

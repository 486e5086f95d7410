"""Spatio-temporal transformer of Tune-A-Video (paper Sec. 4.1, Fig. 3).

Each transformer block holds four residual sub-layers, x = x + sublayer(LN(x)):
``attn1`` sparse-causal self-attention (ST-Attn), ``attn2`` cross-attention to the text, ``ff`` (GEGLU) and
``attn_temp`` temporal self-attention (T-Attn). The attention layers are diffusers ``Attention`` modules; the
sparse-causal pattern lives in an attention *processor*, so the pretrained ``to_k``/``to_v`` weights load unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.models.attention import FeedForward
from diffusers.models.attention_processor import Attention
from einops import rearrange
from torch import nn


def sparse_causal_frame_index(video_length: int, device: torch.device | None = None) -> torch.Tensor:
    """Index of the "previous" frame each frame attends to: max(i - 1, 0) (paper Eq. 3)."""
    return (torch.arange(video_length, device=device) - 1).clamp(min=0)


def _attend(attn: Attention, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, use_sdpa: bool):
    """Multi-head attention of (n, lq, c) queries on (n, lk, c) keys/values, returning (n, lq, c).

    With ``upcast_attention`` (SD 2.x) and half-precision inputs, q.k and the softmax run in float32 and the weighted
    sum in the input dtype, as the official code and diffusers' ``get_attention_scores`` do; fused SDPA would
    compute them in half precision, where scores of large q and k overflow. In float32 both paths are the same.
    """
    if use_sdpa and not (attn.upcast_attention and query.dtype != torch.float32):
        heads = attn.heads
        q, k, v = (rearrange(t, "n l (h d) -> n h l d", h=heads) for t in (query, key, value))
        out = F.scaled_dot_product_attention(q, k, v, scale=attn.scale)
        return rearrange(out, "n h l d -> n l (h d)")
    q, k, v = attn.head_to_batch_dim(query), attn.head_to_batch_dim(key), attn.head_to_batch_dim(value)
    probs = attn.get_attention_scores(q, k, None)
    return attn.batch_to_head_dim(torch.bmm(probs, v))


class SparseCausalAttnProcessor:
    """Sparse-causal self-attention (ST-Attn, paper Eq. 3) as a diffusers attention processor.

    Queries come from frame i; keys and values from the token concatenation [z_0 ; z_{max(i-1, 0)}]. Frame 0 therefore
    attends to itself (twice), frame 1 only to frame 0, and frames i >= 2 to frames 0 and i-1 but *not* to themselves,
    exactly as upstream. The gather runs on (b, f, tokens, c), so a classifier-free-guidance batch (2b videos) works.
    """

    def __init__(self, use_sdpa: bool = True) -> None:
        self.use_sdpa = use_sdpa

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        video_length: int | None = None,
    ) -> torch.Tensor:
        if encoder_hidden_states is not None or attention_mask is not None:
            raise ValueError("sparse-causal attention is a self-attention without mask")
        if video_length is None:
            raise ValueError("SparseCausalAttnProcessor needs video_length")
        query = attn.to_q(hidden_states)
        key = attn.to_k(hidden_states)
        value = attn.to_v(hidden_states)

        previous = sparse_causal_frame_index(video_length, hidden_states.device)
        first = torch.zeros_like(previous)

        def gather(t: torch.Tensor) -> torch.Tensor:
            t = rearrange(t, "(b f) n c -> b f n c", f=video_length)
            t = torch.cat([t[:, first], t[:, previous]], dim=2)  # (b, f, 2n, c)
            return rearrange(t, "b f n c -> (b f) n c")

        out = _attend(attn, query, gather(key), gather(value), self.use_sdpa)
        out = attn.to_out[0](out)
        return attn.to_out[1](out)


class PlainAttnProcessor:
    """Cross-attention (``attn2``) and temporal attention (``attn_temp``): diffusers' ``AttnProcessor2_0`` /
    ``AttnProcessor`` computation for these layers (no mask, norm or residual inside), through :func:`_attend` so
    that ``upcast_attention`` holds on the SDPA path too."""

    def __init__(self, use_sdpa: bool = True) -> None:
        self.use_sdpa = use_sdpa

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if attention_mask is not None:
            raise ValueError("cross- and temporal attention take no mask")
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        query, key, value = attn.to_q(hidden_states), attn.to_k(context), attn.to_v(context)
        out = attn.to_out[0](_attend(attn, query, key, value, self.use_sdpa))
        return attn.to_out[1](out)


def standard_processor(use_sdpa: bool) -> PlainAttnProcessor:
    """The processor of cross- and temporal attention (SDPA or the plain softmax path)."""
    return PlainAttnProcessor(use_sdpa)


class BasicTransformerBlock3D(nn.Module):
    """ST-Attn -> cross-attn -> FF -> T-Attn, each a pre-LayerNorm residual (official ``BasicTransformerBlock``)."""

    def __init__(
        self,
        dim: int,
        num_attention_heads: int,
        attention_head_dim: int,
        cross_attention_dim: int,
        upcast_attention: bool = False,
    ) -> None:
        super().__init__()
        attn_kwargs = dict(
            heads=num_attention_heads, dim_head=attention_head_dim, upcast_attention=upcast_attention
        )
        self.norm1 = nn.LayerNorm(dim)
        self.attn1 = Attention(query_dim=dim, processor=SparseCausalAttnProcessor(), **attn_kwargs)
        self.norm2 = nn.LayerNorm(dim)
        self.attn2 = Attention(
            query_dim=dim,
            cross_attention_dim=cross_attention_dim,
            processor=PlainAttnProcessor(),
            **attn_kwargs,
        )
        self.norm3 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim, activation_fn="geglu")
        self.norm_temp = nn.LayerNorm(dim)
        self.attn_temp = Attention(query_dim=dim, processor=PlainAttnProcessor(), **attn_kwargs)
        # Upstream zeroes only the weight of the T-Attn output projection; its bias keeps the default init.
        nn.init.zeros_(self.attn_temp.to_out[0].weight)

    def forward(
        self, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor, video_length: int
    ) -> torch.Tensor:
        """hidden_states (b*f, hw, c); encoder_hidden_states (b*f, n, d), already repeated per frame."""
        hidden_states = self.attn1(self.norm1(hidden_states), video_length=video_length) + hidden_states
        hidden_states = self.attn2(self.norm2(hidden_states), encoder_hidden_states) + hidden_states
        hidden_states = self.ff(self.norm3(hidden_states)) + hidden_states
        # T-Attn: every spatial position attends over all frames; no positional encoding (permutation-equivariant).
        tokens = hidden_states.shape[1]
        hidden_states = rearrange(hidden_states, "(b f) d c -> (b d) f c", f=video_length)
        hidden_states = self.attn_temp(self.norm_temp(hidden_states)) + hidden_states
        return rearrange(hidden_states, "(b d) f c -> (b f) d c", d=tokens)


class Transformer3DModel(nn.Module):
    """Per-frame GroupNorm + projection around a stack of :class:`BasicTransformerBlock3D` (5-D in and out)."""

    def __init__(
        self,
        in_channels: int,
        num_attention_heads: int,
        cross_attention_dim: int,
        num_layers: int = 1,
        norm_num_groups: int = 32,
        use_linear_projection: bool = False,
        upcast_attention: bool = False,
    ) -> None:
        super().__init__()
        head_dim = in_channels // num_attention_heads
        self.use_linear_projection = use_linear_projection
        self.norm = nn.GroupNorm(norm_num_groups, in_channels, eps=1e-6)
        if use_linear_projection:  # SD 2.x
            self.proj_in = nn.Linear(in_channels, in_channels)
            self.proj_out = nn.Linear(in_channels, in_channels)
        else:
            self.proj_in = nn.Conv2d(in_channels, in_channels, 1)
            self.proj_out = nn.Conv2d(in_channels, in_channels, 1)
        self.transformer_blocks = nn.ModuleList(
            BasicTransformerBlock3D(
                in_channels, num_attention_heads, head_dim, cross_attention_dim, upcast_attention
            )
            for _ in range(num_layers)
        )

    def forward(self, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor) -> torch.Tensor:
        """hidden_states (b, c, f, h, w); encoder_hidden_states (b, n, d)."""
        b, c, f, h, w = hidden_states.shape
        x = rearrange(hidden_states, "b c f h w -> (b f) c h w")
        residual = x
        context = encoder_hidden_states.repeat_interleave(
            f, dim=0
        )  # (b*f, n, d), frame-major inside each video
        x = self.norm(x)  # per-frame statistics, unlike the resnet GroupNorm
        if self.use_linear_projection:
            x = self.proj_in(rearrange(x, "n c h w -> n (h w) c"))
        else:
            x = rearrange(self.proj_in(x), "n c h w -> n (h w) c")
        for block in self.transformer_blocks:
            x = block(x, context, video_length=f)
        if self.use_linear_projection:
            x = rearrange(self.proj_out(x), "n (h w) c -> n c h w", h=h, w=w)
        else:
            x = self.proj_out(rearrange(x, "n (h w) c -> n c h w", h=h, w=w))
        return rearrange(x + residual, "(b f) c h w -> b c f h w", f=f)


def set_attention_backend(module: nn.Module, use_sdpa: bool) -> None:
    """Switch every attention layer under ``module`` between SDPA and the plain softmax path (bench, tests)."""
    for name, child in module.named_modules():
        if isinstance(child, Attention):
            if name.endswith("attn1"):
                child.set_processor(SparseCausalAttnProcessor(use_sdpa))
            else:
                child.set_processor(standard_processor(use_sdpa))

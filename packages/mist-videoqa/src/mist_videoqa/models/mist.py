"""MIST: iterative spatial-temporal transformer over selected segments and regions (MIST Sec. 3, Fig. 2).

Module names follow the released checkpoints (``encode_vid``, ``ista.N.seg_selector``, ``ista.N.mmt.layer.M``,
``vqproj``) so that ``mist_videoqa.models.convert`` maps an official ``best_model.pth`` by renaming prefixes only.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mist_videoqa.models.config import MISTConfig
from mist_videoqa.models.selection import cascade_select, gumbel_topk, hard_topk, segment_features
from visioncore.hub import PretrainedMixin

__all__ = ["MIST", "LayerSelection", "MISTOutput", "box_grid", "sinusoidal_table"]

LN_EPS = 1e-12  # every LayerNorm of the official model


def sinusoidal_table(n_pos: int, dim: int) -> torch.Tensor:
    """Fixed position table [n_pos, dim]: sin on even, cos on odd columns (computed in float64, as released)."""
    pos = np.arange(n_pos)[:, None] / np.power(10000.0, 2 * (np.arange(dim) // 2) / dim)[None, :]
    table = np.zeros((n_pos, dim))
    table[:, 0::2], table[:, 1::2] = np.sin(pos[:, 0::2]), np.cos(pos[:, 1::2])
    return torch.from_numpy(table).float()


def box_grid(num_regions: int, size: int = 896) -> torch.Tensor:
    """[R, 5] boxes (x1/W, y1/H, x2/W, y2/H, area/(W*H)) of the crop grid; area with the +1 pixel convention."""
    side = math.isqrt(num_regions)
    rows, cols = (side, side) if side * side == num_regions else (1, num_regions)
    ch, cw = size // rows, size // cols
    boxes = []
    for r in range(rows):
        for c in range(cols):
            x1, y1 = c * cw, r * ch
            area = (cw + 1) * (ch + 1) / (size * size)
            boxes.append([x1 / size, y1 / size, (x1 + cw) / size, (y1 + ch) / size, area])
    return torch.tensor(boxes, dtype=torch.float32)


class _ExpELU(torch.autograd.Function):
    """ELU(x) = exp(min(x, 0)) - 1 + max(x, 0), with gradient exp(min(x, 0)).

    Same function as ``F.elu`` (alpha 1) to float rounding, 4x cheaper on CPU: PyTorch's CPU ``expm1`` (which
    ``F.elu`` uses) is not vectorised, ``exp`` is, and the region encoder applies ELU to every region of the batch.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        e = x.clamp(max=0).exp_()  # in place: one region-sized temporary fewer
        ctx.save_for_backward(e)
        return (e - 1).add_(x.clamp(min=0))

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (e,) = ctx.saved_tensors
        return grad * e


class EncoderVid(nn.Module):
    """Region encoder: box -> 1x1 conv, BN, ReLU (x2), concatenated with the crop feature, Linear + ELU."""

    def __init__(self, feature_dim: int, box_dim: int, box_hidden: int, d_model: int, boxes: torch.Tensor):
        super().__init__()
        self.bbox_conv = nn.Sequential(
            nn.Conv2d(box_dim, box_hidden, kernel_size=1),
            nn.BatchNorm2d(box_hidden),
            nn.ReLU(),
            nn.Conv2d(box_hidden, box_hidden, kernel_size=1),
            nn.BatchNorm2d(box_hidden),
            nn.ReLU(),
        )
        self.tohid = nn.Sequential(nn.Linear(feature_dim + box_hidden, d_model), nn.ELU())
        self.register_buffer("boxes", boxes, persistent=False)

    def forward(self, regions: torch.Tensor) -> torch.Tensor:
        """[B, T, R, D] -> [B, T, R, d]. Boxes are identical for every frame, so their branch runs once per region.

        With BatchNorm in training mode the batch statistics over the R distinct boxes equal those over all B*T*R
        copies (each box repeated equally often), up to the unbiased-variance factor of the running estimate.
        """
        r, d = regions.shape[2], regions.shape[3]
        box = self.bbox_conv(self.boxes.t().reshape(1, -1, 1, r).to(regions.dtype))[0, :, 0].t()  # [R, H]
        # Linear([feature, box]) = W_f feature + (W_b box + b): the box half once per region, not per frame.
        linear = self.tohid[0]
        box_term = F.linear(box, linear.weight[:, d:], linear.bias)  # [R, d_model]
        return _ExpELU.apply(F.linear(regions, linear.weight[:, :d]).add_(box_term))  # tohid[1] is this ELU


class Attention(nn.Module):
    """Multi-head self-attention with a key padding mask (plain matmuls, so FLOP counters see every product)."""

    def __init__(self, d_model: int, n_heads: int, dropout: float):
        super().__init__()
        self.n_heads = n_heads
        self.q_lin, self.k_lin = nn.Linear(d_model, d_model), nn.Linear(d_model, d_model)
        self.v_lin, self.out_lin = nn.Linear(d_model, d_model), nn.Linear(d_model, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        h = self.n_heads

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, n, h, d // h).transpose(1, 2)

        q, k, v = heads(self.q_lin(x)) / math.sqrt(d // h), heads(self.k_lin(x)), heads(self.v_lin(x))
        scores = (q @ k.transpose(-1, -2)).masked_fill(~mask.bool()[:, None, None, :], float("-inf"))
        context = self.dropout(scores.softmax(dim=-1)) @ v
        return self.out_lin(context.transpose(1, 2).reshape(b, n, d))


class FFN(nn.Module):
    def __init__(self, d_model: int, d_ff: int, dropout: float):
        super().__init__()
        self.lin1, self.lin2 = nn.Linear(d_model, d_ff), nn.Linear(d_ff, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.lin2(F.gelu(self.lin1(x))))  # exact (erf) GELU


class Block(nn.Module):
    """DistilBERT-style post-LN transformer block."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float):
        super().__init__()
        self.attention = Attention(d_model, n_heads, dropout)
        self.sa_layer_norm = nn.LayerNorm(d_model, eps=LN_EPS)
        self.ffn = FFN(d_model, d_ff, dropout)
        self.output_layer_norm = nn.LayerNorm(d_model, eps=LN_EPS)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.sa_layer_norm(self.attention(x, mask) + x)
        return self.output_layer_norm(self.ffn(x) + x)


class Transformer(nn.Module):
    def __init__(self, n_blocks: int, d_model: int, n_heads: int, d_ff: int, dropout: float):
        super().__init__()
        self.layer = nn.ModuleList(Block(d_model, n_heads, d_ff, dropout) for _ in range(n_blocks))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        for block in self.layer:
            x = block(x, mask)
        return x


class Embeddings(nn.Module):
    """Fixed sinusoidal positions + modality (0 for the Q question slots, 1 for video), then LN and dropout."""

    def __init__(self, d_model: int, language_len: int, vision_len: int, dropout: float):
        super().__init__()
        self.position_embeddings = nn.Embedding(language_len + vision_len, d_model)
        self.position_embeddings.weight.data.copy_(sinusoidal_table(language_len + vision_len, d_model))
        self.position_embeddings.weight.requires_grad_(False)
        self.modality_embedding = nn.Embedding(2, d_model)
        self.register_buffer(
            "modality", torch.tensor([0] * language_len + [1] * vision_len), persistent=False
        )
        self.LayerNorm = nn.LayerNorm(d_model, eps=LN_EPS)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[1]
        x = x + self.position_embeddings.weight[:n] + self.modality_embedding(self.modality[:n])
        return self.dropout(self.LayerNorm(x))


class Selector(nn.Module):
    """Relevance scores LN(Lin(candidates)) . LN(Lin(q_feat)); scaled by 1/sqrt(d) unless ``scaled`` is off."""

    def __init__(self, q_dim: int, k_dim: int, d_model: int, scaled: bool):
        super().__init__()
        self.linear_Q, self.norm_Q = nn.Linear(q_dim, d_model), nn.LayerNorm(d_model, eps=LN_EPS)
        self.linear_K, self.norm_K = nn.Linear(k_dim, d_model), nn.LayerNorm(d_model, eps=LN_EPS)
        self.scale = 1.0 / math.sqrt(d_model) if scaled else 1.0

    def tie_init(self, std: float = 0.02) -> None:
        """Start linear_Q and linear_K as one (semi-)orthogonal matrix with the released init's entry size ``std``.

        The initial score is then the LN-centred cosine similarity of question and candidate in the input space (the
        CLIP space of q_feat), rather than the product of two unrelated random projections, whose scores carry no
        question-candidate similarity at all, so that selection has nothing to start from. Orthogonal rather than
        Gaussian: a Gaussian projection perturbs inner products by ~sqrt(2/d), as much as the signal of a small object.
        """
        if self.linear_K.weight.shape != self.linear_Q.weight.shape:
            raise ValueError("tied selector init needs candidates of the query's dimension")
        with torch.no_grad():
            weight = self.linear_Q.weight
            nn.init.orthogonal_(weight, gain=std * math.sqrt(max(weight.shape)))
            self.linear_Q.bias.zero_()
            self.linear_K.weight.copy_(weight)
            self.linear_K.bias.zero_()

    def forward(self, q_feat: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """q_feat [B, Dq], keys [B, ..., N, Dk] -> scores [B, ..., N]."""
        q = self.norm_Q(self.linear_Q(q_feat))
        k = self.norm_K(self.linear_K(keys))
        q = q.view(q.shape[0], *([1] * (k.dim() - 2)), q.shape[-1])
        return (k * q).sum(-1) * self.scale


class LayerSelection(NamedTuple):
    """What one ISTA layer looked at: segment indices [B, topk] and region indices [B, topk*F, topj] (or None)."""

    segments: torch.Tensor | None
    regions: torch.Tensor | None


class MISTOutput(NamedTuple):
    logits: torch.Tensor  # [B, num_answers] or [B, mc]
    selections: list[LayerSelection]  # one per ISTA layer
    mode: str  # the selection mode that produced these outputs


class ISTA(nn.Module):
    """One ISTA layer (Sec. 3.2-3.3): segment selection, region selection, multi-modal attention."""

    def __init__(self, cfg: MISTConfig, word_dim: int, seg_dim: int):
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        q_len = 0 if cfg.video_only else cfg.qmax
        self.position = Embeddings(d, q_len, cfg.num_segments + cfg.num_region_tokens, cfg.dropout)
        self.mmt = Transformer(cfg.n_blocks, d, cfg.n_heads, cfg.d_ff, cfg.dropout)
        scaled = cfg.selection == "topk"
        self.seg_selector = Selector(cfg.feature_dim, seg_dim, d, scaled)
        region_key_dim = cfg.feature_dim if cfg.region_keys == "features" else d
        self.reg_selector = Selector(cfg.feature_dim, region_key_dim, d, scaled)
        self.linear_video, self.norm_video = nn.Linear(seg_dim, d), nn.LayerNorm(d, eps=LN_EPS)
        self.linear_patch, self.norm_patch = nn.Linear(d, d), nn.LayerNorm(d, eps=LN_EPS)
        if not cfg.video_only:
            self.linear_question, self.norm_question = nn.Linear(word_dim, d), nn.LayerNorm(d, eps=LN_EPS)

    def _fixed_tokens(self, pool: torch.Tensor) -> torch.Tensor:
        """The token sets of the selector-free baselines, from the region pool [B, T, R, d]."""
        cfg, (b, t, r, d) = self.cfg, pool.shape
        if cfg.selector == "uniform":  # topk frames at the centres of topk equal intervals
            frames = [(2 * i + 1) * t // (2 * cfg.topk) for i in range(cfg.topk)]
            return pool[:, frames].reshape(b, -1, d)
        if cfg.selector == "mean_pool":
            return pool.mean(dim=2)
        return pool.reshape(b, t * r, d)  # dense

    def _segment_choice(self, scores: torch.Tensor, event: torch.Tensor | None) -> torch.Tensor | None:
        """Replacement scores for the random / oracle selectors (None: use the learned scores)."""
        cfg = self.cfg
        if cfg.selector == "random":  # a fresh draw for every question and every layer
            return torch.rand(scores.shape, device=scores.device)
        if cfg.selector == "oracle":
            if event is None or bool((event < 0).any()):
                raise ValueError("the oracle selector needs the event segment of every question")
            fake = torch.rand(scores.shape, device=scores.device)  # a random other segment ranks second
            return fake.scatter(1, event.view(-1, 1), 2.0)
        return None

    def select(
        self,
        q_feat: torch.Tensor,
        seg: torch.Tensor,
        pool: torch.Tensor,
        crops: torch.Tensor,
        event: torch.Tensor | None,
    ) -> tuple[torch.Tensor, LayerSelection]:
        """Region tokens [B, N, d] for the transformer, and the indices chosen.

        ``pool`` [B, T, R, d] are the encoded regions (the tokens), ``crops`` [B, T, R, D] the crop features as read;
        the region selector scores ``crops`` if ``region_keys`` is ``features``, else ``pool`` (released).
        """
        cfg = self.cfg
        if cfg.selector in ("uniform", "mean_pool", "dense"):
            return self._fixed_tokens(pool), LayerSelection(None, None)
        b, t, r, d = pool.shape
        f = cfg.frames_per_segment
        scores = self.seg_selector(q_feat, seg)  # [B, S]
        forced = self._segment_choice(scores, event)
        keys = crops if cfg.region_keys == "features" else pool
        if not self.training and cfg.selection == "topk":
            region_scores = self.reg_selector(q_feat, keys)  # [B, T, R]
            sel = cascade_select(
                scores if forced is None else forced, region_scores, pool, topk=cfg.topk, topj=cfg.topj
            )
            return sel.tokens, LayerSelection(sel.segments, sel.regions)
        if forced is None:
            seg_w = gumbel_topk(
                scores, cfg.topk, mode=cfg.selection, relax=cfg.relax, tau=cfg.tau, training=True
            )
        else:
            seg_w = hard_topk(forced, cfg.topk)[1].detach()
        frames = (seg_w @ pool.reshape(b, cfg.num_segments, -1)).view(b, cfg.topk * f, r, d)
        if cfg.region_keys == "features":  # the same blend of the crop features, scored in their own space
            keys = (seg_w @ crops.reshape(b, cfg.num_segments, -1)).view(b, cfg.topk * f, r, -1)
        else:
            keys = frames
        region_scores = self.reg_selector(q_feat, keys)  # [B, k*F, R], from (possibly blended) frames
        relax = cfg.region_relax or cfg.relax
        relax = "st" if cfg.selector == "oracle" else relax  # the oracle is an upper bound only if hard
        reg_w = gumbel_topk(
            region_scores, cfg.topj, mode=cfg.selection, relax=relax, tau=cfg.tau, training=True
        )
        tokens = (reg_w @ frames).reshape(
            b, -1, d
        )  # frame by frame: all draws of a frame, then the next frame
        return tokens, LayerSelection(seg_w.argmax(-1), reg_w.argmax(-1))

    def forward(
        self,
        q_feat: torch.Tensor,
        q_mask: torch.Tensor,
        words: torch.Tensor,
        seg: torch.Tensor,
        pool: torch.Tensor,
        crops: torch.Tensor,
        event: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, LayerSelection]:
        """-> (all output tokens, output question tokens, output segment tokens, selection)."""
        tokens, selection = self.select(q_feat, seg, pool, crops, event)
        parts = [] if self.cfg.video_only else [self.norm_question(F.gelu(self.linear_question(words)))]
        parts += [
            self.norm_video(F.gelu(self.linear_video(seg))),
            self.norm_patch(F.gelu(self.linear_patch(tokens))),
        ]
        x = self.position(torch.cat(parts, dim=1))
        video_mask = torch.ones(x.shape[0], x.shape[1] - (0 if self.cfg.video_only else q_mask.shape[1]))
        mask = (
            video_mask
            if self.cfg.video_only
            else torch.cat([q_mask.float(), video_mask.to(q_mask.device)], 1)
        )
        out = self.mmt(x, mask.to(x.device))
        q_len = 0 if self.cfg.video_only else words.shape[1]
        return out, out[:, :q_len], out[:, q_len : q_len + seg.shape[1]], selection


def _bert(cfg: MISTConfig) -> nn.Module:
    from transformers import BertConfig, BertModel

    config = BertConfig(
        vocab_size=cfg.bert_vocab_size,
        hidden_size=cfg.bert_hidden,
        num_hidden_layers=cfg.bert_layers,
        num_attention_heads=cfg.bert_heads,
        intermediate_size=cfg.bert_ff,
        max_position_embeddings=cfg.bert_max_positions,
    )
    config._attn_implementation = "eager"  # plain matmuls: deterministic on CPU and visible to FLOP counters
    return BertModel(config, add_pooling_layer=False)


class MIST(nn.Module, PretrainedMixin):
    """The MIST video QA model on precomputed CLIP frame/crop features (``video`` [B, T, 1+R, D], slot 0 = frame).

    Inputs: ``q_feat`` [B, D] (CLIP text EOT embedding), BERT question ids/mask [B, L<=qmax]; for multiple choice,
    candidate ids/mask [B, mc, La] ("question [SEP] option"). Open-ended answers are the ``answer_ids`` buffer,
    re-encoded by the answer BERT at every training forward.
    """

    def __init__(self, config: MISTConfig):
        super().__init__()
        if isinstance(config, dict):
            config = MISTConfig(**config)
        self.config = cfg = config
        self.encode_vid = EncoderVid(
            cfg.feature_dim, cfg.box_dim, cfg.box_hidden, cfg.d_model, self._boxes(cfg.num_regions)
        )
        layers = [ISTA(cfg, cfg.bert_hidden, cfg.feature_dim)]
        layers += [ISTA(cfg, cfg.d_model, cfg.d_model) for _ in range(cfg.n_ista - 1)]
        self.ista = nn.ModuleList(layers)
        self.vqproj = nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(cfg.d_model, cfg.d_model))
        self.apply(self._init_weights)
        if cfg.selector_init == "tied":
            self._tie_selectors()
        self.question_bert = _bert(cfg)
        self.answer_bert = _bert(cfg)
        self.answer_proj = nn.Linear(cfg.bert_hidden, cfg.d_model)
        if cfg.question_blind:
            self.question_constant = nn.Parameter(torch.randn(cfg.qmax, cfg.bert_hidden) * 0.02)
        rows = cfg.num_answers if cfg.mc == 0 else 0
        self.register_buffer("answer_ids", torch.zeros(rows, cfg.amax, dtype=torch.long))
        self.register_buffer("answer_mask", torch.zeros(rows, cfg.amax, dtype=torch.long))
        self._answer_cache: torch.Tensor | None = None

    def _boxes(self, num_regions: int) -> torch.Tensor:
        boxes = box_grid(num_regions)
        if self.config.frame_as_region:  # the whole frame as a 17th region
            boxes = torch.cat([boxes, torch.tensor([[0.0, 0.0, 1.0, 1.0, 1.0]])])
        return boxes

    def _tie_selectors(self) -> None:
        """Tied init for the selectors that compare q_feat with CLIP-space candidates: the first layer's segment
        selector (segment means of CLIP frame features) and, with ``region_keys=features``, every region selector.
        Later layers' segment selectors score transformer outputs, which share no space with q_feat."""
        self.ista[0].seg_selector.tie_init()
        if self.config.region_keys == "features":
            for layer in self.ista:
                layer.reg_selector.tie_init()

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            module.weight.data.normal_(0.0, 0.02)
            if module.bias is not None:
                module.bias.data.zero_()
        elif isinstance(module, nn.Embedding) and module.weight.requires_grad:
            module.weight.data.normal_(0.0, 0.02)
        elif isinstance(module, nn.LayerNorm):
            module.weight.data.fill_(1.0)
            module.bias.data.zero_()

    def train(self, mode: bool = True) -> MIST:
        self._answer_cache = None  # answers are re-encoded while training; cached only in eval mode
        return super().train(mode)

    def set_answers(self, ids: torch.Tensor, mask: torch.Tensor) -> None:
        """Install the tokenised open-ended answer vocabulary ([num_answers, <=amax])."""
        if self.config.mc or ids.shape[0] != self.config.num_answers or ids.shape[1] > self.config.amax:
            raise ValueError(
                f"answer tokens {tuple(ids.shape)} do not fit num_answers={self.config.num_answers}, "
                f"amax={self.config.amax}, mc={self.config.mc}"
            )
        self.answer_ids.zero_()
        self.answer_mask.zero_()
        self.answer_ids[:, : ids.shape[1]] = ids
        self.answer_mask[:, : ids.shape[1]] = mask
        self._answer_cache = None

    def encode_text(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Answer / candidate embeddings: the answer BERT's CLS (or its tokens' masked mean) -> Linear to d_model."""
        hidden = self.answer_bert(input_ids=ids, attention_mask=mask).last_hidden_state
        if self.config.answer_pool in ("mean", "words"):
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            if self.config.answer_pool == "words":  # drop [CLS] and the last real token ([SEP])
                last = mask.sum(1).clamp(min=1) - 1
                weights = weights.clone()
                weights[:, 0] = 0
                weights[torch.arange(mask.shape[0], device=mask.device), last] = 0
            return self.answer_proj((hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0))
        return self.answer_proj(hidden[:, 0])

    def _answers(self) -> torch.Tensor:
        if self.training or self._answer_cache is None:
            width = max(int(self.answer_mask.sum(1).max()), 1)
            answers = self.encode_text(self.answer_ids[:, :width], self.answer_mask[:, :width])
            if self.training:
                return answers
            self._answer_cache = answers
        return self._answer_cache

    def _question_tokens(self, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """BERT outputs zero-padded to qmax slots (slot 0 = CLS), and the matching mask."""
        cfg, b = self.config, ids.shape[0]
        if cfg.question_blind:
            return self.question_constant.expand(b, -1, -1), torch.ones(b, cfg.qmax, device=ids.device)
        ids, mask = ids[:, : cfg.qmax], mask[:, : cfg.qmax]
        words = self.question_bert(input_ids=ids, attention_mask=mask).last_hidden_state
        pad = cfg.qmax - words.shape[1]
        return F.pad(words, (0, 0, 0, pad)), F.pad(mask.float(), (0, pad))

    def forward(
        self,
        video: torch.Tensor,
        q_feat: torch.Tensor,
        question_ids: torch.Tensor,
        question_mask: torch.Tensor,
        candidate_ids: torch.Tensor | None = None,
        candidate_mask: torch.Tensor | None = None,
        event_segment: torch.Tensor | None = None,
    ) -> MISTOutput:
        cfg = self.config
        b, t, slots, dim = video.shape
        if (t, slots, dim) != (cfg.num_frames, cfg.num_regions + 1, cfg.feature_dim):
            raise ValueError(
                f"video features of shape {tuple(video.shape)} do not fit the model "
                f"(expected [B, {cfg.num_frames}, {cfg.num_regions + 1}, {cfg.feature_dim}])"
            )
        frames, crops = video[:, :, 0], video[:, :, 1:].contiguous()  # one copy, not one per use
        if cfg.frame_as_region:
            crops = torch.cat([crops, frames.unsqueeze(2)], dim=2)
        pool = self.encode_vid(crops)  # fixed across layers (Sec. 3.3: regions are re-selected from the pool)
        seg = segment_features(frames, cfg.num_segments)
        q_feat = torch.zeros_like(q_feat) if cfg.question_blind else F.normalize(q_feat, dim=-1)
        words, q_mask = self._question_tokens(question_ids, question_mask)
        outputs, selections = [], []
        for layer in self.ista:
            out, words, seg, selection = layer(q_feat, q_mask, words, seg, pool, crops, event_segment)
            outputs.append(out.mean(dim=1) if cfg.video_only else out[:, 0])
            selections.append(selection)
        fusion = self.vqproj(torch.stack(outputs).sum(dim=0))  # readout: sum of the per-layer CLS outputs
        if cfg.mc:
            if candidate_ids is None or candidate_mask is None:
                raise ValueError("a multiple-choice model needs candidate_ids and candidate_mask")
            n = candidate_ids.shape[1]
            cands = self.encode_text(candidate_ids.flatten(0, 1), candidate_mask.flatten(0, 1)).view(b, n, -1)
            logits = torch.einsum("bnd,bd->bn", cands, fusion)  # no squeeze: a batch of 1 stays [1, mc]
        else:
            logits = fusion @ self._answers().t()
        return MISTOutput(logits, selections, self.mode)

    @property
    def mode(self) -> str:
        """Names what produced an output: selection mode, training relaxation, and the selector if not learned."""
        cfg = self.config
        name = cfg.selection if cfg.selection == "official" else f"topk-{cfg.relax}"
        if cfg.selection == "topk" and cfg.region_relax and cfg.region_relax != cfg.relax:
            name += f"/regions-{cfg.region_relax}"
        return name if cfg.selector == "learned" else f"{name}/{cfg.selector}"

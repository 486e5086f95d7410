"""BLIP-base as PTP pretrains it (PTP adds no parameters): ViT + BERT with cross-attention + tied causal decoder.

``BLIPPretrain`` computes the three unchanged BLIP losses on (image, text) pairs, 1:1:1 (PTP Sec. 3.3; BLIP Sec. 3.2):

- ITA: CLS features (``[CLS]`` text token) against momentum features and a queue; soft targets
  ``alpha * softmax(sim_m) + (1 - alpha) * identity`` (ALBEF's momentum distillation).
- ITM: ``[ENC]`` as first token, cross-attention to the image; one hard negative image per text and one text per
  image drawn from ``softmax(sim) + 1e-4`` with the diagonal zeroed; CE over 3B pairs (positives, text + negative
  image, image + negative text).
- LM: ``[DEC]`` as first token, causal self-attention; padding -> -100; no label smoothing (PTP's ``med.py``).

Vision: visioncore's ViT; image embeddings are the tokens after the final LayerNorm. Text: transformers'
``BlipTextModel`` built with ``is_decoder=True`` (so that its layers get cross-attention) and called with
``is_decoder=False`` for the bidirectional ITA/ITM encoder; ``BlipTextLMHeadModel`` decoder sharing every module with
the encoder except self-attention, its LM head tied to the word embeddings. Parameter names follow BLIP's
checkpoints (``visual_encoder``, ``text_encoder``, ``text_decoder``, ``vision_proj``, ``text_proj``, ``itm_head``,
``temp``, ``*_m``, ``image_queue``, ``text_queue``, ``queue_ptr``), except the ViT's ``timm_model.`` level.
"""

import copy
import dataclasses
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from transformers import BlipTextConfig, BlipTextLMHeadModel, BlipTextModel

from visioncore.backbones import ViT, vit_base, vit_large, vit_small, vit_tiny
from visioncore.hub import PretrainedMixin

__all__ = ["BLIPCaption", "BLIPConfig", "BLIPPretrain", "BLIPRetrieval"]

_VITS = {"tiny": vit_tiny, "small": vit_small, "base": vit_base, "large": vit_large}


@dataclass
class BLIPConfig:
    """Model shape and BLIP hyper-parameters (defaults: BLIP-base / PTP-BLIP pretraining, 30524-id vocab).

    ``vision_width/depth/heads`` of 0 keep the ``vit`` size's own; token ids are those of the tokenizer folder
    (``ptp_vlp.tokenizer.load_tokenizer``) the model is used with.
    """

    vit: str = "base"
    image_size: int = 224
    patch_size: int = 16
    vision_width: int = 0
    vision_depth: int = 0
    vision_heads: int = 0
    pos_embed: str = "learn"
    pos_embed_temperature: float = 10000.0
    drop_path_rate: float = 0.0
    vocab_size: int = 30524
    text_width: int = 768
    text_depth: int = 12
    text_heads: int = 12
    text_intermediate: int = 3072
    max_text_positions: int = 512
    text_dropout: float = 0.1
    embed_dim: int = 256
    queue_size: int = 57600
    momentum: float = 0.995
    temp: float = 0.07
    pad_token_id: int = 0
    cls_token_id: int = 101
    sep_token_id: int = 102
    bos_token_id: int = 30522
    enc_token_id: int = 30523

    def __post_init__(self) -> None:
        if self.vit not in _VITS:
            raise ValueError(f"model.vit must be one of {', '.join(_VITS)}, got {self.vit!r}")
        if self.pos_embed not in ("learn", "sincos"):
            raise ValueError(f"model.pos_embed must be 'learn' or 'sincos', got {self.pos_embed!r}")
        if not self.pos_embed_temperature > 0:
            raise ValueError(
                f"model.pos_embed_temperature must be positive, got {self.pos_embed_temperature}"
            )
        for name in ("image_size", "patch_size", "vocab_size", "text_width", "text_depth", "text_heads"):
            if getattr(self, name) <= 0:
                raise ValueError(f"model.{name} must be positive, got {getattr(self, name)}")
        if self.image_size % self.patch_size:
            raise ValueError(
                f"model.image_size {self.image_size} is not a multiple of patch_size {self.patch_size}"
            )
        if self.queue_size < 1 or self.embed_dim < 1:
            raise ValueError("model.queue_size and model.embed_dim must be positive")
        if not 0.0 <= self.momentum <= 1.0:
            raise ValueError(f"model.momentum must be in [0, 1], got {self.momentum}")
        if not 0.001 <= self.temp <= 0.5:
            raise ValueError(f"model.temp must be in [0.001, 0.5], got {self.temp}")
        for name in ("pad_token_id", "cls_token_id", "sep_token_id", "bos_token_id", "enc_token_id"):
            if not 0 <= getattr(self, name) < self.vocab_size:
                raise ValueError(
                    f"model.{name}={getattr(self, name)} is outside the vocabulary ({self.vocab_size})"
                )


def _as_config(config: BLIPConfig | dict | None) -> BLIPConfig:
    if config is None:
        return BLIPConfig()
    if isinstance(config, dict):  # from config.json
        return BLIPConfig(**config)
    return dataclasses.replace(config)


def build_vit(cfg: BLIPConfig) -> ViT:
    shape = {
        k: v
        for k, v in (
            ("embed_dim", cfg.vision_width),
            ("depth", cfg.vision_depth),
            ("num_heads", cfg.vision_heads),
        )
        if v
    }
    return _VITS[cfg.vit](
        patch_size=cfg.patch_size,
        img_size=cfg.image_size,
        pos_embed=cfg.pos_embed,
        sincos_temperature=cfg.pos_embed_temperature,
        drop_path_rate=cfg.drop_path_rate,
        **shape,
    )


def text_config(cfg: BLIPConfig, vision_width: int) -> BlipTextConfig:
    """BLIP's BERT: ``is_decoder=True`` so that ``BlipTextLayer`` builds cross-attention."""
    return BlipTextConfig(
        vocab_size=cfg.vocab_size,
        hidden_size=cfg.text_width,
        encoder_hidden_size=vision_width,
        intermediate_size=cfg.text_intermediate,
        num_hidden_layers=cfg.text_depth,
        num_attention_heads=cfg.text_heads,
        max_position_embeddings=cfg.max_text_positions,
        hidden_dropout_prob=cfg.text_dropout,
        attention_probs_dropout_prob=cfg.text_dropout,
        pad_token_id=cfg.pad_token_id,
        bos_token_id=cfg.bos_token_id,
        sep_token_id=cfg.sep_token_id,
        eos_token_id=cfg.sep_token_id,
        is_decoder=True,
        label_smoothing=0.0,
    )


def tie_decoder(encoder: BlipTextModel, decoder: BlipTextLMHeadModel) -> None:
    """Share every decoder module with the encoder except self-attention (BLIP's ``tie_encoder_decoder_weights``
    with ``skip_key='/attention'``); the LM head stays tied to the (shared) word embeddings."""
    bert = decoder.bert
    bert.embeddings = encoder.embeddings
    for dec_layer, enc_layer in zip(bert.encoder.layer, encoder.encoder.layer):
        dec_layer.crossattention = enc_layer.crossattention
        dec_layer.intermediate = enc_layer.intermediate
        dec_layer.output = enc_layer.output
    decoder.cls.predictions.decoder.weight = encoder.embeddings.word_embeddings.weight


@torch.no_grad()
def _gather(x: torch.Tensor) -> torch.Tensor:
    """All ranks' rows concatenated in rank order (no gradient), or ``x`` itself in a single process."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts, dim=0)


class _Encoders(nn.Module):
    """Image/text encoders, projections, ITM head, temperature, momentum copies and the feature queues."""

    def _build_encoders(self, cfg: BLIPConfig) -> None:
        self.visual_encoder = build_vit(cfg)
        width = self.visual_encoder.embed_dim
        self.text_config = text_config(cfg, width)
        self.text_encoder = BlipTextModel(self.text_config, add_pooling_layer=False)
        self.vision_proj = nn.Linear(width, cfg.embed_dim)
        self.text_proj = nn.Linear(cfg.text_width, cfg.embed_dim)
        self.itm_head = nn.Linear(cfg.text_width, 2)
        self.temp = nn.Parameter(torch.tensor(cfg.temp))
        self.visual_encoder_m = copy.deepcopy(self.visual_encoder)
        self.vision_proj_m = copy.deepcopy(self.vision_proj)
        self.text_encoder_m = copy.deepcopy(self.text_encoder)
        self.text_proj_m = copy.deepcopy(self.text_proj)
        for module in self._momentum_modules():
            module.requires_grad_(False)
        self.register_buffer("image_queue", F.normalize(torch.randn(cfg.embed_dim, cfg.queue_size), dim=0))
        self.register_buffer("text_queue", F.normalize(torch.randn(cfg.embed_dim, cfg.queue_size), dim=0))
        self.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))

    def _pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [
            (self.visual_encoder, self.visual_encoder_m),
            (self.vision_proj, self.vision_proj_m),
            (self.text_encoder, self.text_encoder_m),
            (self.text_proj, self.text_proj_m),
        ]

    def _momentum_modules(self) -> list[nn.Module]:
        return [m for _, m in self._pairs()]

    @torch.no_grad()
    def copy_params(self) -> None:
        """Momentum encoders := online encoders (after loading new weights into the online ones)."""
        for online, momentum in self._pairs():
            momentum.load_state_dict(online.state_dict())

    @torch.no_grad()
    def momentum_update(self) -> None:
        m = self.config.momentum
        for online, momentum in self._pairs():
            for p, p_m in zip(online.parameters(), momentum.parameters()):
                p_m.data.mul_(m).add_(p.data, alpha=1.0 - m)

    def image_embeds(self, images: torch.Tensor, momentum: bool = False) -> torch.Tensor:
        """``[B, 1 + N, D]`` ViT tokens after the final LayerNorm (as BLIP's ViT returns them)."""
        vit = self.visual_encoder_m if momentum else self.visual_encoder
        return vit.forward_tokens(images, final_norm=True)

    def image_feat(self, embeds: torch.Tensor, momentum: bool = False) -> torch.Tensor:
        proj = self.vision_proj_m if momentum else self.vision_proj
        return F.normalize(proj(embeds[:, 0, :]), dim=-1)

    def text_feat(self, ids: torch.Tensor, mask: torch.Tensor, momentum: bool = False) -> torch.Tensor:
        """Unimodal text CLS feature (bidirectional, no cross-attention), projected and normalised."""
        enc, proj = (
            (self.text_encoder_m, self.text_proj_m) if momentum else (self.text_encoder, self.text_proj)
        )
        out = enc(input_ids=ids, attention_mask=mask, is_decoder=False)
        return F.normalize(proj(out.last_hidden_state[:, 0, :]), dim=-1)

    def itm_logits(self, ids: torch.Tensor, mask: torch.Tensor, image_embeds: torch.Tensor) -> torch.Tensor:
        """``[B, 2]`` ITM logits of (text, image) pairs; the first token is replaced by ``[ENC]``."""
        enc_ids = ids.clone()
        enc_ids[:, 0] = self.config.enc_token_id
        atts = torch.ones(image_embeds.shape[:2], dtype=torch.long, device=image_embeds.device)
        out = self.text_encoder(
            input_ids=enc_ids,
            attention_mask=mask,
            encoder_hidden_states=image_embeds,
            encoder_attention_mask=atts,
            is_decoder=False,
        )
        return self.itm_head(out.last_hidden_state[:, 0, :])

    @torch.no_grad()
    def _enqueue(
        self, image_feat: torch.Tensor, text_feat: torch.Tensor, idx: torch.Tensor | None = None
    ) -> None:
        """Write all ranks' momentum features at ``queue_ptr`` (the queue size must be a multiple of the global
        batch, as in BLIP)."""
        image_feat, text_feat = _gather(image_feat), _gather(text_feat)
        n = image_feat.shape[0]
        size = self.image_queue.shape[1]
        if size % n:
            raise ValueError(f"queue size {size} is not a multiple of the global batch size {n}")
        ptr = int(self.queue_ptr)
        self.image_queue[:, ptr : ptr + n] = image_feat.T
        self.text_queue[:, ptr : ptr + n] = text_feat.T
        if idx is not None:
            self.idx_queue[:, ptr : ptr + n] = _gather(idx).view(1, -1)
        self.queue_ptr[0] = (ptr + n) % size

    def _ita(
        self,
        image_feat: torch.Tensor,
        text_feat: torch.Tensor,
        image_feat_m: torch.Tensor,
        text_feat_m: torch.Tensor,
        alpha: float,
        sim_targets: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """ITA loss with momentum distillation; also the in-batch sims used to draw ITM hard negatives."""
        image_all = torch.cat([image_feat_m.T, self.image_queue.clone().detach()], dim=1)
        text_all = torch.cat([text_feat_m.T, self.text_queue.clone().detach()], dim=1)
        with torch.no_grad():
            i2t_targets = (
                alpha * F.softmax(image_feat_m @ text_all / self.temp, dim=1) + (1 - alpha) * sim_targets
            )
            t2i_targets = (
                alpha * F.softmax(text_feat_m @ image_all / self.temp, dim=1) + (1 - alpha) * sim_targets
            )
        sim_i2t = image_feat @ text_all / self.temp
        sim_t2i = text_feat @ image_all / self.temp
        loss_i2t = -(F.log_softmax(sim_i2t, dim=1) * i2t_targets).sum(1).mean()
        loss_t2i = -(F.log_softmax(sim_t2i, dim=1) * t2i_targets).sum(1).mean()
        b = image_feat.shape[0]
        return (loss_i2t + loss_t2i) / 2, sim_i2t[:, :b], sim_t2i[:, :b]

    def _itm(
        self,
        ids: torch.Tensor,
        mask: torch.Tensor,
        image_embeds: torch.Tensor,
        sim_i2t: torch.Tensor,
        sim_t2i: torch.Tensor,
        same: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """ITM loss over positives, (text, hard negative image) and (image, hard negative text)."""
        b = ids.shape[0]
        with torch.no_grad():
            w_t2i = F.softmax(sim_t2i.float(), dim=1) + 1e-4
            w_i2t = F.softmax(sim_i2t.float(), dim=1) + 1e-4
            if same is None:
                w_t2i.fill_diagonal_(0)
                w_i2t.fill_diagonal_(0)
            else:  # retrieval fine-tuning: no image of the same id is a negative
                w_t2i.masked_fill_(same, 0)
                w_i2t.masked_fill_(same, 0)
            neg_images = torch.multinomial(w_t2i, 1).squeeze(1)
            neg_texts = torch.multinomial(w_i2t, 1).squeeze(1)
        ids_all = torch.cat([ids, ids, ids[neg_texts]], dim=0)
        mask_all = torch.cat([mask, mask, mask[neg_texts]], dim=0)
        images_all = torch.cat([image_embeds, image_embeds[neg_images], image_embeds], dim=0)
        logits = self.itm_logits(ids_all, mask_all, images_all)
        labels = torch.cat([torch.ones(b, dtype=torch.long), torch.zeros(2 * b, dtype=torch.long)]).to(
            ids.device
        )
        return F.cross_entropy(logits, labels)


class BLIPPretrain(_Encoders, PretrainedMixin):
    """BLIP pretraining model (ITA + ITM + LM); with PTP the prompted caption is simply the text of all three."""

    def __init__(self, config: BLIPConfig | None = None):
        super().__init__()
        self.config = _as_config(config)
        self._build_encoders(self.config)
        self.text_decoder = BlipTextLMHeadModel(self.text_config)
        tie_decoder(self.text_encoder, self.text_decoder)

    def lm_loss(
        self, ids: torch.Tensor, mask: torch.Tensor, image_embeds: torch.Tensor, reduction: str = "mean"
    ) -> torch.Tensor:
        """Causal LM loss with ``[DEC]`` as first token and padding ignored; ``reduction="none"`` gives the summed
        negative log-likelihood of each text (its decoder score)."""
        dec_ids = ids.clone()
        dec_ids[:, 0] = self.config.bos_token_id
        targets = dec_ids.masked_fill(dec_ids == self.config.pad_token_id, -100)
        atts = torch.ones(image_embeds.shape[:2], dtype=torch.long, device=image_embeds.device)
        out = self.text_decoder(
            input_ids=dec_ids,
            attention_mask=mask,
            encoder_hidden_states=image_embeds,
            encoder_attention_mask=atts,
            labels=targets,
            reduction=reduction,
        )
        return out.loss

    def forward(
        self, images: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor, alpha: float = 0.4
    ) -> dict[str, torch.Tensor]:
        """``{"ita", "itm", "lm"}`` losses of a batch (the caller sums them 1:1:1)."""
        with torch.no_grad():
            self.temp.clamp_(0.001, 0.5)
        image_embeds = self.image_embeds(images)
        image_feat = self.image_feat(image_embeds)
        text_feat = self.text_feat(ids, mask)
        with torch.no_grad():
            self.momentum_update()
            image_feat_m = self.image_feat(self.image_embeds(images, momentum=True), momentum=True)
            text_feat_m = self.text_feat(ids, mask, momentum=True)
            sim_targets = torch.zeros(
                ids.shape[0], ids.shape[0] + self.image_queue.shape[1], device=ids.device
            )
            sim_targets.fill_diagonal_(1)
        loss_ita, sim_i2t, sim_t2i = self._ita(
            image_feat, text_feat, image_feat_m, text_feat_m, alpha, sim_targets
        )
        self._enqueue(image_feat_m, text_feat_m)
        loss_itm = self._itm(ids, mask, image_embeds, sim_i2t, sim_t2i)
        loss_lm = self.lm_loss(ids, mask, image_embeds)
        return {"ita": loss_ita, "itm": loss_itm, "lm": loss_lm}


class BLIPRetrieval(_Encoders, PretrainedMixin):
    """BLIP retrieval model: fine-tuned with image-id-aware ITA + ITM; ranks by ITC, re-ranks the top k by
    ``itm_logit[1] + itc_sim`` (no temperature)."""

    def __init__(self, config: BLIPConfig | None = None):
        super().__init__()
        self.config = _as_config(config)
        self._build_encoders(self.config)
        self.register_buffer("idx_queue", torch.full((1, self.config.queue_size), -100, dtype=torch.long))

    def forward(
        self,
        images: torch.Tensor,
        ids: torch.Tensor,
        mask: torch.Tensor,
        idx: torch.Tensor,
        alpha: float = 0.4,
    ) -> dict[str, torch.Tensor]:
        """``{"ita", "itm"}`` losses; texts of the same image id are all positives (BLIP's ``idx_queue``)."""
        with torch.no_grad():
            self.temp.clamp_(0.001, 0.5)
        image_embeds = self.image_embeds(images)
        image_feat = self.image_feat(image_embeds)
        text_feat = self.text_feat(ids, mask)
        idx = idx.view(-1, 1)
        with torch.no_grad():
            idx_all = torch.cat([idx.T, self.idx_queue.clone().detach()], dim=1)
            pos = torch.eq(idx, idx_all).float()
            sim_targets = pos / pos.sum(1, keepdim=True)
            self.momentum_update()
            image_feat_m = self.image_feat(self.image_embeds(images, momentum=True), momentum=True)
            text_feat_m = self.text_feat(ids, mask, momentum=True)
        loss_ita, sim_i2t, sim_t2i = self._ita(
            image_feat, text_feat, image_feat_m, text_feat_m, alpha, sim_targets
        )
        self._enqueue(image_feat_m, text_feat_m, idx)
        same = torch.eq(idx, idx.T)
        loss_itm = self._itm(ids, mask, image_embeds, sim_i2t, sim_t2i, same=same)
        return {"ita": loss_ita, "itm": loss_itm}

    @torch.no_grad()
    def rank(
        self,
        images: torch.Tensor,
        ids: torch.Tensor,
        mask: torch.Tensor,
        *,
        k_test: int = 256,
        batch_size: int = 64,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Image-to-text and text-to-image score matrices ``[I, T]`` and ``[T, I]``: ITC similarity everywhere,
        ``itm_logit[1] + itc_sim`` for each query's top ``k_test`` (BLIP's ``evaluation``); others get -100."""
        embeds = torch.cat([self.image_embeds(x) for x in images.split(batch_size)])
        img_feat = self.image_feat(embeds)
        txt_feat = torch.cat(
            [self.text_feat(i, m) for i, m in zip(ids.split(batch_size), mask.split(batch_size))]
        )
        sim = img_feat @ txt_feat.T
        i2t = torch.full_like(sim, -100.0)
        t2i = torch.full_like(sim.T, -100.0)
        k_i = min(k_test, sim.shape[1])
        for i in range(sim.shape[0]):
            top_sim, top = sim[i].topk(k_i)
            logits = self.itm_logits(ids[top], mask[top], embeds[i : i + 1].expand(k_i, -1, -1))
            i2t[i, top] = logits[:, 1] + top_sim
        k_t = min(k_test, sim.shape[0])
        for t in range(sim.shape[1]):
            top_sim, top = sim[:, t].topk(k_t)
            logits = self.itm_logits(
                ids[t : t + 1].expand(k_t, -1), mask[t : t + 1].expand(k_t, -1), embeds[top]
            )
            t2i[t, top] = logits[:, 1] + top_sim
        return i2t, t2i


class BLIPCaption(nn.Module, PretrainedMixin):
    """BLIP captioner (``blip_decoder``): ViT + causal text decoder with cross-attention, prompt ``"a picture of "``."""

    def __init__(self, config: BLIPConfig | None = None):
        super().__init__()
        self.config = _as_config(config)
        self.visual_encoder = build_vit(self.config)
        self.text_decoder = BlipTextLMHeadModel(text_config(self.config, self.visual_encoder.embed_dim))
        self.text_decoder.cls.predictions.decoder.weight = (
            self.text_decoder.bert.embeddings.word_embeddings.weight
        )

    def image_embeds(self, images: torch.Tensor) -> torch.Tensor:
        return self.visual_encoder.forward_tokens(images, final_norm=True)

    def forward(
        self, images: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor, prompt_tokens: int = 0
    ) -> dict[str, torch.Tensor]:
        """``{"lm"}``: captioning CE with ``[DEC]`` first; the first ``prompt_tokens`` positions are not targets."""
        dec_ids = ids.clone()
        dec_ids[:, 0] = self.config.bos_token_id
        targets = dec_ids.masked_fill(dec_ids == self.config.pad_token_id, -100)
        targets[:, :prompt_tokens] = -100
        embeds = self.image_embeds(images)
        atts = torch.ones(embeds.shape[:2], dtype=torch.long, device=embeds.device)
        out = self.text_decoder(
            input_ids=dec_ids,
            attention_mask=mask,
            encoder_hidden_states=embeds,
            encoder_attention_mask=atts,
            labels=targets,
        )
        return {"lm": out.loss}

    @torch.no_grad()
    def generate(
        self, images: torch.Tensor, prompt_ids: torch.Tensor, *, max_length: int = 20, min_length: int = 5
    ) -> torch.Tensor:
        """Greedy decoding after ``[DEC] + prompt`` (``prompt_ids`` without ``[SEP]``); ``[B, L]`` token ids,
        ``[SEP]`` forbidden before ``min_length`` tokens, padded with ``pad_token_id`` after it."""
        embeds = self.image_embeds(images)
        return greedy_decode(self.text_decoder, embeds, prompt_ids, self.config, max_length, min_length)


@torch.no_grad()
def greedy_decode(
    decoder: BlipTextLMHeadModel,
    image_embeds: torch.Tensor,
    prompt_ids: torch.Tensor,
    cfg: BLIPConfig,
    max_length: int,
    min_length: int,
) -> torch.Tensor:
    """Greedy captioning with the decoder (no cache: captions are short)."""
    b = image_embeds.shape[0]
    ids = prompt_ids.to(image_embeds.device).view(1, -1).expand(b, -1).clone()
    ids[:, 0] = cfg.bos_token_id
    start = ids.shape[1]
    atts = torch.ones(image_embeds.shape[:2], dtype=torch.long, device=image_embeds.device)
    done = torch.zeros(b, dtype=torch.bool, device=ids.device)
    for _ in range(max_length):
        logits = decoder(
            input_ids=ids,
            encoder_hidden_states=image_embeds,
            encoder_attention_mask=atts,
            return_logits=False,
        ).logits[:, -1]
        if ids.shape[1] - start < min_length:
            logits[:, cfg.sep_token_id] = float("-inf")
        nxt = logits.argmax(-1)
        nxt = torch.where(done, torch.full_like(nxt, cfg.pad_token_id), nxt)
        ids = torch.cat([ids, nxt[:, None]], dim=1)
        done |= nxt == cfg.sep_token_id
        if bool(done.all()):
            break
    return ids

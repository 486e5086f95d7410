"""Weights from local files: BLIP-format checkpoints (official key names) and DeiT + BERT initialisation."""

import pytest
import torch
from ptp_vlp.models import BLIPCaption, BLIPConfig, BLIPPretrain, BLIPRetrieval
from ptp_vlp.weights import init_from_pretrained, load_blip_checkpoint
from transformers import BertConfig, BertForMaskedLM

from visioncore.hub import CheckpointError

TINY = dict(
    vit="tiny", image_size=32, patch_size=8, vision_width=32, vision_depth=1, vision_heads=2, pos_embed="learn",
    vocab_size=40, text_width=32, text_depth=1, text_heads=2, text_intermediate=64, max_text_positions=16,
    embed_dim=16, queue_size=8, cls_token_id=2, sep_token_id=3, bos_token_id=38, enc_token_id=39,
)  # fmt: skip


def _official(model: torch.nn.Module, rename_ptr: bool = False) -> dict:
    """The state dict as BLIP's code names it (no ``timm_model.`` level, ``position_ids`` buffers present)."""
    state = {k.replace(".timm_model.", "."): v.clone() for k, v in model.state_dict().items()}
    state["text_encoder.embeddings.position_ids"] = torch.arange(16)[None]
    if rename_ptr:
        state["ptr_queue"] = state.pop("queue_ptr")
    return {"model": state}


def _batch():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 38, (2, 8), generator=g)
    ids[:, 0] = 2
    return torch.randn(2, 3, 32, 32, generator=g), ids, torch.ones_like(ids)


def test_official_pretrain_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    source = BLIPPretrain(BLIPConfig(**TINY)).eval()
    path = tmp_path / "Pretrain_concated_pred_4m.pth"
    torch.save(_official(source), path)
    torch.manual_seed(1)
    target = BLIPPretrain(BLIPConfig(**TINY)).eval()
    report = load_blip_checkpoint(target, path)
    assert report.unexpected == []  # position_ids are dropped, not reported
    images, ids, mask = _batch()
    with torch.no_grad():
        torch.testing.assert_close(target.lm_loss(ids, mask, target.image_embeds(images)),
                                   source.lm_loss(ids, mask, source.image_embeds(images)))  # fmt: skip
        torch.testing.assert_close(
            target.text_feat(ids, mask, momentum=True), source.text_feat(ids, mask, momentum=True)
        )
    # a pretraining checkpoint into the retrieval and caption models: only their keys are used
    retrieval = BLIPRetrieval(BLIPConfig(**TINY)).eval()
    load_blip_checkpoint(retrieval, path)
    assert (retrieval.idx_queue == -100).all()
    torch.testing.assert_close(retrieval.itm_head.weight, source.itm_head.weight)
    caption = BLIPCaption(BLIPConfig(**TINY)).eval()
    load_blip_checkpoint(caption, path)
    torch.testing.assert_close(
        caption.text_decoder.bert.encoder.layer[0].attention.self.query.weight,
        source.text_decoder.bert.encoder.layer[0].attention.self.query.weight,
    )


def test_finetuned_checkpoint_without_momentum_and_with_ptr_queue(tmp_path):
    torch.manual_seed(0)
    source = BLIPRetrieval(BLIPConfig(**TINY))
    source.queue_ptr[0] = 4
    state = _official(source, rename_ptr=True)
    state["model"] = {k: v for k, v in state["model"].items() if "_m." not in k}  # fine-tuned files drop them
    path = tmp_path / "flickr30k_ft_4m.pth"
    torch.save(state, path)
    target = BLIPRetrieval(BLIPConfig(**TINY))
    load_blip_checkpoint(target, path)
    assert int(target.queue_ptr) == 4
    torch.testing.assert_close(target.text_proj_m.weight, source.text_proj.weight)  # momentum := online


def test_checkpoint_that_does_not_fit_names_file_and_keys(tmp_path):
    source = BLIPPretrain(BLIPConfig(**TINY))
    state = _official(source)
    del state["model"]["itm_head.weight"]
    path = tmp_path / "cut.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"cut\.pth.*itm_head\.weight"):
        load_blip_checkpoint(BLIPPretrain(BLIPConfig(**TINY)), path)
    wider = BLIPPretrain(BLIPConfig(**{**TINY, "embed_dim": 8}))
    torch.save(_official(wider), path)
    with pytest.raises(CheckpointError, match="wrong shape"):
        load_blip_checkpoint(BLIPPretrain(BLIPConfig(**TINY)), path)


def test_init_from_deit_file_and_bert_folder(tmp_path):
    torch.manual_seed(0)
    deit = BLIPPretrain(BLIPConfig(**TINY)).visual_encoder.timm_model
    vit_path = tmp_path / "deit_tiny.pth"
    torch.save({"model": deit.state_dict()}, vit_path)
    bert = BertForMaskedLM(BertConfig(vocab_size=38, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                      intermediate_size=64, max_position_embeddings=16))  # fmt: skip
    bert.save_pretrained(tmp_path / "bert")
    model = BLIPPretrain(BLIPConfig(**TINY))
    init_from_pretrained(model, vit_path, tmp_path / "bert")
    torch.testing.assert_close(
        model.visual_encoder.timm_model.blocks[0].attn.qkv.weight, deit.blocks[0].attn.qkv.weight
    )
    torch.testing.assert_close(model.visual_encoder_m.timm_model.pos_embed, deit.pos_embed)
    words = model.text_encoder.embeddings.word_embeddings.weight
    torch.testing.assert_close(
        words[:38], bert.bert.embeddings.word_embeddings.weight
    )  # [DEC], [ENC] rows added
    bert_query = bert.bert.encoder.layer[0].attention.self.query.weight
    torch.testing.assert_close(model.text_encoder.encoder.layer[0].attention.self.query.weight, bert_query)
    torch.testing.assert_close(
        model.text_decoder.bert.encoder.layer[0].attention.self.query.weight, bert_query
    )
    torch.testing.assert_close(
        model.text_decoder.cls.predictions.transform.dense.weight, bert.cls.predictions.transform.dense.weight
    )
    torch.testing.assert_close(model.text_encoder_m.encoder.layer[0].attention.self.query.weight, bert_query)

import dataclasses

import pytest
import torch
from mist_videoqa.models import MIST, MISTConfig
from mist_videoqa.models.convert import init_from_official, official_key

from visioncore.config import ConfigError
from visioncore.hub import CheckpointError


def test_token_shapes_and_sequence_length(fake_batch, tiny_cfg):
    model = MIST(tiny_cfg).eval()
    layer = model.ista[0]
    batch = fake_batch(tiny_cfg)
    crops = batch["video"][:, :, 1:]
    pool = model.encode_vid(crops)
    seg = torch.randn(3, tiny_cfg.num_segments, tiny_cfg.feature_dim)
    tokens, sel = layer.select(batch["q_feat"], seg, pool, crops, None)
    k, f, j = tiny_cfg.topk, tiny_cfg.frames_per_segment, tiny_cfg.topj
    assert tokens.shape == (3, k * f * j, tiny_cfg.d_model)
    assert sel.segments.shape == (3, k) and sel.regions.shape == (3, k * f, j)
    assert tiny_cfg.seq_len == tiny_cfg.qmax + tiny_cfg.num_segments + k * f * j
    words = torch.randn(3, tiny_cfg.qmax, tiny_cfg.bert_hidden)
    out, q, s, _ = layer(batch["q_feat"], torch.ones(3, tiny_cfg.qmax), words, seg, pool, crops)
    assert out.shape == (3, tiny_cfg.seq_len, tiny_cfg.d_model)
    assert q.shape == (3, tiny_cfg.qmax, tiny_cfg.d_model) and s.shape == (
        3,
        tiny_cfg.num_segments,
        tiny_cfg.d_model,
    )


def test_agqa_defaults():
    cfg = MISTConfig()
    assert (cfg.num_frames, cfg.num_segments, cfg.num_regions, cfg.topk, cfg.topj) == (32, 8, 16, 2, 12)
    assert (cfg.n_ista, cfg.n_blocks, cfg.n_heads, cfg.d_model, cfg.d_ff, cfg.qmax) == (
        2,
        2,
        8,
        512,
        1024,
        30,
    )
    assert cfg.seq_len == 134  # 30 question + 8 segment + 2*4*12 region tokens
    release = MISTConfig.preset("nextqa-release")
    assert (release.num_segments, release.topk, release.topj, release.n_ista, release.tau) == (
        32,
        1,
        16,
        1,
        100.0,
    )
    assert release.video_only and release.frame_as_region and release.selection == "official"
    for name in ("agqa", "nextqa", "star", "envqa", "tiny", "repro"):
        MISTConfig.preset(name)


@pytest.mark.parametrize(
    "field,value",
    [("topk", 9), ("topj", 17), ("dropout", 1.5), ("selection", "greedy"), ("n_ista", 0), ("tau", 0.0)],
)
def test_config_refuses_nonsense(fake_batch, tiny_cfg, field, value):
    with pytest.raises(ConfigError, match=field):
        dataclasses.replace(tiny_cfg, **{field: value})


def test_official_mode_is_stochastic_at_eval_and_topk_is_not(fake_batch, tiny_cfg):
    batch = fake_batch(tiny_cfg)
    torch.manual_seed(0)
    official = MIST(dataclasses.replace(tiny_cfg, selection="official")).eval()
    assert official.mode == "official"
    a, b = official(**batch), official(**batch)
    assert not torch.allclose(a.logits, b.logits)
    torch.manual_seed(0)
    topk = MIST(tiny_cfg).eval()
    c, d = topk(**batch), topk(**batch)
    assert c.mode == "topk-soft"
    assert torch.equal(c.logits, d.logits)
    assert torch.equal(c.selections[0].segments, d.selections[0].segments)


def test_question_changes_the_selection_through_q_feat(fake_batch, tiny_cfg):
    torch.manual_seed(0)
    model = MIST(tiny_cfg).eval()
    batch = fake_batch(tiny_cfg, b=16)
    first = model(**batch).selections[0].segments
    batch["q_feat"] = -batch["q_feat"]
    assert not torch.equal(first, model(**batch).selections[0].segments)


@pytest.mark.parametrize("selector", ["random", "oracle", "uniform", "mean_pool", "dense"])
def test_selector_variants_run_and_learn_signal(fake_batch, tiny_cfg, selector):
    cfg = dataclasses.replace(tiny_cfg, selector=selector)
    model = MIST(cfg)
    batch = fake_batch(cfg)
    event = torch.tensor([0, 3, 7])
    out = model(**batch, event_segment=event)
    out.logits.sum().backward()
    assert model.ista[0].linear_patch.weight.grad.abs().sum() > 0
    model.eval()
    out = model(**batch, event_segment=event)
    if selector == "oracle":
        assert out.selections[0].segments[:, 0].tolist() == event.tolist()
    assert out.mode.endswith(selector)


def test_multiple_choice_batch_of_one(fake_batch, tiny_cfg):
    cfg = dataclasses.replace(tiny_cfg, mc=4)
    model = MIST(cfg).eval()
    batch = fake_batch(cfg, b=1)
    cands = torch.randint(5, 100, (1, 4, 9))
    out = model(**batch, candidate_ids=cands, candidate_mask=torch.ones_like(cands))
    assert out.logits.shape == (1, 4)


def test_answer_pool_mean_ignores_padding_and_separates_answers_that_cls_does_not(tiny_cfg):
    torch.manual_seed(0)
    ids = torch.tensor([[2, 10 + a, 3] for a in range(tiny_cfg.num_answers)])  # "[CLS] answer [SEP]"
    mask = torch.ones_like(ids)
    padded, padded_mask = torch.nn.functional.pad(ids, (0, 4)), torch.nn.functional.pad(mask, (0, 4))

    def spread(model, i, m):
        emb = torch.nn.functional.normalize(model.encode_text(i, m), dim=-1)
        return 1.0 - (emb @ emb.t()).min().item()  # 0: every answer has the same embedding

    cls_model = MIST(tiny_cfg).eval()
    mean_model = MIST(dataclasses.replace(tiny_cfg, answer_pool="mean")).eval()
    mean_model.load_state_dict(cls_model.state_dict())
    with torch.no_grad():
        # a random BERT's CLS barely depends on the text: the collapse the repro measured
        assert spread(cls_model, ids, mask) < 0.01
        assert spread(mean_model, ids, mask) > 10 * spread(cls_model, ids, mask)
        assert torch.allclose(
            mean_model.encode_text(padded, padded_mask), mean_model.encode_text(ids, mask), atol=1e-5
        )
        # without the [CLS] / [SEP] that every answer shares, the answers separate further still
        words_model = MIST(dataclasses.replace(tiny_cfg, answer_pool="words")).eval()
        words_model.load_state_dict(cls_model.state_dict())
        assert spread(words_model, ids, mask) > 1.5 * spread(mean_model, ids, mask)
        assert torch.allclose(
            words_model.encode_text(padded, padded_mask), words_model.encode_text(ids, mask), atol=1e-5
        )
    assert MISTConfig.preset("nextqa-release").answer_pool == "mean"
    assert MISTConfig.preset("agqa").answer_pool == "cls"
    with pytest.raises(ConfigError, match="answer_pool"):
        dataclasses.replace(tiny_cfg, answer_pool="max")


def test_save_load_roundtrip_keeps_answers_and_outputs(fake_batch, tiny_cfg, tmp_path):
    torch.manual_seed(0)
    model = MIST(tiny_cfg)
    ids = torch.randint(5, 100, (tiny_cfg.num_answers, 3))
    model.set_answers(ids, torch.ones_like(ids))
    model.eval()
    batch = fake_batch(tiny_cfg)
    model.save_pretrained(tmp_path / "m")
    loaded = MIST.from_pretrained(tmp_path / "m")
    assert loaded.config == tiny_cfg
    assert torch.equal(loaded.answer_ids, model.answer_ids)
    assert torch.equal(loaded(**batch).logits, model(**batch).logits)
    wider = dataclasses.replace(tiny_cfg, d_model=64, d_ff=64)
    with pytest.raises(CheckpointError, match="wrong shape"):
        MIST.from_pretrained(tmp_path / "m", config=wider)


def _official_names(model):
    """Our state dict under the official names, as a released best_model.pth would hold it."""
    back = {
        "answer_bert.": "amodel.bert.bert.",
        "answer_proj.": "amodel.linear_text.",
        "question_bert.": "bert.bert.",
    }
    back["ista."] = "ISTA."
    state = {}
    for key, value in model.state_dict().items():
        for ours, theirs in back.items():
            if key.startswith(ours):
                key = theirs + key[len(ours) :]
                break
        state["module." + key] = value.clone()
    state["module.clip.visual.proj"] = torch.randn(4, 4, dtype=torch.float16)
    state["module.ttrans.layer.0.ffn.lin1.weight"] = torch.randn(4, 4)
    state["module.bert.bert.embeddings.position_ids"] = torch.arange(8)
    state["module.bert.bert.pooler.dense.weight"] = torch.randn(4, 4)
    return state


def test_init_from_maps_official_checkpoint(fake_batch, tiny_cfg, tmp_path):
    assert official_key("module.ISTA.1.seg_selector.linear_Q.weight") == "ista.1.seg_selector.linear_Q.weight"
    assert official_key("module.amodel.bert.bert.encoder.layer.0.output.dense.bias").startswith(
        "answer_bert."
    )
    assert official_key("module.clip.visual.proj") is None
    torch.manual_seed(0)
    source = MIST(tiny_cfg)
    state = _official_names(source)
    state["module.extra_head.weight"] = torch.randn(2)
    path = tmp_path / "best_model.pth"
    torch.save(state, path)
    torch.manual_seed(1)
    target = MIST(tiny_cfg)
    report = init_from_official(target, path)
    assert report.missing == [] and report.unmatched == ["extra_head.weight"]
    assert (
        "module.clip.visual.proj" in report.skipped
        and "module.bert.bert.pooler.dense.weight" in report.skipped
    )
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key
    bad = dict(state)
    bad["module.vqproj.1.weight"] = torch.randn(3, 3)
    torch.save(bad, path)
    with pytest.raises(CheckpointError, match="vqproj"):
        init_from_official(MIST(tiny_cfg), path)


@pytest.mark.parametrize("preset", ["nextqa-release", "star"])
def test_presets_run_at_tiny_width(fake_batch, tiny_cfg, preset):
    small = {k: getattr(tiny_cfg, k) for k in ("feature_dim", "d_model", "n_heads", "d_ff", "qmax", "amax")}
    small |= {k: v for k, v in vars(tiny_cfg).items() if k.startswith("bert_")}
    cfg = dataclasses.replace(MISTConfig.preset(preset), **small)
    model = MIST(cfg).eval()
    batch = fake_batch(cfg, b=2)
    cands = torch.randint(5, 100, (2, cfg.mc, 6))
    out = model(**batch, candidate_ids=cands, candidate_mask=torch.ones_like(cands))
    assert out.logits.shape == (2, cfg.mc) and torch.isfinite(out.logits).all()
    if preset == "nextqa-release":  # one one-frame segment, all 16 crops + the frame as a 17th region
        assert out.mode == "official" and out.selections[0].regions.shape == (2, 1, 16)
        assert cfg.seq_len == 32 + 16  # video-only: segments + region tokens, no question slots


def _planted_video(cfg, event: int, key: torch.Tensor, b: int = 4, seed: int = 0):
    """Random unit crops; in every frame of segment ``event`` one crop (at a random place) is the query ``key``."""
    g = torch.Generator().manual_seed(seed)
    crops = torch.nn.functional.normalize(
        torch.randn(b, cfg.num_frames, cfg.num_regions, cfg.feature_dim, generator=g), dim=-1
    )
    f = cfg.frames_per_segment
    places = torch.randint(cfg.num_regions, (b, f), generator=g)
    for i in range(b):
        for j in range(f):
            crops[i, event * f + j, places[i, j]] = key
    video = torch.cat([crops.mean(2, keepdim=True), crops], dim=2)  # slot 0: the frame = mean of its crops
    return video, places


@pytest.mark.parametrize("init,expect_found", [("tied", True), ("random", False)])
def test_tied_selector_init_finds_the_queried_moment_before_training(
    fake_batch, tiny_cfg, init, expect_found
):
    """The acceptance run's failure (README, Diagnosis): with independent random query / key projections the
    selectors' initial scores carry no question-candidate similarity, so the soft selection has nothing to start
    from. With ``selector_init=tied`` and ``region_keys=features`` an untrained model already picks the segment and
    the crops that match q_feat."""
    cfg = dataclasses.replace(
        tiny_cfg,
        n_ista=1,
        feature_dim=64,
        d_model=64,
        selector_init=init,
        region_keys="features",
        topk=1,
        topj=1,
    )
    torch.manual_seed(0)
    model = MIST(cfg).eval()
    key = torch.nn.functional.normalize(
        torch.randn(cfg.feature_dim, generator=torch.Generator().manual_seed(1)), dim=0
    )
    event = 5
    video, places = _planted_video(cfg, event, key)
    batch = fake_batch(cfg, b=4)
    batch["video"], batch["q_feat"] = video, key.expand(4, -1)
    sel = model(**batch).selections[0]
    found_segment = (sel.segments[:, 0] == event).all()
    found_regions = torch.equal(sel.regions[:, :, 0], places)
    assert bool(found_segment and found_regions) == expect_found
    if init == "tied":  # linear_K starts as a copy of linear_Q, and both then train independently
        layer = model.ista[0]
        assert torch.equal(layer.seg_selector.linear_K.weight, layer.seg_selector.linear_Q.weight)
        assert torch.equal(layer.reg_selector.linear_K.weight, layer.reg_selector.linear_Q.weight)


def test_region_keys_features_scores_the_crops_in_training_and_evaluation(fake_batch, tiny_cfg):
    cfg = dataclasses.replace(tiny_cfg, region_keys="features", selector_init="tied")
    model = MIST(cfg)
    assert model.ista[0].reg_selector.linear_K.in_features == cfg.feature_dim
    batch = fake_batch(cfg)
    model(**batch).logits.sum().backward()
    assert (
        model.ista[0].reg_selector.linear_K.weight.grad.abs().sum() > 0
    )  # soft training path scores the crops
    with pytest.raises(ConfigError, match="region_keys"):
        dataclasses.replace(cfg, region_keys="pixels")
    with pytest.raises(ConfigError, match="region_relax"):
        dataclasses.replace(cfg, region_relax="hard")
    assert (
        MIST(dataclasses.replace(cfg, relax="soft", region_relax="subset")).mode == "topk-soft/regions-subset"
    )
    assert MIST(dataclasses.replace(cfg, relax="subset", region_relax="subset")).mode == "topk-subset"
    with pytest.raises(ConfigError, match="selector_init"):
        dataclasses.replace(cfg, selector_init="identity")


def test_region_encoder_elu_matches_torch_elu_in_value_and_gradient():
    from mist_videoqa.models.mist import _ExpELU

    x = torch.cat([torch.linspace(-30, 30, 2001), torch.tensor([0.0, -1e-8, 1e-8])]).double().requires_grad_()
    ours = _ExpELU.apply(x)
    (grad_ours,) = torch.autograd.grad(ours.sum(), x)
    ref = torch.nn.functional.elu(x)
    (grad_ref,) = torch.autograd.grad(ref.sum(), x)
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(grad_ours[:-3], grad_ref[:-3], rtol=0, atol=1e-12)  # ELU' at 0 is a convention
    assert torch.autograd.gradcheck(_ExpELU.apply, (torch.randn(40, dtype=torch.double, requires_grad=True),))

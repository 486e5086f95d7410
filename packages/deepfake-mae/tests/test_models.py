import pytest
import torch
from deepfake_mae.config import get_config, mae_kwargs
from deepfake_mae.losses import discrepancy_margin_loss, mae_loss, patchify, unpatchify
from deepfake_mae.models.convert import load_pretrained_mae
from deepfake_mae.models.detector import DeepfakeDetector, layer_id, param_groups
from deepfake_mae.models.mae import FacePartMAE, visible_indices
from deepfake_mae.models.masking import random_mask

from visioncore.backbones import sincos_pos_embed_2d
from visioncore.hub import CheckpointError

TINY_MAE = mae_kwargs(get_config("tiny").model)
DETECTOR = dict(TINY_MAE, head_hidden=8, part_margin=1.0, max_frames=4)


def _boxes(batch: int, time: int) -> torch.Tensor:
    box = torch.tensor([[6.0, 6.0, 26.0, 12.0], [13.0, 13.0, 19.0, 19.0], [10.0, 21.0, 22.0, 27.0]])
    return box.expand(batch, time, 3, 4).clone()


def test_patchify_roundtrip_and_order():
    x = torch.randn(2, 3, 32, 32)
    p = patchify(x, 8)
    assert p.shape == (2, 16, 192)
    torch.testing.assert_close(unpatchify(p, 8, 4), x)
    # patch 1 is the second patch of the first row; values ordered (row, col, channel)
    torch.testing.assert_close(p[0, 1, :3], x[0, :, 0, 8])


def test_mae_loss_only_counts_masked_patches():
    pred, target = torch.zeros(1, 4, 2), torch.zeros(1, 4, 2)
    target[0, 0] = 10.0  # a huge error on a VISIBLE patch must not count
    mask = torch.tensor([[False, True, True, False]])
    assert mae_loss(pred, target, mask).item() == 0.0
    target[0, 1] = 1.0
    assert mae_loss(pred, target, mask).item() == pytest.approx(0.5)
    part = torch.tensor([[False, True, False, False]])
    assert mae_loss(pred, target, mask, part, part_weight=1.0).item() == pytest.approx(0.5 + 1.0)


def test_mae_forward_and_gradients_only_through_masked_loss():
    torch.manual_seed(0)
    mae = FacePartMAE(**TINY_MAE)
    x = torch.randn(4, 3, 32, 32)
    mask = random_mask(4, 16, 0.5, torch.Generator().manual_seed(0))
    pred = mae(x, mask)
    assert pred.shape == (4, 16, 8 * 8 * 3)
    assert not mae.encoder.timm_model.pos_embed.requires_grad  # fixed sin-cos
    loss = mae.loss(x, mask)
    loss.backward()
    assert mae.decoder.mask_token.grad.abs().sum() > 0
    # norm_pix target is per-patch standardised
    t = mae.target(x)
    torch.testing.assert_close(t.mean(-1), torch.zeros(4, 16), atol=1e-5, rtol=0)


def test_visible_indices_reject_unequal_counts():
    mask = torch.tensor([[True, False, False], [True, True, False]])
    with pytest.raises(ValueError):
        visible_indices(mask)
    assert visible_indices(torch.tensor([[True, False, False]])).tolist() == [[1, 2]]


def test_detector_forward_backward():
    torch.manual_seed(0)
    det = DeepfakeDetector(**DETECTOR, temporal="transformer")
    frames, boxes = torch.randn(2, 3, 3, 32, 32), _boxes(2, 3)
    out = det(frames, boxes)
    assert out["logit"].shape == (2,) and out["discrepancy"].shape == (2, 3)
    assert (out["discrepancy"] > 0).all()
    torch.testing.assert_close(out["logit"], out["enc_logit"] + out["dec_logit"])
    out["logit"].sum().backward()
    assert det.encoder.timm_model.blocks[0].attn.qkv.weight.grad.abs().sum() > 0
    assert det.mae.decoder.pred.weight.grad.abs().sum() > 0


def test_discrepancy_loss_moves_network_2():
    torch.manual_seed(0)
    det = DeepfakeDetector(**DETECTOR)
    frames, boxes = torch.randn(2, 2, 3, 32, 32), _boxes(2, 2)
    labels = torch.tensor([0, 1])
    before = {k: v.clone() for k, v in det.mae.state_dict().items()}
    opt = torch.optim.SGD([p for p in det.mae.parameters() if p.requires_grad], lr=0.1)
    loss = discrepancy_margin_loss(det.discrepancies(frames, boxes).mean(1), labels, margin=5.0)
    loss.backward()
    opt.step()
    changed = [k for k, v in det.mae.state_dict().items() if not torch.equal(v, before[k])]
    assert any("decoder" in k for k in changed) and any("encoder" in k for k in changed)


def test_margin_loss_values():
    d = torch.tensor([0.2, 0.3, 2.0])
    y = torch.tensor([0, 1, 1])
    # real: 0.2 ; fake below margin: 1 - 0.3 ; fake beyond margin: 0
    assert discrepancy_margin_loss(d, y, 1.0).item() == pytest.approx((0.2 + 0.7 + 0.0) / 3)


def test_frozen_network_2_and_branch_ablations():
    det = DeepfakeDetector(**DETECTOR, freeze_net2=True)
    assert not any(p.requires_grad for p in det.mae.parameters())
    frames, boxes = torch.randn(1, 2, 3, 32, 32), _boxes(1, 2)
    torch.testing.assert_close(
        det.discrepancies(frames, boxes), det.discrepancies(frames, boxes)
    )  # cacheable
    enc = DeepfakeDetector(**DETECTOR, branches="encoder")
    out = enc(frames, boxes)
    assert torch.equal(out["logit"], out["enc_logit"])
    dec = DeepfakeDetector(**DETECTOR, branches="decoder")
    assert not any(p.requires_grad for p in dec.encoder.parameters())


def test_layer_decay_groups():
    det = DeepfakeDetector(**DETECTOR)
    assert layer_id("encoder.timm_model.patch_embed.proj.weight", 2) == 0
    assert layer_id("mae.encoder.timm_model.blocks.1.mlp.fc1.weight", 2) == 2
    assert layer_id("enc_head.weight", 2) == 3
    groups = param_groups(det, 0.05, 0.75, 2)
    scales = sorted({g["lr_scale"] for g in groups})
    assert scales == pytest.approx([0.75**3, 0.75**2, 0.75, 1.0])
    n = sum(p.numel() for g in groups for p in g["params"])
    assert n == sum(p.numel() for p in det.parameters() if p.requires_grad)


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    det = DeepfakeDetector(**DETECTOR).eval()
    frames, boxes = torch.randn(1, 2, 3, 32, 32), _boxes(1, 2)
    g = lambda: torch.Generator().manual_seed(3)
    ref = det(frames, boxes, generator=g())["logit"]
    det.save_pretrained(tmp_path / "det")
    again = DeepfakeDetector.from_pretrained(tmp_path / "det")
    torch.testing.assert_close(again(frames, boxes, generator=g())["logit"], ref)
    mae = FacePartMAE(**TINY_MAE)
    mae.save_pretrained(tmp_path / "mae")
    with pytest.raises(CheckpointError):
        FacePartMAE.from_pretrained(tmp_path / "mae", embed_dim=64)


def test_init_from_transformers_layout(tmp_path):
    from transformers import ViTMAEConfig, ViTMAEForPreTraining

    cfg = ViTMAEConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        decoder_hidden_size=16,
        decoder_num_hidden_layers=1,
        decoder_num_attention_heads=2,
        decoder_intermediate_size=32,
        image_size=32,
        patch_size=8,
        layer_norm_eps=1e-6,
        mask_ratio=0.5,
    )
    torch.manual_seed(0)
    hf = ViTMAEForPreTraining(cfg).eval()
    with (
        torch.no_grad()
    ):  # a real MAE checkpoint holds the sin-cos tables (transformers 5 leaves them zero at init)
        hf.vit.embeddings.position_embeddings.copy_(sincos_pos_embed_2d(32, 4, cls_token=True)[None])
        hf.decoder.decoder_pos_embed.copy_(sincos_pos_embed_2d(16, 4, cls_token=True)[None])
    hf.save_pretrained(tmp_path / "hf")
    mae = FacePartMAE(**TINY_MAE).eval()
    load_pretrained_mae(mae, tmp_path / "hf")
    torch.testing.assert_close(
        mae.encoder.timm_model.patch_embed.proj.weight, hf.vit.embeddings.patch_embeddings.projection.weight
    )
    # Same masking through transformers' noise argument: keep the 8 patches with the lowest noise.
    x = torch.randn(1, 3, 32, 32)
    noise = torch.rand(1, 16)
    keep = noise.argsort(1)[:, :8]
    mask = torch.ones(1, 16, dtype=torch.bool)
    mask[0, keep[0]] = False
    with torch.no_grad():
        ours = mae(x, mask)
        theirs = hf(pixel_values=x, noise=noise).logits
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)


def test_init_from_timm_layout_and_wrong_architecture(tmp_path, caplog):
    from safetensors.torch import save_file

    src = FacePartMAE(**TINY_MAE)
    enc = {
        k.removeprefix("encoder.timm_model."): v
        for k, v in src.state_dict().items()
        if k.startswith("encoder.")
    }
    save_file(enc, tmp_path / "vit.safetensors")
    mae = FacePartMAE(**TINY_MAE)
    missing = load_pretrained_mae(mae, tmp_path / "vit.safetensors")
    assert all(k.startswith("decoder.") or "pos_embed" in k for k in missing) and missing
    assert "decoder starts from random" in caplog.text
    torch.testing.assert_close(
        mae.encoder.timm_model.blocks[1].mlp.fc2.weight, src.encoder.timm_model.blocks[1].mlp.fc2.weight
    )
    torch.save({"model": {**enc, "blocks.0.attn.qkv.weight": torch.zeros(5, 5)}}, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match="bad.pth.*shape"):
        load_pretrained_mae(FacePartMAE(**TINY_MAE), tmp_path / "bad.pth")

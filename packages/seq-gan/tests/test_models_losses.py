import pytest
import torch
from seq_gan import losses
from seq_gan.models import (
    PatchDiscriminator,
    SmallPerceptualNet,
    VectorQuantizer,
    VGG16Perceptual,
    VQTokenizer,
    taming_key_map,
)
from seq_gan.models.quantizer import squared_distances
from torch import nn

from visioncore.backbones import load_weights
from visioncore.hub import CheckpointError

TINY = dict(
    resolution=16, ch=16, ch_mult=[1, 2, 2], num_res_blocks=1, z_channels=16, num_codes=32, code_dim=8
)


def test_quantizer_nearest_code_straight_through_and_loss_split():
    torch.manual_seed(0)
    vq = VectorQuantizer(num_codes=16, dim=4, beta=0.25)
    bound = 1 / 16
    assert vq.codebook.weight.abs().max() <= bound
    z = torch.randn(2, 4, 3, 3, requires_grad=True)
    out = vq(z)
    flat = z.detach().permute(0, 2, 3, 1).reshape(-1, 4)
    expected = torch.cdist(flat, vq.codebook.weight.detach()).argmin(1).view(2, 3, 3)
    assert torch.equal(out.indices, expected)
    codes = vq.codebook.weight[expected].permute(0, 3, 1, 2)
    assert torch.allclose(out.z_q, codes, atol=1e-6)
    # straight-through: d z_q / d z is the identity
    (g,) = torch.autograd.grad(out.z_q.sum(), z, retain_graph=True)
    assert torch.allclose(g, torch.ones_like(g))
    # codebook side weight 1, commitment side 0.25 (both element means)
    gz, ge = torch.autograd.grad(out.loss, (z, vq.codebook.weight))
    diff = (z.detach() - codes.detach()).pow(2).mean()
    assert torch.allclose(out.loss, 1.25 * diff)
    n = z.numel()
    assert torch.allclose(gz, 0.25 * 2 * (z.detach() - codes.detach()) / n, atol=1e-7)
    assert torch.allclose(ge.sum(0), -(2 * (z.detach() - codes.detach()) / n).sum((0, 2, 3)), atol=1e-6)
    assert int(vq.usage.sum()) == 18
    vq.freeze()
    vq.train()
    assert not vq.training and not vq.codebook.weight.requires_grad
    assert vq(z).loss.item() == 0 and int(vq.usage.sum()) == 18


def test_entropy_loss_lifts_usage_on_collapsed_codebook():
    torch.manual_seed(0)
    z = torch.randn(256, 8) * 0.5
    collapsed = torch.randn(32, 8) * 0.01 + 1.5  # every code but one far away on one side: code 0 wins all
    collapsed[0] = 0.0
    codebook = nn.Parameter(collapsed)

    def used(cb):
        return squared_distances(z, cb).argmin(1).unique().numel()

    before = used(codebook.detach())
    opt = torch.optim.Adam([codebook], lr=0.05)
    for _ in range(200):
        loss = losses.codebook_entropy_loss(z, codebook, gamma=0.01)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert before <= 2
    assert used(codebook.detach()) >= 16
    assert losses.codebook_entropy_loss(z, codebook, 0.01) < 0  # minus gamma times a positive entropy


def test_entropy_loss_value_by_hand():
    z = torch.zeros(2, 1)
    codebook = torch.tensor([[0.0], [0.0]])
    # equal distances: D_bar uniform over 2 codes, H = log 2
    assert torch.isclose(losses.codebook_entropy_loss(z, codebook, gamma=0.5), torch.tensor(-0.5 * 0.6931472))


def test_alpha_mix_by_hand():
    f = {"a": torch.zeros(2, 3, 4, 4), "b": torch.zeros(2, 5), "logits": torch.zeros(2, 10)}
    g = {"a": torch.ones(2, 3, 4, 4), "b": torch.full((2, 5), 2.0), "logits": torch.full((2, 10), 3.0)}
    low, sem = ("a", "b"), ("b", "logits")
    # L_low = 1 + 4 = 5 ; L_sem = 4 + 9 = 13
    for alpha, want in [(0.0, 5.0), (1.0, 13.0), (0.25, 0.25 * 13 + 0.75 * 5)]:
        got = losses.semantic_perceptual_loss(g, f, alpha, low_layers=low, sem_layers=sem)
        assert abs(float(got) - want) < 1e-5
    with pytest.raises(ValueError):
        losses.semantic_perceptual_loss(g, f, 1.5, low_layers=low, sem_layers=sem)


def test_vgg16_taps_and_logits_from_a_local_file(tmp_path):
    from torchvision.models import vgg16

    torch.manual_seed(0)
    ref = vgg16(weights=None).eval()
    path = tmp_path / "vgg16.pth"
    torch.save(ref.state_dict(), path)
    net = VGG16Perceptual(path)
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    feats = net(x)
    assert set(feats) == {*losses.LOW_LAYERS, "logits"}
    assert feats["relu1_2"].shape == (1, 64, 64, 64) and feats["relu5_3"].shape == (1, 512, 4, 4)
    normed = ((x + 1) / 2 - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor(
        [0.229, 0.224, 0.225]
    ).view(1, 3, 1, 1)
    with torch.no_grad():
        assert torch.allclose(feats["logits"], ref(normed), atol=1e-4)
        assert torch.allclose(feats["relu3_3"], ref.features[:16](normed), atol=1e-5)
    # gradients reach the input through the frozen net
    x.requires_grad_(True)
    losses.semantic_perceptual_loss(
        net(x), {k: v.detach() for k, v in feats.items()} | {"logits": feats["logits"] + 1}, 1.0
    ).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    headless = {k: v for k, v in ref.state_dict().items() if not k.startswith("classifier.")}
    torch.save(headless, tmp_path / "features_only.pth")
    with pytest.raises(CheckpointError, match="features_only.pth.*classifier"):
        VGG16Perceptual(tmp_path / "features_only.pth")


def test_calibrate_makes_taps_unit_rms():
    torch.manual_seed(0)
    net = SmallPerceptualNet((4, 8, 8, 8), num_classes=10).freeze()
    images = torch.rand(16, 3, 16, 16) * 2 - 1
    net.calibrate(images)
    for name, f in net(images).items():
        assert abs(float(f.pow(2).mean().sqrt()) - 1.0) < 1e-3, name


def test_phase2_keeps_encoder_codebook_and_ids_and_starts_at_phase1():
    torch.manual_seed(0)
    tok = VQTokenizer(**TINY)
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        rec1, q1 = tok(x)
    p2 = tok.enhanced(hit_window=2)
    assert p2.token_space_hash() == tok.token_space_hash()
    trainable = {n for n, p in p2.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith(("decoder.", "post_quant_conv.")) for n in trainable)
    assert any(".hit." in n for n in trainable)
    p2.train()
    opt = torch.optim.Adam([p for p in p2.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(3):
        rec, q = p2(x)
        loss = (rec - x).abs().mean() + q.loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        assert torch.equal(p2.encode(x).indices, q1.indices)
    assert p2.token_space_hash() == tok.token_space_hash()
    assert not torch.allclose(p2.decoder.conv_out.weight, tok.decoder.conv_out.weight)
    # the freshly enhanced decoder computes what phase 1 computes (zero-initialised attention outputs)
    with torch.no_grad():
        assert torch.allclose(tok.enhanced(hit_window=2)(x)[0], rec1, atol=1e-6)


def test_window_and_dilated_attention_groups_differ():
    from seq_gan.models.vqgan import GroupedAttention

    torch.manual_seed(0)
    x = torch.randn(1, 8, 4, 4)
    for dilated in (False, True):
        attn = GroupedAttention(8, 2, dilated, groups=4)
        nn.init.normal_(attn.proj_out.weight)
        attn.norm = nn.Identity()  # GroupNorm statistics span the whole map
        base = attn(x)
        bumped = x.clone()
        bumped[..., 0, 0] += 5.0  # changes only the outputs of tokens in (0, 0)'s group (and (0, 0) itself)
        changed = (attn(bumped) - base).abs().sum(1)[0] > 1e-6
        group = {(0, 0), (0, 1), (1, 0), (1, 1)} if not dilated else {(0, 0), (0, 2), (2, 0), (2, 2)}
        assert {tuple(ij) for ij in changed.nonzero().tolist()} == group


def test_save_load_roundtrip(tmp_path):
    torch.manual_seed(0)
    tok = VQTokenizer(**TINY).enhanced(hit_window=2)
    tok.save_pretrained(tmp_path / "m")
    back = VQTokenizer.from_pretrained(tmp_path / "m")
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(back(x)[0], tok.eval()(x)[0])
    assert back.token_space_hash() == tok.token_space_hash() and back.decoder_kind == "enhanced"
    assert not back.quantizer.codebook.weight.requires_grad


def test_taming_key_map(tmp_path):
    torch.manual_seed(0)
    tok = VQTokenizer(**TINY)
    taming = {}
    for key, value in tok.state_dict().items():
        key = "quantize.embedding.weight" if key == "quantizer.codebook.weight" else key
        taming[key] = value.clone() + 1
    taming["encoder.mid.attn_1.q.weight"] = torch.zeros(16, 16, 1, 1)
    taming["decoder.up.2.attn.0.k.weight"] = torch.zeros(32, 32, 1, 1)
    taming["loss.discriminator.main.0.weight"] = torch.zeros(64, 3, 4, 4)
    torch.save({"state_dict": taming}, tmp_path / "last.ckpt")
    fresh = VQTokenizer(**TINY)
    report = load_weights(fresh, tmp_path / "last.ckpt", key_map=taming_key_map)
    assert report.missing == [] and report.unexpected == []
    assert torch.equal(fresh.quantizer.codebook.weight, tok.quantizer.codebook.weight + 1)


def test_hinge_adaptive_weight_and_gan_schedule():
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.5])
    # real: relu(1-2)=0, relu(1-.5)=.5 -> .25 ; fake: relu(1-2)=0, relu(1+.5)=1.5 -> .75
    assert torch.isclose(losses.hinge_d_loss(real, fake), torch.tensor(0.5))
    assert torch.isclose(losses.hinge_g_loss(fake), torch.tensor(0.75))
    w = nn.Parameter(torch.ones(3))
    lam = losses.adaptive_weight((w * 4).sum(), (w * 2).sum(), w)
    assert torch.isclose(lam, torch.tensor(2.0), atol=1e-3)
    assert float(losses.adaptive_weight((w * 0).sum() + w.sum() * 1e9, (w * 1e-12).sum(), w)) == 1e4
    assert losses.gan_factor(4, start=5, warmup=3) == (False, 0.0)
    assert losses.gan_factor(6, start=5, warmup=3) == (True, 0.0)
    assert losses.gan_factor(8, start=5, warmup=3) == (True, 1.0)
    d = PatchDiscriminator(ndf=8)
    assert d(torch.randn(2, 3, 32, 32)).shape == (2, 1, 2, 2)

import torch
import torch.nn.functional as F
from darwinian_upgrades.losses import (
    bct_influence_loss,
    contra_ract_loss,
    discriminativeness,
    focal_distillation_loss,
    forward_adaptation_loss,
    l2_compat_loss,
    selective_compatibility_loss,
    synthesise_old_rows,
)
from darwinian_upgrades.models import EmbeddingModel, ForwardAdapter, GeM, UpgradeModel, class_logits


def _tiny(num_classes=6, width=1.0, dim=8, head="linear"):
    torch.manual_seed(0)
    return EmbeddingModel(num_classes, backbone="tiny", width=width, embed_dim=dim, head=head)


def test_gem_p1_is_average_and_large_p_approaches_max():
    x = torch.rand(2, 3, 4, 4) + 0.1
    assert torch.allclose(GeM(1.0)(x), x.mean(dim=(2, 3)), atol=1e-6)
    assert torch.allclose(GeM(60.0)(x), x.amax(dim=(2, 3)), rtol=0.05)


def test_embedding_model_shapes_width_and_round_trip(tmp_path):
    model = _tiny(width=0.5)
    feats, logits = model(torch.randn(3, 3, 16, 16))
    assert feats.shape == (3, 8) and logits.shape == (3, 6)
    assert model.backbone.out_channels == 32
    model.eval()
    model.save_pretrained(tmp_path)
    again = EmbeddingModel.from_pretrained(tmp_path)
    x = torch.randn(2, 3, 16, 16)
    assert torch.equal(again.embed(x), model.embed(x))


def test_arcface_margin_lowers_only_the_true_logit():
    feats, weight = torch.randn(4, 5), torch.randn(3, 5)
    labels = torch.tensor([0, 1, 2, 0])
    cos = class_logits(feats, weight, head="cosine", scale=10.0)
    arc = class_logits(feats, weight, labels, head="arcface", scale=10.0, margin=0.5)
    true = F.one_hot(labels, 3).bool()
    assert torch.all(arc[true] < cos[true]) and torch.equal(arc[~true], cos[~true])


def test_selective_with_unit_scores_equals_bct_exactly_and_weights_select():
    feats, weight = torch.randn(16, 8), torch.randn(5, 8)
    labels = torch.randint(0, 5, (16,))
    bct = bct_influence_loss(feats, weight, labels)
    assert torch.equal(selective_compatibility_loss(feats, weight, labels, torch.ones(16)), bct)
    ce = F.cross_entropy(feats @ weight.t(), labels, reduction="none")
    scores = torch.zeros(16)
    scores[3] = 1.0  # only sample 3 counts
    assert torch.allclose(selective_compatibility_loss(feats, weight, labels, scores), ce[3])
    assert torch.allclose(bct, ce.mean())


def test_discriminativeness_is_true_class_probability_detached():
    logits = torch.tensor([[4.0, 0.0], [0.0, 0.0]], requires_grad=True)
    s = discriminativeness(logits, torch.tensor([0, 1]), tau=2.0)
    assert not s.requires_grad
    assert torch.allclose(s, torch.tensor([torch.sigmoid(torch.tensor(2.0)).item(), 0.5]))


def test_forward_adaptation_weights_poor_samples_and_stops_gradient():
    adapted = torch.randn(4, 6, requires_grad=True)
    new = torch.randn(4, 6, requires_grad=True)
    weight = torch.randn(3, 6)
    labels = torch.tensor([0, 1, 2, 0])
    loss = forward_adaptation_loss(adapted, new, weight, labels, torch.tensor([1.0, 1.0, 1.0, 0.0]))
    loss.backward()
    assert new.grad is None  # sg on φ_n
    ce = F.cross_entropy(adapted @ weight.t(), labels, reduction="none")
    l2 = (F.normalize(adapted, dim=1) - F.normalize(new, dim=1)).pow(2).sum(1)
    w = torch.tensor([1.0, 1.0, 1.0, 2.0])
    assert torch.allclose(loss, ((ce + l2) * w).sum() / w.sum())


def test_adapter_residual_identity_and_shapes():
    assert ForwardAdapter(8, 16)(torch.randn(4, 8)).shape == (4, 16)
    psi = ForwardAdapter(8, 8)
    assert psi.residual
    x = torch.randn(4, 8)
    assert torch.equal(ForwardAdapter(8, 8, identity=True)(x), x)
    with torch.no_grad():
        psi.mlp[-1].weight.zero_()
        psi.mlp[-1].bias.zero_()
    assert torch.allclose(psi(x), x)


def test_synthesised_rows_are_class_means_of_unseen_classes():
    weight = torch.randn(4, 3)
    feats = torch.tensor([[1.0, 0, 0], [3.0, 0, 0], [0, 2.0, 0], [5.0, 5.0, 5.0]])
    labels = torch.tensor([2, 2, 3, 0])
    seen = torch.tensor([True, True, False, False])
    out = synthesise_old_rows(weight, feats, labels, seen)
    assert torch.equal(out[:2], weight[:2])
    assert torch.equal(out[2], torch.tensor([2.0, 0, 0])) and torch.equal(out[3], torch.tensor([0, 2.0, 0]))
    normed = synthesise_old_rows(weight, feats, labels, seen, normalize=True)
    assert torch.allclose(normed[2].norm(), torch.tensor(1.0))


def test_comparison_losses_vanish_when_features_agree():
    f = torch.randn(6, 4)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    assert l2_compat_loss(f, f) == 0
    assert focal_distillation_loss(f, f, torch.randn(6, 3), labels) == 0
    assert l2_compat_loss(f, -f) > 0
    aligned = contra_ract_loss(f, f, labels, temperature=0.1)
    shuffled = contra_ract_loss(f, f.roll(1, 0), labels, temperature=0.1)
    assert aligned < shuffled


def test_upgrade_model_keeps_old_frozen_and_in_eval():
    old, new = _tiny(width=0.5), _tiny()
    pair = UpgradeModel(new, old)
    pair.train()
    assert not old.training and new.training
    assert all(not p.requires_grad for p in old.parameters())


def test_iresnet_backbones_give_7x7_maps_for_faces_and_deeper_is_bigger():
    small = EmbeddingModel(4, backbone="iresnet18", width=0.125, embed_dim=16, head="arcface")
    big = EmbeddingModel(4, backbone="iresnet50", width=0.125, embed_dim=16, head="arcface")
    maps = small._maps(torch.randn(1, 3, 112, 112))
    assert maps.shape == (1, 64, 7, 7)
    count = lambda m: sum(p.numel() for p in m.parameters())
    assert count(big) > 2 * count(small)
    feats, logits = small(torch.randn(2, 3, 112, 112), torch.tensor([0, 1]))
    assert feats.shape == (2, 16) and logits.abs().max() <= 64.0 + 1e-4


def test_official_resnet_gem_state_dict_loads_whole(tmp_path):
    from visioncore.backbones import resnet18

    def small_resnet_model():  # the ResNet-50 key layout at a fraction of the cost: a narrow timm ResNet-18
        model = EmbeddingModel(5, backbone="tiny", embed_dim=8)
        model.backbone = resnet18(channels=(8, 8, 8, 8))
        model.fc_emb = torch.nn.Linear(8, 8)
        return model

    torch.manual_seed(0)
    src = small_resnet_model()
    official = {}
    for key, value in src.state_dict().items():
        if key == "seen_classes":
            continue
        key = key.replace("backbone.timm_model.", "backbone.").replace("fc_classifier.", "fc_classify.")
        official[f"module.{key}"] = value
    torch.save({"state_dict": official}, tmp_path / "model_best.pth")
    dst = small_resnet_model()
    dst.load_backbone_weights(tmp_path / "model_best.pth")
    assert torch.equal(dst.fc_classifier.weight, src.fc_classifier.weight)
    assert torch.equal(
        dst.backbone.timm_model.layer4[1].conv2.weight, src.backbone.timm_model.layer4[1].conv2.weight
    )
    assert bool(dst.seen_classes.all())

import torch
from cyclic_walks.losses import walk_transitions
from cyclic_walks.models import CyclicWalks, DecoderBaseline, masks_from_transition
from cyclic_walks.models.sacrw import grid_position_embedding


def test_masks_upsample_then_argmax():
    # 2x2 grid, 2 slots: left column -> slot 0, right column -> slot 1.
    a_fs = torch.tensor([[[0.9, 0.1], [0.2, 0.8], [0.7, 0.3], [0.4, 0.6]]])
    masks = masks_from_transition(a_fs, (2, 2), (4, 4))
    assert masks.shape == (1, 4, 4) and masks.dtype == torch.int64
    assert (masks[0, :, :2] == 0).all() and (masks[0, :, 2:] == 1).all()


def test_predict_outputs_and_slot_features_are_weighted_means():
    torch.manual_seed(0)
    model = CyclicWalks(feature_dim=8, num_slots=3, mlp_hidden=8)
    feats = torch.randn(2, 16, 8)
    out = model.predict(feats, (4, 4), (8, 8), generator=torch.Generator().manual_seed(0))
    assert out["masks"].shape == (2, 8, 8) and out["attention"].shape == (2, 3, 4, 4)
    assert out["masks"].max() < 3
    torch.testing.assert_close(out["attention"].sum(1), torch.ones(2, 4, 4))
    again = model.predict(feats, (4, 4), (8, 8), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out["slots"], again["slots"])  # one fixed noise draw -> deterministic
    _, a_sf = walk_transitions(feats, out["slots"], model.tau)
    torch.testing.assert_close(out["slot_features"], a_sf @ torch.nn.functional.normalize(feats, dim=-1))


def test_training_reduces_walk_loss_and_groups_clusters():
    """Features in 3 colour-like clusters: a few hundred Adam steps must lower L_pwp and make A_fs separate them."""
    g = torch.Generator().manual_seed(0)
    centres = torch.eye(12)[:3] + 0.05
    labels = torch.randint(0, 3, (32, 16), generator=g)
    labels[:, :3] = torch.arange(3)  # every image shows all three clusters
    feats = centres[labels] + 0.02 * torch.randn(32, 16, 12, generator=g)
    torch.manual_seed(0)
    model = CyclicWalks(feature_dim=12, num_slots=3, mlp_hidden=12, alpha=1.0, beta=100.0)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)

    def purity() -> float:
        """Fraction of predicted segments that hold a single cluster."""
        pred = model.predict(feats, (4, 4), (4, 4), generator=torch.Generator().manual_seed(0))[
            "masks"
        ].flatten(1)
        pure = [
            labels[i][pred[i] == k].unique().numel() <= 1
            for i in range(32)
            for k in range(3)
            if (pred[i] == k).any()
        ]
        return sum(pure) / len(pure)

    before, first = purity(), None
    for _ in range(150):
        loss, parts = model.loss(feats, (4, 4))
        first = first if first is not None else parts.pwp.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert parts.pwp.item() < first - 0.005
    assert purity() > before + 0.15  # 0.63 -> 0.83 with this seed


def test_save_and_load_pretrained_round_trip(tmp_path):
    torch.manual_seed(0)
    model = CyclicWalks(feature_dim=8, num_slots=2, mlp_hidden=8, alpha=0.5, beta=10.0, position_prior=True)
    model.save_pretrained(tmp_path / "m")
    loaded = CyclicWalks.from_pretrained(tmp_path / "m")
    assert (loaded.alpha, loaded.beta, loaded.num_slots, loaded.use_position_prior) == (0.5, 10.0, 2, True)
    feats = torch.randn(1, 4, 8)
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    torch.testing.assert_close(model(feats, g1), loaded(feats, g2))
    loss, parts = loaded.loss(feats, (2, 2))  # with the positional prior
    assert torch.isfinite(loss)


def test_position_embedding_and_decoder_baseline_shapes():
    pe = grid_position_embedding((3, 4), 16)
    assert pe.shape == (12, 16) and not torch.allclose(pe[0], pe[1])
    torch.manual_seed(0)
    model = DecoderBaseline(feature_dim=8, num_slots=3, num_tokens=16, mlp_hidden=8, decoder_hidden=32)
    slots, recon, alpha = model(torch.randn(2, 16, 8))
    assert slots.shape == (2, 3, 8) and recon.shape == (2, 16, 8) and alpha.shape == (2, 3, 16)
    torch.testing.assert_close(alpha.sum(1), torch.ones(2, 16))
    masks = model.predict(torch.randn(2, 16, 8), (4, 4), (8, 8))["masks"]
    assert masks.shape == (2, 8, 8)


def test_positional_prior_is_built_once_per_grid(monkeypatch):
    import cyclic_walks.models.sacrw as sacrw
    from cyclic_walks.losses import positional_prior

    calls = []

    def counting(pos_embed, tau=0.1):
        calls.append(pos_embed.shape)
        return positional_prior(pos_embed, tau)

    monkeypatch.setattr(sacrw, "positional_prior", counting)
    torch.manual_seed(0)
    model = CyclicWalks(feature_dim=8, num_slots=2, mlp_hidden=8, position_prior=True)
    features = torch.randn(2, 12, 8)
    first = model.loss(features, (3, 4))[0]
    for _ in range(3):
        torch.manual_seed(0)
        model.loss(features, (3, 4))
    model.loss(torch.randn(2, 16, 8), (4, 4))
    assert calls == [torch.Size([12, 8]), torch.Size([16, 8])]  # one build per grid, not per step
    # the cached prior is the one the loss would build fresh
    expected = positional_prior(sacrw.grid_position_embedding((3, 4), 8), model.tau)
    assert torch.equal(model.position_prior((3, 4), features), expected)
    assert torch.isfinite(first)

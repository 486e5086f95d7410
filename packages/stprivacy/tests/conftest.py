import pytest
import torch

TINY = dict(
    img_size=32,
    num_frames=8,
    tubelet=(2, 8, 8),
    embed_dim=48,
    depth=6,
    num_heads=3,
    pruning_loc=(1, 2, 3),
    keep_ratio=0.6,
)


@pytest.fixture
def tiny_kwargs():
    return dict(TINY)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory):
    """A small synthetic data set in the HMDB51 layouts (24 train / 12 test videos)."""
    from stprivacy.data.synthetic import write_synthetic

    root = tmp_path_factory.mktemp("synthetic")
    write_synthetic(root, num_train=24, num_test=12, seed=3)
    return root


def tiny_config(root, **train_overrides):
    """The shipped tiny config pointed at a synthetic data folder."""
    import dataclasses

    from stprivacy.config import Config

    from visioncore.config import load_config

    cfg = load_config(Config, "tiny", package="stprivacy")
    data = dataclasses.replace(
        cfg.data,
        videos=str(root / "videos"),
        splits=str(root / "splits"),
        labels=str(root / "privacy_labels.pickle"),
    )
    return dataclasses.replace(cfg, data=data, train=dataclasses.replace(cfg.train, **train_overrides))


@pytest.fixture(scope="session")
def trained_run(synthetic_root, tmp_path_factory):
    """All three phases of the tiny config (4 / 2 / 4 steps, checkpoints every 2)."""
    from stprivacy.train import train

    out = tmp_path_factory.mktemp("run")
    train(tiny_config(synthetic_root), out, "all", cpu=True)
    return out


@pytest.fixture
def make_config():
    return tiny_config

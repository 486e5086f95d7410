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

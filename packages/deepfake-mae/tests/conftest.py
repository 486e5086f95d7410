import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory):
    """A small synthetic FF++-layout dataset (32x32, 8 frames) shared by the data/training tests."""
    from deepfake_mae.data.synthetic import make_synthetic

    return make_synthetic(
        tmp_path_factory.mktemp("ffpp"),
        {"train": 4, "val": 1, "test": 2},
        size=32,
        num_frames=8,
        methods=("MouthSwap", "EyeSwap", "NullSwap"),
        seed=0,
    )

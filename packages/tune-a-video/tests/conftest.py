import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402
from tune_a_video.tiny_sd import make_tiny_sd, tiny_unet_2d  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_sd(tmp_path_factory):
    """A tiny random Stable Diffusion folder in diffusers layout (written once per session)."""
    return make_tiny_sd(tmp_path_factory.mktemp("tiny-sd"))


@pytest.fixture
def unet_2d():
    torch.manual_seed(0)
    return tiny_unet_2d().eval()


@pytest.fixture(scope="session")
def source_video_file(tmp_path_factory):
    """The synthetic source video (24 frames, 64x64) in the real layout: an mp4 next to an official-style config."""
    from tune_a_video.data import make_synthetic

    out = tmp_path_factory.mktemp("synthetic")
    make_synthetic(out, num_frames=12, size=32)
    return out / "red-square.mp4"


@pytest.fixture
def tiny_train_config(tiny_sd, source_video_file, tmp_path):
    from tune_a_video.config import load_train_config

    return load_train_config(
        "tiny",
        [
            f"pretrained_model_path={tiny_sd}",
            f"output_dir={tmp_path / 'run'}",
            f"train_data.video_path={source_video_file}",
            "validation_steps=1000",
        ],
    )

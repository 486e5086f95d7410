import pytest
from seq_gan.data.synthetic import make_synthetic


@pytest.fixture(scope="session")
def digits_root(tmp_path_factory):
    """40 synthetic digits (32 train / 8 val) in the ImageFolder layout."""
    return make_synthetic(tmp_path_factory.mktemp("digits") / "data", num_train=32, limit=40, seed=0)

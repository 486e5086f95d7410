import pytest
from accelerate.state import AcceleratorState, GradientState


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    """accelerate keeps process-wide state (mixed precision, accumulation); each test starts from none."""
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    yield

"""Ops against naive loops (upfirdn2d to 1e-6) and the demodulation property."""

import math

import pytest
import torch
from pv3d import ops


def naive_upfirdn2d(x, f, up, down, pad):
    """Direct definition: zero-insert, pad, true 2-D convolution with f, keep every down-th sample."""
    n, c, h, w = x.shape
    px0, px1, py0, py1 = pad
    up_x = torch.zeros(n, c, h * up, w * up, dtype=x.dtype)
    up_x[:, :, ::up, ::up] = x
    padded = torch.zeros(n, c, h * up + py0 + py1, w * up + px0 + px1, dtype=x.dtype)
    padded[:, :, py0 : py0 + h * up, px0 : px0 + w * up] = up_x
    fh, fw = f.shape
    oh, ow = padded.shape[2] - fh + 1, padded.shape[3] - fw + 1
    out = torch.zeros(n, c, oh, ow, dtype=x.dtype)
    for i in range(oh):
        for j in range(ow):
            for a in range(fh):
                for b in range(fw):
                    # convolution: the filter is flipped relative to the window
                    out[:, :, i, j] += padded[:, :, i + a, j + b] * f[fh - 1 - a, fw - 1 - b]
    return out[:, :, ::down, ::down]


@pytest.mark.parametrize("up,down,pad", [(1, 1, (1, 2, 2, 1)), (2, 1, (2, 1, 2, 1)), (1, 2, (1, 1, 1, 1))])
def test_upfirdn2d_matches_naive_loop(up, down, pad):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 6, 5, generator=g, dtype=torch.float64)
    f = torch.randn(3, 4, generator=g, dtype=torch.float64)  # non-symmetric: a missing flip would show
    ours = ops.upfirdn2d(x, f, up=up, down=down, padding=pad)
    ref = naive_upfirdn2d(x, f, up, down, pad)
    assert ours.shape == ref.shape
    assert torch.allclose(ours, ref, atol=1e-6)


def test_flip_filter_is_correlation():
    x = torch.randn(1, 1, 5, 5, dtype=torch.float64)
    f = torch.randn(3, 3, dtype=torch.float64)
    assert torch.allclose(ops.upfirdn2d(x, f, flip_filter=True), ops.upfirdn2d(x, f.flip([0, 1])), atol=1e-12)


def test_resampling_shapes_and_dc_gain():
    f = ops.setup_filter([1, 3, 3, 1])
    x = torch.ones(1, 2, 8, 8)
    up = ops.upsample2d(x, f)
    down = ops.downsample2d(x, f)
    same = ops.filter2d(x, f)
    assert up.shape[-1] == 16 and down.shape[-1] == 4 and same.shape[-1] == 8
    # constant input keeps its value away from the zero-padded borders
    assert torch.allclose(up[..., 4:-4, 4:-4], torch.ones(1), atol=1e-6)
    assert torch.allclose(down[..., 1:-1, 1:-1], torch.ones(1), atol=1e-6)
    assert torch.allclose(same[..., 2:-2, 2:-2], torch.ones(1), atol=1e-6)


def test_bias_act_lrelu_gain_and_clamp():
    x = torch.tensor([[-1.0, 2.0]]).reshape(1, 2, 1, 1)
    b = torch.tensor([0.5, 0.5])
    y = ops.bias_act(x, b, act="lrelu")
    assert torch.allclose(y.flatten(), torch.tensor([-0.5 * 0.2, 2.5]) * math.sqrt(2))
    assert ops.bias_act(x * 100, act="linear", clamp=3).abs().max() == 3


def test_demodulated_conv_keeps_unit_variance():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(8, 64, 16, 16, generator=g)
    weight = torch.randn(64, 64, 3, 3, generator=g)
    styles = torch.randn(8, 64, generator=g) * 2 + 1  # arbitrary per-sample styles
    y = ops.modulated_conv2d(x, weight, styles, padding=1)
    assert abs(y[..., 1:-1, 1:-1].var().item() - 1.0) < 0.1
    no_demod = ops.modulated_conv2d(x, weight, styles, padding=1, demodulate=False)
    assert no_demod.var().item() > 10  # the property comes from demodulation, not from the inputs


def test_modulated_conv_equals_per_sample_conv():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 4, 6, 6, generator=g, dtype=torch.float64)
    weight = torch.randn(5, 4, 3, 3, generator=g, dtype=torch.float64)
    styles = torch.randn(2, 4, generator=g, dtype=torch.float64)
    y = ops.modulated_conv2d(x, weight, styles, padding=1, demodulate=False)
    for i in range(2):
        ref = torch.nn.functional.conv2d(x[i : i + 1], weight * styles[i].reshape(1, 4, 1, 1), padding=1)
        assert torch.allclose(y[i : i + 1], ref, atol=1e-10)


def test_filtered_resize_keeps_constants():
    x = torch.full((1, 3, 16, 16), 0.3)
    assert torch.allclose(ops.filtered_resize(x, 8), torch.full((1, 3, 8, 8), 0.3), atol=1e-6)


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="backend"):
        ops.set_backend("cuda-plugin")

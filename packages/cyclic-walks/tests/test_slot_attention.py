import torch
from cyclic_walks.models.slot_attention import SlotAttention, SlotEncoder


def test_shapes_and_attention_softmax_over_slots():
    torch.manual_seed(0)
    enc = SlotEncoder(16, iters=3)
    slots, attn = enc(torch.randn(2, 20, 16), num_slots=4)
    assert slots.shape == (2, 4, 16) and attn.shape == (2, 4, 20)
    torch.testing.assert_close(attn.sum(1), torch.ones(2, 20))


def test_permutation_equivariance_over_slots():
    torch.manual_seed(0)
    sa = SlotAttention(8, iters=3)
    inputs, init = torch.randn(1, 10, 8), torch.randn(1, 5, 8)
    perm = torch.tensor([2, 4, 0, 1, 3])
    out, attn = sa(inputs, 5, slots=init)
    out_p, attn_p = sa(inputs, 5, slots=init[:, perm])
    torch.testing.assert_close(out_p, out[:, perm], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(attn_p, attn[:, perm], rtol=1e-5, atol=1e-5)


def test_noise_redrawn_each_forward_unless_generator_fixed():
    torch.manual_seed(0)
    sa = SlotAttention(8)
    x = torch.randn(1, 6, 8)
    a, _ = sa(x, 3)
    b, _ = sa(x, 3)
    assert not torch.allclose(a, b)
    c, _ = sa(x, 3, generator=torch.Generator().manual_seed(7))
    d, _ = sa(x, 3, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(c, d)

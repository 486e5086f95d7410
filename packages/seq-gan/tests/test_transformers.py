import math

import torch
from seq_gan.ar import ARTransformer
from seq_gan.maskgit import MaskGIT, cosine_schedule

SMALL = dict(num_codes=16, grid=4, num_classes=3, dim=32, depth=2, heads=4, dropout=0.0)


def test_cosine_schedule_and_mask_counts():
    assert float(cosine_schedule(0.0)) == 1.0 and abs(float(cosine_schedule(1.0))) < 1e-12
    torch.manual_seed(0)
    model = MaskGIT(**SMALL)
    tokens = torch.randint(0, 16, (512, 16))
    g = torch.Generator().manual_seed(1)
    masked, mask = model.mask_tokens(tokens, g)
    counts = mask.sum(1)
    assert counts.min() >= 1 and counts.max() <= 16
    assert torch.equal(masked[mask], torch.full_like(masked[mask], model.mask_id))
    assert torch.equal(masked[~mask], tokens[~mask])
    # E[cos(pi r / 2)] = 2 / pi: the mean masked fraction follows the cosine schedule (ceil adds < 1 token)
    frac = counts.float().mean() / 16
    assert 2 / math.pi - 0.05 < frac < 2 / math.pi + 1 / 16 + 0.05


def test_maskgit_sampler_unmasks_everything_in_12_steps():
    torch.manual_seed(0)
    model = MaskGIT(**SMALL).eval()
    grids, trace = model.sample(
        torch.tensor([0, 1, 2]), steps=12, generator=torch.Generator().manual_seed(0), return_trace=True
    )
    assert grids.shape == (3, 4, 4) and grids.max() < 16 and grids.min() >= 0
    assert len(trace) == 12 and trace[-1] == 0
    assert all(a >= b for a, b in zip(trace, trace[1:]))  # monotone unmasking
    expected = [min(int(math.floor(float(cosine_schedule((t + 1) / 12)) * 16)), 15 - t) for t in range(11)]
    assert trace[:11] == [max(e, 0) for e in expected]


def test_maskgit_learns_class_conditional_tokens():
    torch.manual_seed(0)
    model = MaskGIT(**SMALL)
    labels = torch.arange(3).repeat(32)
    tokens = labels[:, None] * 5 + torch.zeros(1, 16, dtype=torch.long)  # class c -> every token = 5c
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(60):
        loss = model.loss(tokens, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    out = model.eval().sample(
        torch.tensor([0, 1, 2]), steps=4, temperature=0.5, generator=torch.Generator().manual_seed(0)
    )
    assert (out.flatten(1) == torch.tensor([0, 5, 10])[:, None]).float().mean() > 0.9


def test_ar_teacher_forcing_equals_step_by_step_decoding():
    torch.manual_seed(0)
    model = ARTransformer(**SMALL).eval()
    labels = torch.tensor([0, 2])
    greedy = model.sample(labels, greedy=True)
    # teacher forcing on the greedy sequence predicts every one of its tokens
    assert torch.equal(model.teacher_forced_top1(greedy, labels), greedy)
    logits_full = model(greedy.flatten(1), labels)
    for n in (1, 5, 16):
        assert torch.allclose(model(greedy.flatten(1)[:, :n], labels), logits_full[:, :n], atol=1e-5)
    # causality: changing a later token leaves earlier logits alone
    other = greedy.flatten(1).clone()
    other[:, 10] = (other[:, 10] + 1) % 16
    assert torch.allclose(model(other, labels)[:, :11], logits_full[:, :11], atol=1e-5)
    assert not torch.allclose(model(other, labels)[:, 11:], logits_full[:, 11:], atol=1e-5)
    sampled = model.sample(labels, temperature=1.0, top_k=4, generator=torch.Generator().manual_seed(0))
    assert sampled.shape == (2, 4, 4)


def test_transformers_roundtrip(tmp_path):
    for cls in (MaskGIT, ARTransformer):
        model = cls(**SMALL)
        model.save_pretrained(tmp_path / cls.__name__)
        back = cls.from_pretrained(tmp_path / cls.__name__)
        x = torch.randint(0, 16, (2, 16))
        assert torch.equal(back(x, torch.tensor([0, 1])), model.eval()(x, torch.tensor([0, 1])))

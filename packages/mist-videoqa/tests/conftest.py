import pytest
import torch
from mist_videoqa.config import load_train_config


@pytest.fixture
def tiny_cfg():
    return load_train_config("tiny").model


def _fake_batch(cfg, b=3, q_len=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    video = torch.randn(b, cfg.num_frames, cfg.num_regions + 1, cfg.feature_dim, generator=g)
    q_feat = torch.randn(b, cfg.feature_dim, generator=g)
    ids = torch.randint(5, cfg.bert_vocab_size, (b, q_len), generator=g)
    ids[:, 0] = 2
    mask = torch.ones(b, q_len, dtype=torch.long)
    mask[0, -2:] = 0
    return {"video": video, "q_feat": q_feat, "question_ids": ids, "question_mask": mask}


@pytest.fixture
def fake_batch():
    return _fake_batch

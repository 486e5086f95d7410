import json

import torch
from safetensors.torch import load_file
from seq_gan.config import TokenizerConfig, TransformerConfig, load
from seq_gan.data import ImageFolderDataset, TokenCache, save_tokens
from seq_gan.models import VQTokenizer
from seq_gan.train import train_tokenizer, train_transformer

from visioncore.training import run_distributed


def _tiny(root, *extra):
    return load(TokenizerConfig, "tiny", [f"data.root={root}", *extra])


def _weights(folder):
    return load_file(folder / "model.safetensors")


def test_phase1_exact_resume_and_phase2_keeps_tokens(digits_root, tmp_path):
    full = train_tokenizer(_tiny(digits_root), tmp_path / "full", log=lambda *_: None)
    part = tmp_path / "part"
    train_tokenizer(_tiny(digits_root, "train.steps=3"), part, log=lambda *_: None)
    resumed = train_tokenizer(_tiny(digits_root), part, resume=True, log=lambda *_: None)
    a, b = _weights(full), _weights(resumed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # the discriminator and both optimisers are in the checkpoint (full state for finetuning)
    ckpt = sorted((part / "checkpoints").iterdir())[-1]
    assert ckpt.name == "step_000006" and len(list(ckpt.glob("optimizer*"))) == 2
    assert len(list(ckpt.glob("model*.safetensors"))) == 2
    logs = [
        json.loads(line)
        for line in (part / "logs" / "tokenizer_phase1" / "metrics.jsonl").read_text().splitlines()
    ]
    assert {"usage", "perplexity", "d_weight", "d_loss"} <= set(logs[-1])

    p1 = VQTokenizer.from_pretrained(full)
    p2_dir = train_tokenizer(_tiny(digits_root, "loss.alpha=0.0"), tmp_path / "p2", phase=2, init=tmp_path / "full",
                             log=lambda *_: None)  # fmt: skip
    p2 = VQTokenizer.from_pretrained(p2_dir)
    assert p2.decoder_kind == "enhanced" and p2.token_space_hash() == p1.token_space_hash()
    x, _ = ImageFolderDataset(digits_root, "val", 16).load_all()
    with torch.no_grad():
        assert torch.equal(p1.encode(x).indices, p2.encode(x).indices)
        assert not torch.equal(p1(x)[0], p2(x)[0])


def _tokens(tmp_path, tokenizer):
    g = torch.Generator().manual_seed(0)
    cache = TokenCache(torch.randint(0, 32, (16, 4, 4), generator=g, dtype=torch.int16), torch.arange(16) % 10,
                       tokenizer.token_space_hash(), 32)  # fmt: skip
    save_tokens(tmp_path / "tokens.safetensors", cache)
    return tmp_path / "tokens.safetensors"


def test_transformer_exact_resume(tmp_path):
    torch.manual_seed(0)
    tok = VQTokenizer(**load(TokenizerConfig, "tiny").model.kwargs())
    tok.save_pretrained(tmp_path / "tok" / "model")
    tokens = _tokens(tmp_path, tok)
    for kind in ("maskgit", "ar"):
        cfg = load(TransformerConfig, f"{kind}-tiny", ["model.dropout=0.1"])
        full = train_transformer(
            cfg, tokens, tmp_path / "tok", tmp_path / f"{kind}_full", log=lambda *_: None
        )
        short = load(TransformerConfig, f"{kind}-tiny", ["model.dropout=0.1", "train.steps=3"])
        train_transformer(short, tokens, tmp_path / "tok", tmp_path / f"{kind}_part", log=lambda *_: None)
        resumed = train_transformer(cfg, tokens, tmp_path / "tok", tmp_path / f"{kind}_part", resume=True,
                                    log=lambda *_: None)  # fmt: skip
        a, b = _weights(full), _weights(resumed)
        assert all(torch.equal(a[k], b[k]) for k in a), kind


def _ddp_tokenizer(root, out):
    train_tokenizer(_tiny(root, "train.steps=4", "data.batch_size=2"), out, cpu=True, log=lambda *_: None)


def test_tokenizer_loop_in_two_gloo_processes(digits_root, tmp_path):
    run_distributed(_ddp_tokenizer, str(digits_root), str(tmp_path / "ddp"))
    model = VQTokenizer.from_pretrained(tmp_path / "ddp" / "model")
    assert all(torch.isfinite(v).all() for v in model.state_dict().values())
    logs = (tmp_path / "ddp" / "logs" / "tokenizer_phase1" / "metrics.jsonl").read_text().splitlines()
    assert json.loads(logs[-1])["step"] == 4
    assert (tmp_path / "ddp" / "checkpoints" / "step_000004").is_dir()

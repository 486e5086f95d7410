"""``ask``: answer one question about one video (features or a video file) and draw what MIST looked at."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mist_videoqa.data.features import FeatureStore
from mist_videoqa.models.mist import MIST
from mist_videoqa.viz import CELL, save_selection_strip, selection_tiles
from visioncore.files import atomic_write_json

__all__ = ["ask"]


def _video_features(source: Path, model: MIST, video_id: str | None, encoder: Any) -> tuple[np.ndarray, Any]:
    cfg = model.config
    if source.suffix in (".h5", ".hdf5"):
        if not video_id:
            raise ValueError(f"{source}: a feature file needs --video-id")
        store = FeatureStore(source, (cfg.num_frames, cfg.num_regions + 1, cfg.feature_dim))
        store.check([video_id], "--video-id")
        return store[video_id], None
    if encoder is None:
        raise ValueError(f"{source}: features of a video file need --clip DIR")
    from mist_videoqa.extract import _read_frames

    frames = _read_frames(source, cfg.num_frames)
    return encoder.images(frames), frames


def ask(
    source: str,
    question: str,
    *,
    model_dir: str,
    out: Path,
    video_id: str | None = None,
    clip_dir: str | None = None,
    text_features: str | None = None,
    qid: str | None = None,
    vocab_file: str = "",
    answers: str | None = None,
    device: torch.device,
    dtype: torch.dtype = torch.float32,
) -> dict[str, Any]:
    """The predicted answer (id, and text with ``answers``), its mode, and the chosen segments / regions."""
    from mist_videoqa.data.dataset import load_tokenizer

    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: video or feature file not found")
    model = MIST.from_pretrained(model_dir).to(device, dtype)
    cfg = model.config
    if cfg.mc:
        raise ValueError(
            f"{model_dir}: ask answers with open-ended models only (this one is {cfg.mc}-way choice)"
        )
    encoder = None
    if clip_dir:
        from mist_videoqa.extract import ClipEncoder

        encoder = ClipEncoder(clip_dir, device, dtype)
    video, frames = _video_features(path, model, video_id, encoder)
    if encoder is not None:
        q_feat = encoder.texts([question])[0]
    elif text_features and qid:
        store = FeatureStore(text_features, (cfg.feature_dim,), what="question features")
        store.check([qid], "--qid")
        q_feat = store[qid]
    else:
        raise ValueError("the question's CLIP embedding needs --clip DIR, or --text-features H5 with --qid")
    tokens = load_tokenizer(vocab_file)([question], truncation=True, max_length=cfg.qmax, return_tensors="pt")
    with torch.no_grad():
        output = model.eval()(
            video=torch.as_tensor(video, dtype=dtype, device=device).unsqueeze(0),
            q_feat=torch.as_tensor(q_feat, dtype=dtype, device=device).unsqueeze(0),
            question_ids=tokens["input_ids"].to(device),
            question_mask=tokens["attention_mask"].to(device),
        )
    answer = int(output.logits[0].argmax())
    result: dict[str, Any] = {"question": question, "answer_id": answer, "mode": output.mode}
    if answers:
        names = {int(v): k for k, v in json.loads(Path(answers).read_text()).items()}
        result["answer"] = names.get(answer, str(answer))
    layers = []
    for sel in output.selections:
        if sel.segments is not None:
            layers.append({"segments": sel.segments[0].tolist(), "regions": sel.regions[0].tolist()})
    result["layers"] = layers
    out.mkdir(parents=True, exist_ok=True)
    if layers:
        pictures = None
        if frames is not None:
            side = int(np.sqrt(cfg.num_regions)) * CELL
            small = torch.nn.functional.interpolate(frames.float() / 255, size=(side, side), mode="bilinear")
            pictures = small.permute(0, 2, 3, 1).numpy()
        rows = [
            selection_tiles(
                cfg.num_frames,
                cfg.num_regions,
                cfg.frames_per_segment,
                layer["segments"],
                np.array(layer["regions"]),
                frames=pictures,
            )  # fmt: skip
            for layer in layers
        ]
        save_selection_strip(out / "selection.png", rows)
        result["picture"] = str(out / "selection.png")
    atomic_write_json(out / "answer.json", result)
    return result

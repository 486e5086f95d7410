"""A stored gallery: features, item ids and the tag of the model that produced them; ψ applied at load time."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

FEATURES_FILE = "features.safetensors"
META_FILE = "gallery.json"


def model_tag(model: nn.Module) -> str:
    """A content tag of a model: sha256 over its state dict (names, shapes, bytes), 16 hex digits."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


@dataclass
class GalleryStore:
    """Gallery features [N, d] (raw), their ids, the producing model's tag and, if ψ was applied, ψ's tag."""

    features: torch.Tensor
    ids: list[str]
    model_tag: str
    adapter_tag: str | None = None

    def __post_init__(self) -> None:
        if self.features.ndim != 2 or self.features.shape[0] != len(self.ids):
            raise ValueError(
                f"gallery: features {tuple(self.features.shape)} do not match {len(self.ids)} ids"
            )

    def save(self, folder: str | Path) -> Path:
        """Write ``features.safetensors`` and ``gallery.json`` (each by temporary name, then rename)."""
        from visioncore.files import atomic_path, atomic_write_json

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(folder / FEATURES_FILE) as tmp:
            save_file({"features": self.features.detach().cpu().contiguous()}, str(tmp))
        meta = {"ids": self.ids, "model_tag": self.model_tag, "adapter_tag": self.adapter_tag}
        atomic_write_json(folder / META_FILE, meta)
        return folder

    @classmethod
    def load(
        cls,
        folder: str | Path,
        *,
        expect_tag: str | None = None,
        adapter: nn.Module | None = None,
        chunk: int = 4096,
    ) -> GalleryStore:
        """Read a saved gallery; refuse one produced by another model than ``expect_tag``; apply ψ if given."""
        folder = Path(folder)
        for name in (FEATURES_FILE, META_FILE):
            if not (folder / name).is_file():
                raise FileNotFoundError(f"{folder}: not a gallery folder ({name} missing)")
        meta = json.loads((folder / META_FILE).read_text())
        if expect_tag is not None and meta["model_tag"] != expect_tag:
            raise ValueError(
                f"{folder}: gallery was extracted by model {meta['model_tag']}, not by the declared old model "
                f"{expect_tag}"
            )
        store = cls(
            load_file(folder / FEATURES_FILE)["features"],
            list(meta["ids"]),
            meta["model_tag"],
            meta.get("adapter_tag"),
        )
        return store.adapted(adapter, chunk=chunk) if adapter is not None else store

    @torch.no_grad()
    def adapted(self, adapter: nn.Module, *, chunk: int = 4096) -> GalleryStore:
        """G' = ψ(G), in chunks, ψ in eval mode; the producing model's tag is kept, ψ's tag recorded."""
        if self.adapter_tag is not None:
            raise ValueError("gallery: ψ was already applied to this gallery")
        old_dim = getattr(adapter, "old_dim", self.features.shape[1])
        if old_dim != self.features.shape[1]:
            raise ValueError(
                f"gallery: features have dimension {self.features.shape[1]}, ψ expects {old_dim}"
            )
        was_training = adapter.training
        adapter.eval()
        param = next(adapter.parameters(), None)
        device = param.device if param is not None else self.features.device
        parts = [adapter(block.to(device)).cpu() for block in self.features.split(chunk)]
        adapter.train(was_training)
        return GalleryStore(torch.cat(parts), self.ids, self.model_tag, model_tag(adapter))

    @torch.no_grad()
    def search(
        self, queries: torch.Tensor, k: int = 100, *, chunk: int = 4096
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-k inner products of L2-normalised queries and gallery features, gallery in chunks: (scores, idx)."""
        if queries.shape[1] != self.features.shape[1]:
            raise ValueError(
                f"search: query dimension {queries.shape[1]} differs from the gallery's {self.features.shape[1]}"
            )
        q = F.normalize(queries.float(), dim=1)
        k = min(k, self.features.shape[0])
        best_s = torch.full((q.shape[0], 0), float("-inf"))
        best_i = torch.zeros((q.shape[0], 0), dtype=torch.long)
        for start in range(0, self.features.shape[0], chunk):
            block = F.normalize(self.features[start : start + chunk].float(), dim=1)
            scores = torch.cat([best_s, q @ block.t()], dim=1)
            idx = torch.cat(
                [best_i, torch.arange(start, start + block.shape[0]).expand(q.shape[0], -1)], dim=1
            )
            # stable sort keeps the lower gallery index first among ties
            order = torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :k]
            best_s, best_i = scores.gather(1, order), idx.gather(1, order)
        return best_s, best_i

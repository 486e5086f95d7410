"""MS1M-v3 (insightface ``ms1m-retinaface-t1``) in MXNet RecordIO, read with ``struct`` (no mxnet).

``train.idx``: ``<key>\\t<byte offset>`` lines. ``train.rec``: records of a 4-byte magic 0xced7230a, a 4-byte
length word (upper 3 bits: continuation flag, lower 29: length), the payload, padding to 4 bytes. A payload starts
with the IRHeader ``<IfQQ`` (flag, label, id, id2); with flag > 0, ``flag`` float32 labels follow. Record 0 is the
header record: its labels give the range of image records, ``[1, label[0])``.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

MAGIC = 0xCED7230A
HEADER = struct.Struct("<IfQQ")
_LENGTH_MASK = (1 << 29) - 1


def read_index(path: str | Path) -> dict[int, int]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: RecordIO index not found")
    index = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            key, offset = line.split("\t")
            index[int(key)] = int(offset)
        except ValueError:
            raise ValueError(f"{path}:{n}: expected '<key>\\t<offset>', got {line[:60]!r}") from None
    return index


def unpack(payload: bytes) -> tuple[tuple[int, np.ndarray, int, int], bytes]:
    """(flag, labels, id, id2) and the image bytes of one record payload."""
    flag, label, id1, id2 = HEADER.unpack_from(payload)
    body = payload[HEADER.size :]
    if flag > 0:
        labels = np.frombuffer(body[: 4 * flag], dtype="<f4").copy()
        body = body[4 * flag :]
    else:
        labels = np.array([label], dtype=np.float32)
    return (flag, labels, id1, id2), body


def pack(labels: float | list[float], image: bytes, *, id1: int = 0, id2: int = 0) -> bytes:
    """A record payload (the inverse of ``unpack``); for fixtures and converters."""
    if isinstance(labels, list):
        return HEADER.pack(len(labels), 0.0, id1, id2) + np.asarray(labels, "<f4").tobytes() + image
    return HEADER.pack(0, float(labels), id1, id2) + image


class RecordReader:
    """Random access to ``train.rec`` through ``train.idx``."""

    def __init__(self, rec_path: str | Path, idx_path: str | Path):
        self.rec_path = Path(rec_path)
        if not self.rec_path.is_file():
            raise FileNotFoundError(f"{self.rec_path}: RecordIO file not found")
        self.index = read_index(idx_path)
        self._fh = None

    def read(self, key: int) -> bytes:
        if key not in self.index:
            raise KeyError(f"{self.rec_path}: no record {key}")
        if self._fh is None:
            self._fh = self.rec_path.open("rb")
        self._fh.seek(self.index[key])
        head = self._fh.read(8)
        if len(head) < 8:
            raise ValueError(f"{self.rec_path}: truncated record {key}")
        magic, word = struct.unpack("<II", head)
        if magic != MAGIC:
            raise ValueError(f"{self.rec_path}: record {key} has a bad magic number {magic:#x}")
        if word >> 29:
            raise ValueError(
                f"{self.rec_path}: record {key} is split (continuation records are not supported)"
            )
        return self._fh.read(word & _LENGTH_MASK)

    def __getstate__(self):  # the file handle does not cross into DataLoader workers
        return {**self.__dict__, "_fh": None}


def write_records(rec_path: str | Path, idx_path: str | Path, payloads: list[bytes]) -> None:
    """Write payloads as records 0, 1, ... (fixtures and converters)."""
    offsets = []
    with open(rec_path, "wb") as fh:
        for payload in payloads:
            offsets.append(fh.tell())
            fh.write(struct.pack("<II", MAGIC, len(payload)) + payload + b"\0" * (-len(payload) % 4))
    Path(idx_path).write_text("".join(f"{i}\t{o}\n" for i, o in enumerate(offsets)))


class MS1MDataset(Dataset):
    """(face image [3, 112, 112] scaled to [-1, 1], identity) from a RecordIO folder.

    ``entries`` (``(record key, label)`` pairs, e.g. an old-model split) restricts it; by default every image record
    in the header record's range, labels read from the record headers (one pass over the file).
    """

    def __init__(self, folder: str | Path, entries: Sequence[tuple[str, int]] | None = None):
        folder = Path(folder)
        self.reader = RecordReader(folder / "train.rec", folder / "train.idx")
        if entries is None:
            (flag, labels, _, _), _ = unpack(self.reader.read(0))
            keys = range(1, int(labels[0])) if flag > 0 else sorted(k for k in self.reader.index if k != 0)
            entries = [(str(k), int(unpack(self.reader.read(k))[0][1][0])) for k in keys]
        self.entries = [(str(k), int(label)) for k, label in entries]

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        key, label = self.entries[index]
        _, body = unpack(self.reader.read(int(key)))
        try:
            image = Image.open(io.BytesIO(body)).convert("RGB")
        except Exception as err:
            raise ValueError(
                f"{self.reader.rec_path}: record {key} is not a readable image ({err})"
            ) from None
        x = torch.from_numpy(np.asarray(image, dtype=np.float32)).permute(2, 0, 1)
        return x / 127.5 - 1.0, label

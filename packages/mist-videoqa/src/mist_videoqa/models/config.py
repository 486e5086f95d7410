"""``MISTConfig``: the model's shape and selection behaviour; presets are the ``model:`` sections of shipped YAMLs."""

from __future__ import annotations

from dataclasses import dataclass

from mist_videoqa.models.selection import MODES, RELAXATIONS
from visioncore.config import ConfigError, one_of

__all__ = ["ANSWER_POOLS", "PRESETS", "REGION_KEYS", "SELECTORS", "SELECTOR_INITS", "MISTConfig"]

# learned: MIST's cascade; the others replace the segment selector (random, oracle) or the whole cascade with a
# fixed token set of the same reader (uniform frames, mean-pooled frames, dense: every region) for the ablations.
SELECTORS = ("learned", "random", "oracle", "uniform", "mean_pool", "dense")
ANSWER_POOLS = ("cls", "mean", "words")
# what the region selector scores: the EncoderVid outputs (released) or the CLIP crop features themselves, the space
# the CLIP text query q_feat lives in
REGION_KEYS = ("encoded", "features")
# selector projections: independent random (released) or linear_K starting as a copy of linear_Q, so that the
# initial score is the CLIP similarity of question and candidate (through one random projection)
SELECTOR_INITS = ("random", "tied")
PRESETS = ("agqa", "nextqa", "nextqa-release", "star", "envqa", "tiny", "repro")


@dataclass
class MISTConfig:
    """Defaults: the AGQA 2.0 model of the paper (``shells/agqa_v2_mist.sh``)."""

    feature_dim: int = 512  # CLIP frame / crop embedding size
    num_frames: int = 32
    num_segments: int = 8
    num_regions: int = 16  # 4x4 crops per frame
    box_dim: int = 5
    box_hidden: int = 128
    d_model: int = 512
    n_heads: int = 8
    d_ff: int = 1024
    n_ista: int = 2
    n_blocks: int = 2  # transformer blocks per ISTA layer
    dropout: float = 0.3
    topk: int = 2
    topj: int = 12
    qmax: int = 30
    amax: int = 38
    selection: str = "topk"  # topk | official
    relax: str = "soft"  # soft | subset | st (training relaxation of the topk mode)
    region_relax: str = ""  # the region draws' relaxation if different ("" = relax)
    tau: float = 1.0
    selector: str = "learned"
    region_keys: str = "encoded"  # encoded | features (see REGION_KEYS)
    selector_init: str = "random"  # random | tied (see SELECTOR_INITS)
    question_blind: bool = False  # control: question tokens a learned constant, q_feat zero
    video_only: bool = False  # released NExT-QA variant: no question tokens, mean-pooled readout
    frame_as_region: bool = False  # released NExT-QA variant: the frame feature is a 17th region
    # answer / candidate embedding from the answer BERT: "cls" (paper, AGQA release) or "mean" over the text's tokens
    # (released NExT-QA variant; the repro's random tiny BERT, whose CLS is the same vector for every text), or
    # "words": the mean over the text's own tokens without [CLS] and the final [SEP], which every text shares
    answer_pool: str = "cls"
    mc: int = 0  # 0: open-ended over num_answers; else the number of choices
    num_answers: int = 171
    # BERT question / answer encoders, built locally (weights from --bert DIR or random)
    bert_vocab_size: int = 30522
    bert_hidden: int = 768
    bert_layers: int = 12
    bert_heads: int = 12
    bert_ff: int = 3072
    bert_max_positions: int = 512

    def __post_init__(self) -> None:
        positive = ("feature_dim", "num_frames", "num_segments", "num_regions", "d_model", "n_heads", "d_ff")
        positive += ("n_ista", "n_blocks", "topk", "topj", "qmax", "amax", "bert_vocab_size", "bert_hidden")
        positive += ("bert_layers", "bert_heads", "bert_ff", "bert_max_positions", "box_dim", "box_hidden")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"model.{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"model.dropout must be in [0, 1), got {self.dropout}")
        if self.tau <= 0:
            raise ConfigError(f"model.tau must be > 0, got {self.tau}")
        if self.num_frames % self.num_segments:
            raise ConfigError(f"model.num_frames {self.num_frames} is not a multiple of num_segments")
        if self.topk > self.num_segments:
            raise ConfigError(f"model.topk {self.topk} exceeds num_segments {self.num_segments}")
        if self.topj > self.regions_per_frame:
            raise ConfigError(
                f"model.topj {self.topj} exceeds the {self.regions_per_frame} regions per frame"
            )
        if self.d_model % self.n_heads or self.bert_hidden % self.bert_heads:
            raise ConfigError("model.d_model / bert_hidden must be divisible by n_heads / bert_heads")
        one_of("model.selection", self.selection, MODES)
        one_of("model.relax", self.relax, RELAXATIONS)
        if self.region_relax not in ("", *RELAXATIONS):
            raise ConfigError(
                f"model.region_relax must be '' or one of {', '.join(RELAXATIONS)}, got {self.region_relax!r}"
            )
        one_of("model.answer_pool", self.answer_pool, ANSWER_POOLS)
        one_of("model.region_keys", self.region_keys, REGION_KEYS)
        one_of("model.selector_init", self.selector_init, SELECTOR_INITS)
        one_of("model.selector", self.selector, SELECTORS)
        if self.selector == "oracle" and self.topk < 1:
            raise ConfigError("model.selector oracle needs topk >= 1")
        if self.mc < 0 or self.mc == 1 or self.num_answers < 1:
            raise ConfigError(f"model.mc must be 0 (open-ended) or >= 2, got {self.mc}")

    @property
    def frames_per_segment(self) -> int:
        return self.num_frames // self.num_segments

    @property
    def regions_per_frame(self) -> int:
        return self.num_regions + int(self.frame_as_region)

    @property
    def num_region_tokens(self) -> int:
        """Region tokens each ISTA layer feeds its transformer (the token budget)."""
        if self.selector == "uniform":
            return self.topk * self.regions_per_frame  # topk uniformly spaced frames, all their regions
        if self.selector == "mean_pool":
            return self.num_frames
        if self.selector == "dense":
            return self.num_frames * self.regions_per_frame
        return self.topk * self.frames_per_segment * self.topj

    @property
    def seq_len(self) -> int:
        """Q + S + region tokens (Q is dropped in the video-only variant)."""
        return (0 if self.video_only else self.qmax) + self.num_segments + self.num_region_tokens

    @classmethod
    def preset(cls, name: str) -> MISTConfig:
        """The ``model:`` section of the shipped config ``name`` (one of ``PRESETS``)."""
        from mist_videoqa.config import load_train_config  # the YAMLs are the single source of the presets

        if name not in PRESETS:
            raise ConfigError(f"unknown preset {name!r} (known: {', '.join(PRESETS)})")
        return load_train_config(name).model

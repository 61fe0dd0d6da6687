"""Training settings: one frozen dataclass, with defaults that depend on the model type.

The neural bigram defaults to the lecture's recipe (full-batch SGD, lr 50,
λ 0.01); every other model to the PyTorch makemore's (AdamW, lr 5e-4, weight
decay 0.01, batch 32, n_layer/n_head/n_embd/n_embd2 = 4/4/64/64).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from ..data.words import validate_split
from ..errors import MakemoreError
from ..models import MODEL_TYPES, ModelConfig, get_model, ngram
from ..seeding import MAX_SEED

SMOOTHING_METHODS = ngram.METHODS
INT32_LIMIT = 2**31 - 1
# Integer settings that become step counters, array sizes or indices in int32 (a batch of words is drawn by
# int32 row indices, run_steps counts steps in int32): bounded by INT32_LIMIT from the settings alone. What
# they take in memory together, with the data, is training.sizes.check_fits's.
INT32_SIZES = (
    "steps",
    "batch_size",
    "warmup_steps",
    "block_size",
    "eval_words",
    "eval_every",
    "log_every",
    "n_layer",
    "n_head",
    "n_embd",
    "n_embd2",
)
OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class TrainConfig:
    type: str = "bigram"
    seed: int = 0
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)
    smoothing: float = 1.0  # add-k, counting model only
    optimizer: str = "sgd"
    lr: float = 50.0
    weight_decay: float = 0.0  # AdamW's decoupled decay
    l2: float = 0.01  # λ in loss = NLL + λ·mean(param²)
    steps: int = 500
    batch_size: int = 0  # words per step; 0 = the whole training split
    warmup_steps: int = 0
    lr_schedule: str = "constant"
    min_lr: float = 0.0  # where cosine decay ends
    grad_clip: float = 0.0  # max global gradient norm; 0 = off
    dropout: float = 0.0  # training-time dropout rate, for models that have it
    eval_every: int = 50
    eval_words: int = (
        40000  # words of each split scored at each evaluation (a fixed sample; above names.txt's 32,033); 0 = all
    )
    log_every: int = 50
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 64
    n_embd2: int = 64
    block_size: int = 0  # 0 = longest word + 1
    order: int = 2  # ngram: ids per n-gram, the context is order − 1 of them
    smoothing_method: str = "add-k"  # ngram: add-k (with k = smoothing), kn or modified-kn
    discount: float = 0.0  # kn: one discount in (0, 1) at every order; 0 = from the count-of-counts
    discount_scale: float = 1.0  # kn, modified-kn: factor on the count-of-counts discounts
    # ngram: what counting may hold in memory before it spills to disk ("512M", "2G", "80%"; "" = a quarter of
    # physical memory). A resource, not a setting of the model: left out of equality and of saved configs.
    memory: str = field(default="", compare=False)
    init_scale: float = 1.0  # bigram: W ~ N(0, init_scale²) (the lecture's); 0 = zeros (the PyTorch makemore's)
    pack: bool = True  # sequence models that can: batches packed end to end instead of padded (same loss)

    @classmethod
    def create(cls, type: str = "bigram", **given: Any) -> TrainConfig:
        """Defaults for the type, overridden by the given fields (None means not given)."""
        if type not in MODEL_TYPES:
            raise MakemoreError(f"unknown model type {type!r} (choose from {', '.join(MODEL_TYPES)})")
        fields = {**defaults_for(type), **{k: v for k, v in given.items() if v is not None}}
        unknown = set(fields) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise MakemoreError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        return cls(type=type, **fields)

    def validate(self) -> TrainConfig:
        if self.type not in MODEL_TYPES:
            raise MakemoreError(f"unknown model type {self.type!r} (choose from {', '.join(MODEL_TYPES)})")
        if not (isinstance(self.seed, int) and 0 <= self.seed <= MAX_SEED):
            raise MakemoreError(f"seed must be an integer in 0..{MAX_SEED}, got {self.seed}")
        for name in ("smoothing", "lr", "weight_decay", "l2", "min_lr", "grad_clip", "init_scale"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise MakemoreError(f"{name} must be a finite number >= 0, got {value}")
        for name in ("steps", "batch_size", "warmup_steps", "block_size", "eval_words"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 0):
                raise MakemoreError(f"{name} must be an integer >= 0, got {value}")
        for name in ("eval_every", "log_every", "n_layer", "n_head", "n_embd", "n_embd2"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 1):
                raise MakemoreError(f"{name} must be an integer >= 1, got {value}")
        for name in INT32_SIZES:  # checked before anything multiplies them (check_fits) or JAX sees them
            value = getattr(self, name)
            if value > INT32_LIMIT:
                raise MakemoreError(
                    f"{name} must be at most {INT32_LIMIT:,} (JAX counts steps and indexes "
                    f"arrays with int32), got {value:,}"
                )
        if not (isinstance(self.order, int) and self.order >= 1):
            raise MakemoreError(f"order must be an integer >= 1, got {self.order}")
        if ngram.order_too_large(self.order):
            raise MakemoreError(ngram.order_too_large(self.order))
        if self.smoothing_method not in SMOOTHING_METHODS:
            raise MakemoreError(
                f"smoothing method must be one of {', '.join(SMOOTHING_METHODS)}, got {self.smoothing_method!r}"
            )
        if not (isinstance(self.discount, (int, float)) and (self.discount == 0 or 0 < self.discount < 1)):
            raise MakemoreError(f"discount must be in (0, 1) (or 0: from the count-of-counts), got {self.discount}")
        if not (
            isinstance(self.discount_scale, (int, float))
            and math.isfinite(self.discount_scale)
            and self.discount_scale > 0
        ):
            raise MakemoreError(f"discount scale must be a finite number > 0, got {self.discount_scale}")
        ngram.memory_bytes(self.memory)
        if self.init_scale != 1.0 and "init_scale" not in dict(get_model(self.type).options):
            raise MakemoreError(f"init scale applies to the bigram only (this is {self.type})")
        if not (isinstance(self.dropout, (int, float)) and 0 <= self.dropout < 1):
            raise MakemoreError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.optimizer not in OPTIMIZERS:
            raise MakemoreError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.lr_schedule not in SCHEDULES:
            raise MakemoreError(f"lr schedule must be one of {', '.join(SCHEDULES)}, got {self.lr_schedule!r}")
        if not isinstance(self.pack, bool):
            raise MakemoreError(f"pack must be true or false, got {self.pack!r}")
        validate_split(self.split)
        return self

    def model_config(self, vocab_size: int, block_size: int) -> ModelConfig:
        return ModelConfig(vocab_size, block_size, self.n_layer, self.n_head, self.n_embd, self.n_embd2)

    def to_json(self) -> dict:
        """The fields that make the model, for a checkpoint (not NOT_SAVED's resources)."""
        saved = {k: v for k, v in dataclasses.asdict(self).items() if k not in NOT_SAVED}
        return {**saved, "split": list(self.split)}

    @classmethod
    def from_json(cls, obj: object) -> TrainConfig:
        """Exactly the fields of TrainConfig, validated; MakemoreError otherwise."""
        if not isinstance(obj, dict):
            raise MakemoreError("config must be an object")
        obj = {**{k: v for k, v in OLD_MEANING.items() if k not in obj}, **obj}
        names = {f.name for f in dataclasses.fields(cls)}
        missing, extra = names - set(obj) - ADDED_LATER - NOT_SAVED, set(obj) - names
        if missing or extra:
            parts = ([f"missing {', '.join(sorted(missing))}"] if missing else []) + (
                [f"unexpected {', '.join(sorted(extra))}"] if extra else []
            )
            raise MakemoreError(f"config fields: {'; '.join(parts)}")
        split = obj["split"]
        if not (isinstance(split, list) and len(split) == 3):
            raise MakemoreError("config split must be a list of three numbers")
        try:
            cfg = cls(**{**obj, "split": tuple(split)})
        except TypeError as err:
            raise MakemoreError(f"config: {err}") from None
        return cfg.validate()


# Fields newer than the first checkpoints: a config without them gets their defaults.
ADDED_LATER = frozenset({"order", "smoothing_method", "discount", "discount_scale", "init_scale"})
# Fields newer still, whose absence means what the code that wrote the config did:
# runs saved before packing trained on padded batches, and before eval_words
# scored whole splits at every evaluation; they resume that way.
OLD_MEANING = {"pack": False, "eval_words": 0}
# Resources of the machine a run counts or trains on, not part of the model: never saved (a
# config read back gets the default), and never compared with a saved run's.
NOT_SAVED = frozenset({"memory"})


def defaults_for(model_type: str) -> dict:
    """The type's own defaults (its ModelDef's) over the dataclass's."""
    return dict(get_model(model_type).defaults)

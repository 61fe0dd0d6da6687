"""A trained model as the rest of the package sees it: settings, vocabulary, parameters."""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from .config import TrainConfig
from .counts import smoothed_probs
from .data import Vocabulary
from .models import ModelConfig, ModelDef, get_model


@dataclass
class TrainedModel:
    config: TrainConfig
    vocab: Vocabulary
    params: dict
    block_size: int  # longest id sequence: longest training word + 1 (or as configured)

    @property
    def type(self) -> str:
        return self.config.type

    @property
    def model_config(self) -> ModelConfig:
        return self.config.model_config(self.vocab.size, self.block_size)

    @property
    def model_def(self) -> ModelDef:
        if self.type == "ngram":
            from .ngram import MODEL_DEF  # counted, not a registered neural model

            return MODEL_DEF
        return get_model("bigram" if self.type == "counts" else self.type)

    @property
    def apply(self):
        return self.model_def.apply

    @property
    def table(self) -> jax.Array | None:
        """V×V next-id logits for the two bigram models (log P for counts); None otherwise."""
        if self.type == "counts":
            return jnp.log(smoothed_probs(self.params["counts"], self.config.smoothing))
        if self.type == "bigram":
            return self.params["W"]
        return None

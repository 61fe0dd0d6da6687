"""A fitted model as the rest of the package sees it (counted or trained): settings, vocabulary, parameters."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import jax

from ..data.words import Vocabulary
from ..models import ModelConfig, ModelDef, Params, get_model
from ..models.mixture import Mixture
from .config import TrainConfig


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
        return get_model(self.type)

    @property
    def apply(self) -> Callable[[Params, jax.Array], jax.Array]:
        return self.model_def.apply

    @property
    def table(self) -> jax.Array | None:
        """V×V next-id logits of a model whose next id depends on the current one alone; None otherwise."""
        table = self.model_def.table
        return None if table is None else table(self.params, self.config)


FittedModel = TrainedModel | Mixture  # what is scored and sampled: a trained or counted model, or a mixture of them

"""Fitted: one model type counted or trained on a vocabulary: its settings, vocabulary, parameters, block size.

The words of the package, one thing each: a *model type* is defined by its
ModelDef (models/); a *Fitted* is one type fitted to data (this module); a
*Mixture* mixes Fitted ones (``AnyFitted`` is either); a *Model* (api) is what a
user holds: an AnyFitted with its training record, metrics and latest state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import jax

from ..data.words import Vocabulary
from ..models import ModelConfig, ModelDef, Params, Runner, get_model
from ..models.mixture import Mixture
from .config import TrainConfig


@dataclass
class Fitted:
    """One model type fitted to data (counted or trained)."""

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
        """The trained model's forward pass (what the trainer differentiates); a counted model has none."""
        apply = self.model_def.apply
        if apply is None:
            raise TypeError(f"a {self.type} model is counted: it has no apply to train (see its runner)")
        return apply

    @property
    def runner(self) -> Runner:
        """How it runs: what sampling, mixtures and evaluation use (``models.runner``)."""
        return self.model_def.runner(self)


AnyFitted = Fitted | Mixture  # what is scored and sampled: a trained or counted model, or a mixture of them

"""Mixtures of trained models: p(next | prefix) = Σ_k w_k p_k(next | prefix).

Linear interpolation of language models (Jelinek & Mercer 1980; for a neural
model and a Kneser–Ney n-gram, Mikolov et al. 2011): models that err in
different ways average to a better one. The weights are fitted on the dev
split by expectation–maximisation over the members' per-position
probabilities, which never lowers the dev likelihood and needs no step size.

A mixture runs like any fitted model (``models.runner``): it composes its
members' runners, its ``apply`` giving next-id log probabilities for id
sequences and its decoder running every member's own decoder (key/value
cache, carried state, n-gram context, table row) side by side, so
``sampling.generate``, ``evaluate.split_nll`` and ``evaluate.word_nll`` work
on it unchanged.

How a mixture is saved (``mixture.json`` beside one ordinary checkpoint per
member) is ``store.checkpoint``'s business: ``save_mixture``, and ``load`` of
such a work directory returns the mixture.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Protocol, TypedDict

import jax
import jax.numpy as jnp
import numpy as np

from ..data.packing import EVAL_CHUNK, in_chunks
from ..data.words import SPLITS, Dataset, Vocabulary
from ..errors import MakemoreError
from . import FittedView, ModelConfig, ModelDef, Params, Runner, Settings
from .runner import Apply


class Member(FittedView, Protocol):
    """What a mixture reads of each member (a training.fitted.Fitted, handed in: a higher layer)."""

    @property
    def runner(self) -> Runner: ...
    @property
    def model_def(self) -> ModelDef: ...


def _mix(logits_per_member: Sequence[jax.Array], log_w_K: jax.Array) -> jax.Array:
    """log Σ_k w_k softmax(logits_k) along the last axis."""
    logp_Kx = jnp.stack([jax.nn.log_softmax(logits, axis=-1) for logits in logits_per_member])
    return jax.scipy.special.logsumexp(logp_Kx + log_w_K.reshape((-1,) + (1,) * (logp_Kx.ndim - 1)), axis=0)


@dataclass(frozen=True)
class MixtureConfig:
    """What the decoders need, hashable for jit: the members' configs, and the shortest block size."""

    block_size: int
    members: tuple[ModelConfig | None, ...]


@dataclass(eq=False)  # hashed by identity: its functions are jit's static arguments
class Mixture:
    members: tuple[Member, ...]
    weights: np.ndarray  # (K,), positive, sums to 1
    training: dict[str, object] = field(default_factory=dict)

    type = "mixture"

    def __post_init__(self) -> None:
        runners = self._runners = tuple(m.runner for m in self.members)  # a table model's table, made once
        applies = tuple(r.apply for r in runners)
        decoders = tuple(r.decoder for r in runners)

        def apply(params, idx_BxT):
            return _mix([f(p, idx_BxT) for f, p in zip(applies, params["members"])], params["log_w"])

        def decode_init(params, config, batch):
            return tuple(d.init(p, c, batch) for d, p, c in zip(decoders, params["members"], config.members))

        def decode_step(params, states, token_B, t):
            outs = [d.step(p, s, token_B, t) for d, p, s in zip(decoders, params["members"], states)]
            return _mix([o[0] for o in outs], params["log_w"]), tuple(o[1] for o in outs)

        # every member's own decoder goes on past the block (a table's, an n-gram's): so does the mixture's,
        # and a --max-len past the shortest block is honoured, not lowered to it
        any_length = all(r.any_length for r in runners)
        self._model_def = ModelDef(
            "mixture", apply=apply, decode_init=decode_init, decode_step=decode_step, any_length=any_length
        )

    @property
    def vocab(self) -> Vocabulary:
        return self.members[0].vocab

    @property
    def config(self) -> Settings:
        """The members' shared settings (seed and split) as the first member has them."""
        return self.members[0].config

    @property
    def block_size(self) -> int:
        return min(m.block_size for m in self.members)

    @property
    def params(self) -> dict:
        return {
            "members": tuple(r.params for r in self._runners),
            "log_w": jnp.log(jnp.asarray(self.weights, jnp.float32)),
        }

    @property
    def model_config(self) -> MixtureConfig:
        return MixtureConfig(self.block_size, tuple(r.config for r in self._runners))

    @property
    def model_def(self) -> ModelDef:
        """A ModelDef whose apply and decoder run the members' side by side; a mixture is fitted, never initialised."""
        return self._model_def

    @property
    def runner(self) -> Runner:
        """Its apply and decoder over the members' runners (padded leaves scoring, as any model without a trie)."""
        return self._model_def.runner(self)


def check_members(members: Sequence[Member]) -> None:
    """Members must share the vocabulary, and those fitted here the seed and the split (so dev means the
    same words); a model read whole from another tool's file (``ModelDef.fitted_here`` False) has neither."""
    if len(members) < 2:
        raise MakemoreError(f"a mixture needs at least two models, got {len(members)}")
    first = members[0]
    for k, m in enumerate(members[1:], 1):
        if m.vocab.chars != first.vocab.chars:
            raise MakemoreError(f"model {k + 1} has another vocabulary than model 1: they were trained on other data")
    fitted_here = [k for k, m in enumerate(members) if m.model_def.fitted_here]
    for k in fitted_here[1:]:
        m, f = members[k], members[fitted_here[0]]
        if (m.config.seed, tuple(m.config.split)) != (f.config.seed, tuple(f.config.split)):
            raise MakemoreError(
                f"model {k + 1} was trained with seed {m.config.seed} and split {m.config.split}, model "
                f"{fitted_here[0] + 1} with seed {f.config.seed} and split {f.config.split}: their dev splits differ"
            )


def data_member(members: Sequence[Member]) -> int:
    """The first member fitted here: whose data, seed and split give the mixture's dev split; MakemoreError
    where every member was read from another tool's file (none has a dev split)."""
    for k, m in enumerate(members):
        if m.model_def.fitted_here:
            return k
    raise MakemoreError(
        "none of the models was trained here: a mixture's weights are fitted on the dev split of the data "
        "its models were trained on, so mix at least one model trained on that data"
    )


@partial(jax.jit, static_argnames=("apply", "chunk"))
def position_logprobs(
    apply: Apply, params: Params, tokens_WxL: jax.Array, lengths_W: jax.Array, chunk: int = EVAL_CHUNK
) -> tuple[jax.Array, jax.Array]:
    """log p(target) at every position of every word, (W, L − 1), and the mask of positions that count."""
    n_words, width = tokens_WxL.shape

    def score(args):
        toks, _ = args
        logp_BxTxV = jax.nn.log_softmax(apply(params, toks[:, :-1]), axis=-1)
        return jnp.take_along_axis(logp_BxTxV, toks[:, 1:, None], axis=-1)[..., 0]

    logp_WxT = jax.lax.map(score, in_chunks(tokens_WxL, lengths_W, chunk, -1)).reshape(-1, width - 1)[:n_words]
    mask_WxT = jnp.arange(width - 1)[None, :] <= lengths_W[:, None]
    return logp_WxT, mask_WxT


def member_logprobs(members: Sequence[Member], data: Dataset, split: str) -> np.ndarray:
    """(K, P) log-probabilities each member gives the P positions (characters and ends) of a split."""
    block_size = min(m.block_size for m in members)
    tokens, lengths = data.padded(split, block_size)
    rows = []
    for m in members:
        run = m.runner
        logp, mask = position_logprobs(run.apply, run.params, jnp.asarray(tokens), jnp.asarray(lengths))
        rows.append(np.asarray(logp, np.float64)[np.asarray(mask)])
    return np.stack(rows)


def fit_weights(logp_KxP: np.ndarray, iterations: int = 200) -> np.ndarray:
    """Mixture weights maximising Σ_p log Σ_k w_k p_k(p), by EM from uniform weights."""
    K = logp_KxP.shape[0]
    log_w = np.full(K, -np.log(K))
    for _ in range(iterations):
        joint = log_w[:, None] + logp_KxP
        resp = np.exp(joint - np.logaddexp.reduce(joint, axis=0, keepdims=True))
        log_w = np.log(np.maximum(resp.mean(axis=1), 1e-300))
    return np.exp(log_w) / np.exp(log_w).sum()


def mixture_nll(logp_KxP: np.ndarray, weights: np.ndarray) -> float:
    with np.errstate(divide="ignore"):
        return float(-np.mean(np.logaddexp.reduce(np.log(weights)[:, None] + logp_KxP, axis=0)))


class Report(TypedDict):
    """What fit reports: the weights, and each split's NLL under every member and under the mixture."""

    weights: list[float]
    members: dict[str, list[float]]  # split -> NLL of each member
    mixture: dict[str, float]  # split -> NLL of the mixture


def fit(members: Sequence[Member], data: Dataset) -> tuple[Mixture, Report]:
    """The mixture of members with weights fitted on dev; and a report of every split's NLL."""
    check_members(members)
    if not data.words["dev"]:
        raise MakemoreError("the weights are fitted on the dev split, which is empty (see --split)")
    logp = {s: member_logprobs(members, data, s) for s in SPLITS if data.words[s]}
    weights = fit_weights(logp["dev"])
    report: Report = {
        "weights": weights.tolist(),
        "members": {s: (-lp.mean(axis=1)).tolist() for s, lp in logp.items()},
        "mixture": {s: mixture_nll(lp, weights) for s, lp in logp.items()},
    }
    return Mixture(tuple(members), weights), report

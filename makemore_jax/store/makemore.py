"""makemore.py's checkpoints, both ways: its models' state_dicts to and from makemore-jax's.

Karpathy's makemore.py saves ``model.state_dict()`` with ``torch.save``. Six of
its models are ours with the same arithmetic, so their weights move one to one:

    bigram       Bigram          logits (V, V) = W
    mlp          MLP             wte (V+1, E); mlp.0 = hidden, its window slots
                                 newest first (makemore rolls the ids right,
                                 ours are oldest first); mlp.2 = lm_head
    rnn, gru     RNN(cell_type)  start (1, H) = start.h; wte; cell.xh_to_*; lm_head
    bow          BoW             wte, wpe, context_block.cbow.bias (the causal
                                 mask), context_block.mlp.{c_fc, c_proj} = block, lm_head
    transformer  Transformer     transformer.{wte, wpe, h.<i>, ln_f}, lm_head (no
                                 bias); h.<i>.attn.bias is the causal mask, and
                                 c_attn / c_proj are ours with the heads flattened

where an ``nn.Linear`` weight is (out, in), ours {'w': (in, out), 'b'}, and a
LayerNorm's weight is our scale. The masks are buffers that makemore.py saves
with the parameters (its ``load_state_dict`` wants them), so they are written
here and checked on reading. Every array is float32.

The vocabulary is the same on both sides (sorted characters from id 1, id 0 the
boundary), and so is the block size (the longest word + 1). PyTorch is needed
only to read and write the ``.pt`` files (``read_pt``, ``write_pt``).
"""

from __future__ import annotations

import io
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..data.words import Vocabulary
from ..errors import MakemoreError
from ..models import ModelConfig, check_config, get_model
from ..training.config import TrainConfig, takes
from ..training.fitted import AnyFitted, Fitted
from .checkpoint import atomic_write

SIZES = {"n_layer": 4, "n_head": 4, "n_embd": 64, "n_embd2": 64}  # makemore.py's ModelConfig defaults


def _same(a: np.ndarray) -> np.ndarray:
    return a


def _transposed(a: np.ndarray) -> np.ndarray:
    return a.T


@dataclass(frozen=True)
class Entry:
    """One state_dict entry: its name and torch shape, where ours keeps it and how it moves.

    path None: a causal-mask buffer (nothing of ours). layer: the index into
    our stacked per-layer arrays (the Transformer's blocks).
    """

    name: str
    shape: tuple[int, ...]
    path: tuple[str, ...] | None
    to_torch: Callable[[np.ndarray], np.ndarray] = _same
    from_torch: Callable[[np.ndarray], np.ndarray] = _same
    layer: int | None = None


def _linear(name: str, path: tuple[str, ...], n_in: int, n_out: int, bias: bool = True) -> list[Entry]:
    """nn.Linear(n_in, n_out): weight (out, in) is our w transposed, bias is b."""
    weight = Entry(f"{name}.weight", (n_out, n_in), (*path, "w"), _transposed, _transposed)
    return [weight, Entry(f"{name}.bias", (n_out,), (*path, "b"))] if bias else [weight]


def _bigram(c: ModelConfig) -> list[Entry]:
    return [Entry("logits", (c.vocab_size, c.vocab_size), ("W",))]


def _slots_reversed(w_WExH: np.ndarray, n_embd: int) -> np.ndarray:
    """The rows of a Linear over W concatenated embeddings, with the order of the W slots reversed.

    makemore.py's MLP puts the current id's embedding first (torch.roll to the
    right, k steps back in slot k); ours puts the oldest first. Its own inverse.
    """
    H = w_WExH.shape[1]
    return w_WExH.reshape(-1, n_embd, H)[::-1].reshape(-1, H)


def _mlp(c: ModelConfig) -> list[Entry]:
    V, T, E, H = c.vocab_size, c.block_size, c.n_embd, c.n_embd2
    return [
        Entry("wte.weight", (V + 1, E), ("wte",)),  # + the blank id V before the start
        Entry(
            "mlp.0.weight",
            (H, T * E),
            ("hidden", "w"),
            lambda w: _slots_reversed(w, E).T,
            lambda t: _slots_reversed(t.T, E),
        ),
        Entry("mlp.0.bias", (H,), ("hidden", "b")),
        *_linear("mlp.2", ("lm_head",), H, V),
    ]


def _recurrent(gates: tuple[str, ...]) -> Callable[[ModelConfig], list[Entry]]:
    """makemore.py's RNN module around a cell whose Linears (E + H -> H) are the gates."""

    def layout(c: ModelConfig) -> list[Entry]:
        V, E, H = c.vocab_size, c.n_embd, c.n_embd2
        cell = [e for gate in gates for e in _linear(f"cell.{gate}", ("cell", gate), E + H, H)]
        return [
            Entry("start", (1, H), ("start", "h")),
            Entry("wte.weight", (V, E), ("wte",)),
            *cell,
            *_linear("lm_head", ("lm_head",), H, V),
        ]

    return layout


def _bow(c: ModelConfig) -> list[Entry]:
    V, T, E, H = c.vocab_size, c.block_size, c.n_embd, c.n_embd2
    return [
        Entry("wte.weight", (V, E), ("wte",)),
        Entry("wpe.weight", (T, E), ("wpe",)),
        Entry("context_block.cbow.bias", (1, T, T), None),
        *_linear("context_block.mlp.c_fc", ("block", "c_fc"), E, H),
        *_linear("context_block.mlp.c_proj", ("block", "c_proj"), H, E),
        *_linear("lm_head", ("lm_head",), E, V),
    ]


def _layer_norm(name: str, path: tuple[str, ...], C: int, layer: int | None = None) -> list[Entry]:
    return [
        Entry(f"{name}.weight", (C,), (*path, "scale"), layer=layer),
        Entry(f"{name}.bias", (C,), (*path, "bias"), layer=layer),
    ]


def _block(c: ModelConfig, i: int) -> list[Entry]:
    """Block i: c_attn's 3C outputs are q | k | v, each heads side by side, as ours (C, 3, nh, D) flattened."""
    T, C, nh = c.block_size, c.n_embd, c.n_head
    D, name = C // nh, f"transformer.h.{i}"
    attn = ("blocks", "attn")
    return [
        *_layer_norm(f"{name}.ln_1", ("blocks", "ln_1"), C, i),
        Entry(f"{name}.attn.bias", (1, 1, T, T), None),
        Entry(
            f"{name}.attn.c_attn.weight",
            (3 * C, C),
            (*attn, "c_attn", "w"),
            lambda w: w.reshape(C, 3 * C).T,
            lambda t: t.T.reshape(C, 3, nh, D),
            i,
        ),
        Entry(
            f"{name}.attn.c_attn.bias",
            (3 * C,),
            (*attn, "c_attn", "b"),
            lambda b: b.reshape(3 * C),
            lambda t: t.reshape(3, nh, D),
            i,
        ),
        Entry(
            f"{name}.attn.c_proj.weight",
            (C, C),
            (*attn, "c_proj", "w"),
            lambda w: w.reshape(C, C).T,
            lambda t: t.T.reshape(nh, D, C),
            i,
        ),
        Entry(f"{name}.attn.c_proj.bias", (C,), (*attn, "c_proj", "b"), layer=i),
        *_layer_norm(f"{name}.ln_2", ("blocks", "ln_2"), C, i),
        *[replace(e, layer=i) for e in _linear(f"{name}.mlp.c_fc", ("blocks", "mlp", "c_fc"), C, 4 * C)],
        *[replace(e, layer=i) for e in _linear(f"{name}.mlp.c_proj", ("blocks", "mlp", "c_proj"), 4 * C, C)],
    ]


def _transformer(c: ModelConfig) -> list[Entry]:
    V, T, C = c.vocab_size, c.block_size, c.n_embd
    return [
        Entry("transformer.wte.weight", (V, C), ("wte",)),
        Entry("transformer.wpe.weight", (T, C), ("wpe",)),
        *[e for i in range(c.n_layer) for e in _block(c, i)],
        *_layer_norm("transformer.ln_f", ("ln_f",), C),
        *_linear("lm_head", ("lm_head",), C, V, bias=False),
    ]


# our type -> (makemore.py's model, its state_dict's entries)
LAYOUTS: dict[str, tuple[str, Callable[[ModelConfig], list[Entry]]]] = {
    "bigram": ("Bigram", _bigram),
    "mlp": ("MLP", _mlp),
    "rnn": ("RNN(cell_type='rnn')", _recurrent(("xh_to_h",))),
    "gru": ("RNN(cell_type='gru')", _recurrent(("xh_to_z", "xh_to_r", "xh_to_hbar"))),
    "bow": ("BoW", _bow),
    "transformer": ("Transformer", _transformer),
}


TYPES = tuple(LAYOUTS)  # the makemore-jax types makemore.py has
NAMES = "makemore.py"  # safetensors metadata: the arrays carry makemore.py's names (store.safetensors)


def _layout(model_type: str) -> tuple[str, Callable[[ModelConfig], list[Entry]]]:
    if model_type not in LAYOUTS:
        raise MakemoreError(
            f"makemore.py has no {model_type} model (it has {', '.join(LAYOUTS)}): no makemore.py checkpoint of it"
        )
    return LAYOUTS[model_type]


def causal_mask(shape: tuple[int, ...]) -> np.ndarray:
    """makemore.py's mask buffer: tril(ones(T, T)) viewed as shape (1, T, T) or (1, 1, T, T)."""
    return np.tril(np.ones(shape[-2:], np.float32)).reshape(shape)


def _leaf(params: dict, path: tuple[str, ...]) -> Any:
    for key in path:
        params = params[key]
    return params


def _put(params: dict, path: tuple[str, ...], value: np.ndarray) -> None:
    for key in path[:-1]:
        params = params.setdefault(key, {})
    params[path[-1]] = value


def to_state_dict(fitted: AnyFitted) -> dict[str, np.ndarray]:
    """The state_dict makemore.py's model of the same type loads with strict=True: {name: float32 array}.

    Parameters and the causal-mask buffers, in torch's layout and in the order
    makemore.py's own ``state_dict()`` lists them. MakemoreError for a type
    makemore.py lacks (counts, ngram, lstm, wavenet, a mixture).
    """
    _, layout = _layout(fitted.type)
    assert isinstance(fitted, Fitted)  # a Mixture's type has no layout
    out = {}
    for entry in layout(fitted.model_config):
        if entry.path is None:
            out[entry.name] = causal_mask(entry.shape)
            continue
        ours = np.asarray(_leaf(fitted.params, entry.path), np.float32)
        ours = ours if entry.layer is None else ours[entry.layer]
        out[entry.name] = np.ascontiguousarray(entry.to_torch(ours), np.float32)
        if out[entry.name].shape != entry.shape:
            raise MakemoreError(f"{entry.name} would be {out[entry.name].shape}, makemore.py wants {entry.shape}")
    return out


def _config(model_type: str, sizes: Mapping[str, int] | None) -> TrainConfig:
    """The TrainConfig of the type with makemore.py's sizes (4/4/64/64) where not given, those it takes."""
    unknown = sorted(set(sizes or {}) - set(SIZES))
    if unknown:
        raise MakemoreError(f"unknown size(s) {', '.join(unknown)}: makemore.py's are {', '.join(SIZES)}")
    model_def = get_model(model_type)
    given = {name: value for name, value in {**SIZES, **(sizes or {})}.items() if takes(model_def, name)}
    return TrainConfig.create(model_type, **given)


def _check_names(arrays: Mapping[str, Any], entries: list[Entry], what: str) -> None:
    expected = [e.name for e in entries]
    missing = [name for name in expected if name not in arrays]
    unexpected = sorted(set(arrays) - set(expected), key=str)
    for problem, names in (("missing", missing), ("unexpected", unexpected)):
        if names:
            more = f" (and {len(names) - 1} more)" if len(names) > 1 else ""
            raise MakemoreError(f"not {what}: {problem} {names[0]}{more}")


def _why_shape(name: str, model_type: str, config: ModelConfig, vocab: Vocabulary, taken: dict) -> str:
    """What a misshaped entry depends on: the vocabulary, the block size, or the sizes."""
    _, layout = LAYOUTS[model_type]

    def shape_with(**change: int) -> tuple[int, ...]:
        return next(e.shape for e in layout(replace(config, **change)) if e.name == name)

    if shape_with(vocab_size=config.vocab_size + 1) != shape_with():
        return f"the vocabulary has {config.vocab_size} ids ({len(vocab.chars)} characters and the boundary)"
    if shape_with(block_size=config.block_size + 1) != shape_with():
        return f"the block size is {config.block_size} (the longest word + 1)"
    return "the sizes are " + ", ".join(f"{k} {v}" for k, v in taken.items())


def _check_arrays(arrays: Mapping[str, Any], model_type: str, config: TrainConfig, vocab: Vocabulary, T: int) -> None:
    model_config = config.model_config(vocab.size, T)
    taken = {name: getattr(config, name) for name in SIZES if takes(get_model(model_type), name)}
    for entry in LAYOUTS[model_type][1](model_config):
        a = np.asarray(arrays[entry.name])
        if a.shape != entry.shape:
            why = _why_shape(entry.name, model_type, model_config, vocab, taken)
            raise MakemoreError(f"{entry.name} is {a.shape}, expected {entry.shape}: {why}")
        if not np.issubdtype(a.dtype, np.floating):
            raise MakemoreError(f"{entry.name} holds {a.dtype}, expected floating point")
        if entry.path is None and not np.array_equal(a, causal_mask(entry.shape)):
            raise MakemoreError(f"{entry.name} is not makemore.py's causal mask (ones on and below the diagonal)")


def from_state_dict(
    arrays: Mapping[str, np.ndarray],
    model_type: str,
    vocab: Vocabulary,
    block_size: int,
    sizes: Mapping[str, int] | None = None,
) -> Fitted:
    """The Fitted model of a makemore.py state_dict: the inverse of ``to_state_dict``.

    arrays: {name: array} as makemore.py's ``model.state_dict()`` (``read_pt``);
    sizes: n_layer, n_head, n_embd, n_embd2 (makemore.py's 4, 4, 64, 64 where
    not given); vocab and block_size: the words' (block size = longest word + 1).
    MakemoreError, one line, for names, shapes or a vocabulary that do not fit.
    """
    name, layout = _layout(model_type)
    config = _config(model_type, sizes)
    model_config = config.model_config(vocab.size, block_size)
    check_config(model_config, model_type)
    entries = layout(model_config)
    _check_names(arrays, entries, f"makemore.py's {name} with these sizes")
    _check_arrays(arrays, model_type, config, vocab, block_size)
    params: dict = {}
    layered: dict[tuple[str, ...], list[np.ndarray]] = {}
    for entry in entries:
        if entry.path is None:
            continue
        ours = np.ascontiguousarray(entry.from_torch(np.asarray(arrays[entry.name], np.float32)))
        if entry.layer is None:
            _put(params, entry.path, ours)
        else:
            layered.setdefault(entry.path, []).append(ours)
    for path, per_layer in layered.items():
        _put(params, path, np.stack(per_layer))
    return Fitted(config, vocab, params, block_size)


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        raise MakemoreError(
            "reading and writing makemore.py checkpoints needs PyTorch: pip install 'makemore-jax[bench]'"
        ) from None
    return torch


def read_pt(path: str) -> dict[str, np.ndarray]:
    """The state_dict in a makemore.py checkpoint (``torch.save(model.state_dict(), path)``) as numpy arrays.

    Loaded with weights_only=True: a file that would run code is refused, not
    run. MakemoreError for a file that is not a state_dict of tensors.
    """
    torch = _torch()
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except OSError as err:
        raise MakemoreError(f"cannot read {path}: {err.strerror or err}") from None
    except Exception as err:  # torch raises pickle, zip and runtime errors alike
        raise MakemoreError(
            f"{path} is not a PyTorch checkpoint of plain tensors ({type(err).__name__} under weights_only=True)"
        ) from None
    if not isinstance(loaded, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in loaded.items()
    ):
        raise MakemoreError(f"{path} does not hold a state_dict (a mapping of names to tensors)")
    out = {}
    for name, tensor in loaded.items():
        tensor = tensor.detach().cpu()
        out[name] = (tensor.float() if tensor.is_floating_point() else tensor).numpy()
    return out


def pt_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    """The bytes torch.save writes of an OrderedDict of the arrays as tensors: a file makemore.py loads."""
    torch = _torch()
    state = OrderedDict((name, torch.tensor(np.asarray(a))) for name, a in arrays.items())
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def write_pt(path: str, arrays: Mapping[str, np.ndarray]) -> None:
    """pt_bytes of the arrays, written atomically."""
    payload = pt_bytes(arrays)
    try:
        atomic_write(path, payload)
    except OSError as err:
        raise MakemoreError(f"cannot write {path}: {err.strerror or err}") from None

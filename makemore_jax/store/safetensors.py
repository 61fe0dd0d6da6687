"""safetensors files of a model: its arrays, with its type, settings and vocabulary in the file's metadata.

The format (huggingface/safetensors): an 8-byte little-endian header length N,
N bytes of JSON (each tensor's dtype, shape and byte offsets, and a
``__metadata__`` object of strings), then the tensors' bytes, row-major and
little-endian. It holds numbers only: reading runs nothing, and needs neither
torch nor the safetensors package (this module reads and writes it with
numpy; the tests check that the safetensors package reads what it writes).

A model of a type makemore.py has (bigram, mlp, rnn, gru, bow, transformer) is
written under makemore.py's names, in torch's layout (its state_dict:
store.makemore); the others under their own parameter paths (``params/<path>``
of a checkpoint, with ``/`` made ``.``). The metadata holds the format, the
names used, the model type, the settings (TrainConfig's JSON), the vocabulary
and the block size, so reading it back gives the same model: a round trip is
exact.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping

import numpy as np

from ..data.words import Vocabulary
from ..errors import MakemoreError
from ..models import mixture
from ..training.config import TrainConfig
from ..training.fitted import AnyFitted, Fitted
from . import makemore

FORMAT = "makemore-jax"
OWN_NAMES = "makemore-jax"  # the arrays' names: the model's own parameter paths, or makemore.NAMES
HEADER_LIMIT = 100 * 2**20  # a header this long is not a model's
DTYPES = {"F32": np.float32, "F64": np.float64, "I32": np.int32, "I64": np.int64, "U8": np.uint8, "I8": np.int8}
CODES = {np.dtype(v): k for k, v in DTYPES.items()}


def encode(arrays: Mapping[str, np.ndarray], metadata: Mapping[str, str]) -> bytes:
    """The bytes of a safetensors file of the arrays (in name order) and the metadata."""
    header: dict[str, object] = {"__metadata__": dict(metadata)}
    blobs, offset = [], 0
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        if a.dtype not in CODES:
            raise MakemoreError(f"safetensors: {name} is {a.dtype}, which this writer does not write")
        blob = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": CODES[a.dtype], "shape": list(a.shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # the data starts 8-byte aligned
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def decode(raw: bytes, source: str = "file") -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """(arrays, metadata) of a safetensors file's bytes; MakemoreError naming source for anything else."""

    def bad(why: str) -> MakemoreError:
        return MakemoreError(f"{source} is not a safetensors file: {why}")

    if len(raw) < 8:
        raise bad("shorter than its 8-byte header length")
    (n,) = struct.unpack("<Q", raw[:8])
    if n > min(HEADER_LIMIT, len(raw) - 8):
        raise bad(f"its header length {n:,} runs past the file ({len(raw):,} bytes)")
    try:
        header = json.loads(raw[8 : 8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise bad(f"its header is not JSON ({err})") from None
    if not isinstance(header, dict):
        raise bad("its header is not an object")
    metadata = header.pop("__metadata__", {}) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise bad("__metadata__ must map names to strings")
    data = memoryview(raw)[8 + n :]
    arrays = {}
    for name, spec in header.items():
        arrays[name] = _tensor(name, spec, data, bad)
    return arrays, metadata


def _tensor(name: str, spec: object, data: memoryview, bad) -> np.ndarray:  # type: ignore[no-untyped-def]
    if not isinstance(spec, dict) or spec.get("dtype") not in DTYPES:
        raise bad(f"{name}: a dtype of {', '.join(DTYPES)} is needed")
    shape, offsets = spec.get("shape"), spec.get("data_offsets")
    if not (isinstance(shape, list) and all(isinstance(d, int) and d >= 0 for d in shape)):
        raise bad(f"{name}: its shape must be a list of sizes")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)):
        raise bad(f"{name}: data_offsets must be two integers")
    begin, end = offsets
    dtype = np.dtype(DTYPES[spec["dtype"]]).newbyteorder("<")
    if not 0 <= begin <= end <= len(data) or end - begin != dtype.itemsize * int(np.prod(shape, dtype=np.int64)):
        raise bad(f"{name}: its bytes {begin}..{end} do not hold a {spec['dtype']}{shape} inside the file")
    return np.frombuffer(data[begin:end], dtype).astype(dtype.newbyteorder("="), copy=True).reshape(shape)


def model_bytes(model: AnyFitted) -> bytes:
    """A model as a safetensors file: its parameters under their own paths, its description in the metadata."""
    from .checkpoint import flatten_params

    if isinstance(model, mixture.Mixture):
        raise MakemoreError("a mixture is not one set of weights: export its member models instead")
    if model.type in makemore.TYPES:
        arrays, names = makemore.to_state_dict(model), makemore.NAMES
    else:
        arrays = {path[len("params/") :].replace("/", "."): a for path, a in flatten_params(model.params).items()}
        names = OWN_NAMES
    metadata = {
        "format": FORMAT,
        "names": names,
        "type": model.type,
        "config": json.dumps(model.config.to_json()),
        "vocab": json.dumps(model.vocab.to_json(), ensure_ascii=False),
        "block_size": str(model.block_size),
    }
    return encode(arrays, metadata)


def model_from_bytes(raw: bytes, source: str) -> Fitted:
    """The model of a file model_bytes wrote; MakemoreError naming source for any other or a damaged one."""
    from .checkpoint import check_arrays, flatten_params, unflatten_params

    arrays, meta = decode(raw, source)
    if meta.get("format") != FORMAT:
        raise MakemoreError(f"{source}: not a makemore-jax model (its metadata has no format {FORMAT!r})")
    try:
        config = TrainConfig.from_json(json.loads(meta.get("config", "null")))
        vocab = Vocabulary.from_json(json.loads(meta.get("vocab", "null")))
        block_size = int(meta.get("block_size", ""))
    except (MakemoreError, ValueError, TypeError) as err:
        raise MakemoreError(f"{source}: its metadata does not describe a model ({err})") from None
    if meta.get("type") != config.type:
        raise MakemoreError(f"{source}: type {meta.get('type')!r} does not match its config ({config.type!r})")
    if meta.get("names") == makemore.NAMES:
        sizes = {k: getattr(config, k) for k in makemore.SIZES}
        made = makemore.from_state_dict(arrays, config.type, vocab, block_size, sizes)
        arrays = {path[len("params/") :].replace("/", "."): a for path, a in flatten_params(made.params).items()}
    elif meta.get("names") != OWN_NAMES:
        raise MakemoreError(f"{source}: its metadata names its arrays {meta.get('names')!r}, which this reader lacks")
    flat = {"params/" + name.replace(".", "/"): a for name, a in arrays.items()}
    model = Fitted(config, vocab, {}, block_size)
    check_arrays(model, flat, source)
    model.params = unflatten_params(flat)
    return model

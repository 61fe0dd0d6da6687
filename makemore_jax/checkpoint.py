"""A work directory: parameters as .npz, everything else as JSON, written atomically.

Layout::

    WORKDIR/model.json          type, hyperparameters, vocabulary, metrics, and the
                                name + SHA-256 of the parameter file below
    WORKDIR/params-<sha>.npz    the arrays (np.savez, read with allow_pickle=False)
    WORKDIR/metrics.jsonl       one JSON record per logged training chunk

Every file is written to a temporary name and moved into place with
``os.replace``. ``model.json`` is written last and is the commit point: until it
is replaced, it names the previous, complete parameter file, so a crash at any
moment leaves a loadable work directory.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import tempfile
import zipfile
from dataclasses import dataclass, field

import numpy as np

from . import __version__
from .data import Vocabulary
from .errors import MakemoreError

MODEL_FILE = "model.json"
METRICS_FILE = "metrics.jsonl"
FORMAT = "makemore-jax"
FORMAT_VERSION = 1
_UMASK = os.umask(0)
os.umask(_UMASK)

# The arrays each model type holds, with dtype; every one is V×V.
PARAM_SPECS = {"counts": {"counts": "int32"}, "bigram": {"W": "float32"}}


@dataclass
class Checkpoint:
    type: str
    vocab: Vocabulary
    params: dict[str, np.ndarray]
    hparams: dict = field(default_factory=dict)
    training: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)


def atomic_write(path: str, payload: bytes) -> None:
    """Write bytes to path so that readers see the old file or the new one, never half."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix="-" + os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o666 & ~_UMASK)  # mkstemp makes 0600; use the usual mode
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def json_number(x):
    """JSON has no inf/NaN: write them as the strings "inf", "-inf", "nan"."""
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    return x


def _json_bytes(obj) -> bytes:
    return (json.dumps(obj, indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")


def _npz_bytes(params: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in params.items()})
    return buf.getvalue()


def save(workdir: str, ckpt: Checkpoint, history: list[dict] | None = None) -> None:
    """Write a checkpoint into workdir (created if missing); model.json goes last."""
    try:
        os.makedirs(workdir, exist_ok=True)
        payload = _npz_bytes(ckpt.params)
        digest = hashlib.sha256(payload).hexdigest()
        params_file = f"params-{digest[:16]}.npz"
        atomic_write(os.path.join(workdir, params_file), payload)
        if history is not None:
            lines = "".join(
                json.dumps({k: json_number(v) for k, v in r.items()}, allow_nan=False) + "\n" for r in history
            )
            atomic_write(os.path.join(workdir, METRICS_FILE), lines.encode("utf-8"))
        meta = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "makemore_jax_version": __version__,
            "type": ckpt.type,
            "hparams": ckpt.hparams,
            "vocab": ckpt.vocab.to_json(),
            "training": ckpt.training,
            "metrics": {k: json_number(v) for k, v in ckpt.metrics.items()},
            "params_file": params_file,
            "params_sha256": digest,
        }
        atomic_write(os.path.join(workdir, MODEL_FILE), _json_bytes(meta))
    except OSError as err:
        raise MakemoreError(f"cannot write to {workdir}: {err.strerror or err}") from None
    for name in os.listdir(workdir):  # parameter files no longer referenced
        if name.startswith("params-") and name.endswith(".npz") and name != params_file:
            try:
                os.unlink(os.path.join(workdir, name))
            except OSError:
                pass


def _corrupt(path: str, why: str) -> MakemoreError:
    return MakemoreError(f"{path} is not a valid checkpoint: {why}")


def load(workdir: str) -> Checkpoint:
    """Read and verify a checkpoint; any problem is one MakemoreError naming the file."""
    model_path = os.path.join(workdir, MODEL_FILE)
    if not os.path.isdir(workdir):
        raise MakemoreError(f"{workdir}: no such work directory (train a model there first)")
    try:
        with open(model_path, "rb") as f:
            meta = json.loads(f.read().decode("utf-8"))
    except FileNotFoundError:
        raise MakemoreError(f"{workdir}: no model here ({MODEL_FILE} is missing; train one first)") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise _corrupt(model_path, f"unreadable JSON ({err})") from None
    except OSError as err:
        raise MakemoreError(f"{model_path}: cannot read ({err.strerror})") from None

    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise _corrupt(model_path, "not a makemore-jax model file")
    if meta.get("format_version") != FORMAT_VERSION:
        raise _corrupt(model_path, f"format version {meta.get('format_version')!r}, expected {FORMAT_VERSION}")
    model_type = meta.get("type")
    if model_type not in PARAM_SPECS:
        raise _corrupt(model_path, f"unknown model type {model_type!r}")
    try:
        vocab = Vocabulary.from_json(meta.get("vocab"))
    except MakemoreError as err:
        raise _corrupt(model_path, str(err)) from None
    for key in ("hparams", "training", "metrics"):
        if not isinstance(meta.get(key), dict):
            raise _corrupt(model_path, f"field {key!r} is missing or not an object")
    if model_type == "counts":
        k = meta["hparams"].get("smoothing")
        if not isinstance(k, (int, float)) or not (k >= 0 and math.isfinite(k)):
            raise _corrupt(model_path, "hparams.smoothing must be a number >= 0")

    params_file = meta.get("params_file")
    if not isinstance(params_file, str) or os.path.basename(params_file) != params_file:
        raise _corrupt(model_path, "params_file is missing or not a plain file name")
    params_path = os.path.join(workdir, params_file)
    try:
        with open(params_path, "rb") as f:
            payload = f.read()
    except OSError as err:
        raise _corrupt(model_path, f"cannot read its parameters {params_file} ({err.strerror})") from None
    if hashlib.sha256(payload).hexdigest() != meta.get("params_sha256"):
        raise _corrupt(params_path, "checksum does not match model.json (file damaged or replaced)")
    params = _read_arrays(params_path, payload)
    V = vocab.size
    expected = PARAM_SPECS[model_type]
    if set(params) != set(expected):
        raise _corrupt(params_path, f"holds arrays {sorted(params)}, expected {sorted(expected)}")
    for name, dtype in expected.items():
        arr = params[name]
        if arr.shape != (V, V) or arr.dtype != np.dtype(dtype):
            raise _corrupt(params_path, f"{name} is {arr.dtype}{list(arr.shape)}, expected {dtype}[{V}, {V}]")
    return Checkpoint(model_type, vocab, params, meta["hparams"], meta["training"], meta["metrics"])


def _read_arrays(path: str, payload: bytes) -> dict[str, np.ndarray]:
    try:
        with np.load(io.BytesIO(payload), allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as err:
        raise _corrupt(path, f"unreadable arrays ({err})") from None

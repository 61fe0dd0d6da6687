"""Work directories: arrays as .npz, everything else as JSON, written atomically.

A checkpoint NAME (``model``: the best by dev NLL, what sample and eval use;
``last``: the latest state with optimizer moments, what --resume uses) is

    WORKDIR/NAME.json            settings, vocabulary, block size, step, metrics,
                                 and the file name + SHA-256 of its arrays
    WORKDIR/NAME-<sha>.npz       params/<path> arrays, and opt/<i> for the
                                 optimizer state's leaves (np.savez; read back
                                 with allow_pickle=False)

plus WORKDIR/metrics.jsonl, one JSON record per logged chunk of training. A
mixture's work directory holds mixture.json (the weights, the figures, the
member directories) and one ordinary checkpoint per member in member-<k>/;
``load`` of such a directory returns the mixture.

Every file is written to a temporary name (``.tmp-*``) and moved into place
with ``os.replace``. NAME.json is written last and is the commit point: until
it is replaced it names the previous, complete array file, so a crash at any
moment leaves the previous checkpoint loadable. NAME.json also holds the
SHA-256 of its own other fields (format 2), so a hand-edited file is refused
like a damaged one. Nothing is unpickled: arrays are read with
allow_pickle=False, metadata with json.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jax
import numpy as np

from .._version import __version__
from ..data.words import SPLITS, Vocabulary
from ..errors import MakemoreError
from ..models import ArraySpecs, Params, a_model, mixture
from ..models.losses import with_perplexities
from ..training.config import TrainConfig
from ..training.fitted import AnyFitted, Fitted
from ..training.steps import OptState

METRICS_FILE = "metrics.jsonl"
EVENTS_PREFIX = "events.out.tfevents."  # TensorBoard's event files (runs.tensorboard), part of the run
FORMAT = "makemore-jax"
FORMAT_VERSION = 2  # 2: NAME.json carries meta_sha256; format 1 files (without it) still load
MIXTURE_FILE = "mixture.json"
MIXTURE_FORMAT = "makemore-jax-mixture"
MIXTURE_FORMAT_VERSION = 2  # 2: mixture.json always carries meta_sha256; version 1 files carry it or not (older)
MIXTURE_READABLE_VERSIONS = (1, 2)
READABLE_VERSIONS = (1, 2)
TEMP_PREFIX = ".tmp-"
_UMASK = os.umask(0)
os.umask(_UMASK)


@dataclass
class Snapshot:
    """A fitted model at a step with its record, as a checkpoint holds it: the best (model.json) or the latest
    state (last.json, with the optimizer's state)."""

    fitted: AnyFitted
    step: int = 0
    best_dev: float | None = None
    training: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    opt_state: OptState | None = None  # the latest state's optimizer moments, to save


@dataclass
class Loaded(Snapshot):
    """A checkpoint read back: its optimizer state as the leaves it was saved as (restore_opt_state)."""

    opt_leaves: list[np.ndarray] | None = field(default=None, kw_only=True)


class Staged:
    """Files written under temporary names, to be moved into place together by replace_run: a new run's
    first save, which either replaces the run a directory held or (a write failing) leaves it untouched."""

    def __init__(self) -> None:
        self.moves: list[tuple[str, str]] = []  # (temporary file, final path), in the order written

    def discard(self) -> None:
        for tmp, _ in self.moves:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        self.moves.clear()


def atomic_write(path: str, payload: bytes, staged: Staged | None = None) -> None:
    """Write bytes to path so that readers see the old file or the new one, never half.

    Where the platform opens directories (POSIX: it has O_DIRECTORY), the directory is
    fsynced too, so that the rename itself survives a power cut; Windows cannot open a
    directory this way (and has no os.fchmod before Python 3.13: the mode is set by path).
    staged: the file is written under its temporary name only, and moved by replace_run.
    """
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=TEMP_PREFIX, suffix="-" + os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as f:
            if hasattr(os, "fchmod"):
                os.fchmod(f.fileno(), 0o666 & ~_UMASK)  # mkstemp makes 0600; use the usual mode
            else:
                os.chmod(tmp, 0o666 & ~_UMASK)
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        if staged is not None:
            staged.moves.append((tmp, path))
            return
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _sync_directory(directory)


def _sync_directory(directory: str) -> None:
    if hasattr(os, "O_DIRECTORY"):  # directories open as files (POSIX); on Windows os.open of one fails
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def json_number(x: object) -> object:
    """JSON has no inf/NaN: write them as the strings "inf", "-inf", "nan"."""
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    return x


def _flat_items(tree: dict, prefix: str) -> Iterator[tuple[str, Any]]:
    for key, value in tree.items():
        path = f"{prefix}/{key}"
        if isinstance(value, dict):
            yield from _flat_items(value, path)
        else:
            yield path, value


def flatten_params(params: Params, prefix: str = "params") -> dict[str, np.ndarray]:
    """Nested dicts of arrays -> {'params/a/b': array}."""
    return {path: np.asarray(leaf) for path, leaf in _flat_items(params, prefix)}


def unflatten_params(flat: dict[str, np.ndarray], prefix: str = "params") -> dict:
    tree: dict = {}
    for path, value in flat.items():
        parts = path.split("/")
        if parts[0] != prefix:
            continue
        node = tree
        for part in parts[1:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return tree


def _cannot_write(workdir: str, err: OSError) -> MakemoreError:
    return MakemoreError(f"cannot write to {workdir}: {err.strerror or err} (what was saved there before is kept)")


def prepare_workdir(workdir: str) -> None:
    """Before a run writes to workdir (holding its lock): drop the temporary files of a
    killed run, and fail now, not after training, if nothing can be written there."""
    try:
        names = os.listdir(workdir)
    except OSError as err:
        raise MakemoreError(f"cannot read the work directory {workdir}: {err.strerror or err}") from None
    for name in names:
        if name.startswith(TEMP_PREFIX):
            try:
                os.unlink(os.path.join(workdir, name))
            except OSError:
                pass
    try:
        fd, probe = tempfile.mkstemp(dir=workdir, prefix=TEMP_PREFIX)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise _cannot_write(workdir, err) from None


def replace_run(workdir: str, staged: Staged) -> None:
    """Put a new run's staged files in place of the run the directory held, whole.

    The old run's commit points go first (mixture.json, last.json, model.json: from then on nothing of it
    loads or resumes), then the staged files are moved into place in the order they were written (the
    new commit points last), then what is left of the old run (its metrics, array files, a mixture's
    member directories) is removed. Files this package does not write are left alone.
    """
    try:
        for name in (MIXTURE_FILE, "last.json", "model.json"):
            path = os.path.join(workdir, name)
            if os.path.lexists(path):
                os.unlink(path)
        for tmp, final in staged.moves:
            os.replace(tmp, final)
        for directory in sorted({os.path.dirname(os.path.abspath(f)) for _, f in staged.moves}):
            _sync_directory(directory)
    except OSError as err:
        raise _cannot_write(workdir, err) from None
    kept = {os.path.abspath(final) for _, final in staged.moves}
    staged.moves.clear()
    _drop_leftovers(workdir, kept)


def _drop_leftovers(workdir: str, kept: set[str]) -> None:
    """Remove the old run's files that the new one did not replace: metrics, unreferenced array files,
    member directories the new run has no file in."""
    referenced = {_arrays_file_of(os.path.join(workdir, f"{name}.json")) for name in ("model", "last")}
    for name in os.listdir(workdir):
        path = os.path.join(workdir, name)
        try:
            if name == METRICS_FILE and os.path.abspath(path) not in kept:
                os.unlink(path)
            elif name.endswith(".npz") and name.split("-", 1)[0] in ("model", "last") and name not in referenced:
                os.unlink(path)
            elif name.startswith(EVENTS_PREFIX) and os.path.abspath(path) not in kept:  # the old run's curves
                os.unlink(path)
            elif name.startswith("member-") and name[len("member-") :].isdigit():
                if os.path.islink(path) or not os.path.isdir(path):
                    os.unlink(path)
                elif not any(k.startswith(os.path.abspath(path) + os.sep) for k in kept):
                    shutil.rmtree(path)
                else:
                    _drop_leftovers(path, kept)
        except OSError:
            pass  # a file left is not loaded: nothing names it


def _arrays_file_of(meta_path: str) -> str | None:
    try:
        with open(meta_path, "rb") as f:
            meta = json.loads(f.read().decode("utf-8"))
        return meta.get("arrays_file") if isinstance(meta, dict) else None
    except (OSError, ValueError, RecursionError):
        return None


def write_metrics(workdir: str, history: list[dict], staged: Staged | None = None) -> None:
    lines = "".join(json.dumps({k: json_number(v) for k, v in r.items()}, allow_nan=False) + "\n" for r in history)
    try:
        atomic_write(os.path.join(workdir, METRICS_FILE), lines.encode("utf-8"), staged)
    except OSError as err:
        raise _cannot_write(workdir, err) from None


def read_metrics(workdir: str) -> list[dict]:
    """The records of metrics.jsonl ([] if absent); a damaged line ends the list there."""
    records = []
    try:
        with open(os.path.join(workdir, METRICS_FILE), encoding="utf-8") as f:
            for line in f:
                try:
                    record = json.loads(line)
                except (json.JSONDecodeError, RecursionError):
                    break
                if not isinstance(record, dict):
                    break
                records.append(record)
    except (OSError, UnicodeDecodeError):
        pass
    return records


def save(
    workdir: str,
    name: str,
    model: AnyFitted,
    *,
    step: int = 0,
    best_dev: float | None = None,
    training: dict | None = None,
    metrics: dict | None = None,
    opt_state: OptState | None = None,
    staged: Staged | None = None,
) -> None:
    """Write checkpoint NAME into workdir (created if missing); NAME.json goes last.

    A mixture is refused: it is saved by save_mixture, its members beside it.
    staged: written under temporary names, for replace_run to move into place.
    """
    if isinstance(model, mixture.Mixture):  # one checkpoint of it could not be loaded back
        raise MakemoreError("a mixture is saved with its members, by `makemore mix`; it is not one checkpoint")
    arrays = flatten_params(model.params)
    if opt_state is not None:
        for i, leaf in enumerate(jax.tree_util.tree_leaves(opt_state)):
            arrays[f"opt/{i:05d}"] = np.asarray(leaf)
    try:
        os.makedirs(workdir, exist_ok=True)
        buf = io.BytesIO()
        np.savez(buf, allow_pickle=False, **arrays)  # numbers only, as load reads them
        payload = buf.getvalue()
        digest = hashlib.sha256(payload).hexdigest()
        arrays_file = f"{name}-{digest[:16]}.npz"
        atomic_write(os.path.join(workdir, arrays_file), payload, staged)
        meta = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "makemore_jax_version": __version__,
            "type": model.type,
            "config": model.config.to_json(),
            "block_size": model.block_size,
            "vocab": model.vocab.to_json(),
            "step": step,
            "best_dev_nll": json_number(best_dev),
            "training": training or {},
            "metrics": {k: json_number(v) for k, v in (metrics or {}).items()},
            "arrays_file": arrays_file,
            "arrays_sha256": digest,
        }
        meta["meta_sha256"] = meta_digest(meta)
        text = json.dumps(meta, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
        atomic_write(os.path.join(workdir, f"{name}.json"), text.encode("utf-8"), staged)
    except OSError as err:
        raise _cannot_write(workdir, err) from None
    if staged is not None:
        return  # the old array files go when the staged ones are in place
    for other in os.listdir(workdir):  # array files of this checkpoint no longer referenced
        if other.startswith(f"{name}-") and other.endswith(".npz") and other != arrays_file:
            try:
                os.unlink(os.path.join(workdir, other))
            except OSError:
                pass


def meta_digest(meta: dict) -> str:
    """SHA-256 of every field but meta_sha256, in a canonical JSON form (sorted keys, no spaces)."""
    fields = {k: v for k, v in meta.items() if k != "meta_sha256"}
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"))  # ASCII: \u escapes
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def _corrupt(path: str, why: str) -> MakemoreError:
    return MakemoreError(f"{path} is not a valid checkpoint: {why}")


def _read_meta(workdir: str, name: str) -> tuple[str, dict]:
    path = os.path.join(workdir, f"{name}.json")
    if not os.path.isdir(workdir):
        if os.path.lexists(workdir):
            raise MakemoreError(
                f"{workdir} is a file, not a work directory (-o names the directory a model was saved to)"
            )
        raise MakemoreError(f"{workdir}: no such work directory (train a model there first)")
    try:
        with open(path, "rb") as f:
            meta = json.loads(f.read().decode("utf-8"))
    except FileNotFoundError:
        raise MakemoreError(f"{workdir}: no checkpoint here ({name}.json is missing; train a model first)") from None
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:  # RecursionError: nested too deep
        raise _corrupt(path, f"unreadable JSON ({err})") from None
    except OSError as err:
        raise MakemoreError(f"{path}: cannot read ({err.strerror})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise _corrupt(path, "not a makemore-jax checkpoint")
    version = meta.get("format_version")
    if isinstance(version, bool) or version not in READABLE_VERSIONS:
        raise _corrupt(path, f"format version {version!r}, expected one of {', '.join(map(str, READABLE_VERSIONS))}")
    if not isinstance(meta.get("makemore_jax_version"), str):
        raise _corrupt(path, "makemore_jax_version (the version that wrote it) is missing")
    return path, meta


def _expected_params(model: Fitted, arrays: dict[str, np.ndarray], path: str) -> ArraySpecs:
    """What the arrays of this model must be: its ModelDef's saved_arrays, or the shapes of its init."""
    saved_arrays = model.model_def.saved_arrays
    if saved_arrays is not None:  # counted models: table sizes depend on the data, checked for consistency instead
        try:
            return saved_arrays(arrays, model.config, model.vocab.size)
        except MakemoreError as err:
            raise _corrupt(path, str(err)) from None
    config, init = model.model_config, model.model_def.init
    assert init is not None  # trained: a counted model has saved_arrays (returned above)
    shapes = jax.eval_shape(lambda key: init(key, config), jax.random.key(0))
    return {k: (tuple(v.shape), np.dtype(v.dtype)) for k, v in _flat_items(shapes, "params")}


def check_arrays(model: Fitted, got: Mapping[str, np.ndarray], source: str, settings_source: str | None = None) -> None:
    """The arrays (``params/<path>``) must be exactly those of the model (its type, sizes and vocabulary):
    the same names, shapes and dtypes; else one MakemoreError naming source (settings_source: the file of the
    settings, for sizes no model can have)."""
    try:
        expected = _expected_params(model, dict(got), source)
    except (TypeError, ValueError, OverflowError) as err:  # sizes no model can have
        raise _corrupt(
            settings_source or source, f"its settings do not describe {a_model(model.type)} ({err})"
        ) from None
    if set(got) != set(expected):
        missing, extra = sorted(set(expected) - set(got)), sorted(set(got) - set(expected))
        raise _corrupt(source, f"arrays do not fit {a_model(model.type)} (missing {missing}, unexpected {extra})")
    for key, (shape, dtype) in expected.items():
        if got[key].shape != shape or got[key].dtype != dtype:
            raise _corrupt(source, f"{key} is {got[key].dtype}{list(got[key].shape)}, expected {dtype}{list(shape)}")


def _fields(path: str, meta: dict) -> tuple[TrainConfig, Vocabulary, int, int, float | None]:
    """(settings, vocabulary, block size, step, best dev NLL) of NAME.json, each checked."""
    try:
        config = TrainConfig.from_json(meta.get("config"))
        vocab = Vocabulary.from_json(meta.get("vocab"))
    except (MakemoreError, TypeError, ValueError, OverflowError) as err:  # a field of the wrong JSON type, too
        raise _corrupt(path, str(err)) from None
    if meta.get("type") != config.type:
        raise _corrupt(path, f"type {meta.get('type')!r} does not match its config ({config.type!r})")
    block_size, step = meta.get("block_size"), meta.get("step")
    if not isinstance(block_size, int) or block_size < 2:
        raise _corrupt(path, "block_size must be an integer >= 2")
    if not isinstance(step, int) or step < 0:
        raise _corrupt(path, "step must be an integer >= 0")
    for key in ("training", "metrics"):
        if not isinstance(meta.get(key), dict):
            raise _corrupt(path, f"field {key!r} is missing or not an object")
    best_dev = meta.get("best_dev_nll")
    try:
        best = None if best_dev is None else float(best_dev)  # a number, or "inf"/"nan" as written
    except (TypeError, ValueError, OverflowError):
        raise _corrupt(path, "best_dev_nll must be a number") from None
    return config, vocab, block_size, step, best


def load(workdir: str, name: str = "model") -> Loaded:
    """Read and verify checkpoint NAME; any problem is one MakemoreError naming the file.

    The model of a mixture's work directory (see save_mixture) is the mixture.
    """
    if name == "model" and is_mixture(workdir):
        return _load_mixture(workdir)
    path, meta = _read_meta(workdir, name)
    config, vocab, block_size, step, best = _fields(path, meta)

    arrays_file = meta.get("arrays_file")
    if not isinstance(arrays_file, str) or os.path.basename(arrays_file) != arrays_file or "\x00" in arrays_file:
        raise _corrupt(path, "arrays_file is missing or not a plain file name")
    arrays_path = os.path.join(workdir, arrays_file)
    try:
        with open(arrays_path, "rb") as f:
            payload = f.read()
    except OSError as err:
        raise _corrupt(path, f"cannot read its arrays {arrays_file} ({err.strerror})") from None
    if hashlib.sha256(payload).hexdigest() != meta.get("arrays_sha256"):
        raise _corrupt(arrays_path, f"checksum does not match {name}.json (file damaged or replaced)")
    arrays = _read_arrays(arrays_path, payload)

    model = Fitted(config, vocab, {}, block_size)
    got = {k: v for k, v in arrays.items() if k.startswith("params/")}
    check_arrays(model, got, arrays_path, path)
    model.params = unflatten_params(got)
    opt_keys = sorted(k for k in arrays if k.startswith("opt/"))
    opt_leaves = [arrays[k] for k in opt_keys] if opt_keys else None
    # checked last, so that a damaged field gets the precise message above; an
    # edit that leaves a well-formed file is still refused here
    if meta["format_version"] >= 2 and meta.get("meta_sha256") != meta_digest(meta):
        raise _corrupt(path, "its fields do not match their checksum (meta_sha256): edited by hand or damaged")
    return Loaded(model, step, best, meta["training"], meta["metrics"], opt_leaves=opt_leaves)


def restore_opt_state(loaded: Loaded, template: OptState, path: str) -> OptState:
    """The optimizer state from loaded leaves, in the structure of template (optimizer.init)."""
    leaves, treedef = jax.tree_util.tree_flatten(template)
    got = loaded.opt_leaves or []
    if len(got) != len(leaves) or any(a.shape != np.shape(b) for a, b in zip(got, leaves)):
        raise _corrupt(path, "its optimizer state does not fit this model and optimizer")
    return jax.tree_util.tree_unflatten(
        treedef, [jax.numpy.asarray(a, dtype=np.asarray(b).dtype) for a, b in zip(got, leaves)]
    )


def _read_arrays(path: str, payload: bytes) -> dict[str, np.ndarray]:
    try:
        with np.load(io.BytesIO(payload), allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as err:
        raise _corrupt(path, f"unreadable arrays ({err})") from None


# ---- mixtures: mixture.json beside one ordinary checkpoint per member ----------------------


def save_mixture(
    workdir: str,
    mix: mixture.Mixture,
    loaded_members: Sequence[Loaded],
    sources: Sequence[str],
    report: Mapping[str, object],
    staged: Staged | None = None,
) -> None:
    """Each member as an ordinary checkpoint in member-<k>/, then mixture.json (the commit point)."""
    names = []
    for k, ld in enumerate(loaded_members):
        name = f"member-{k}"
        save(
            os.path.join(workdir, name),
            "model",
            ld.fitted,
            step=ld.step,
            best_dev=ld.best_dev,
            training=ld.training,
            metrics=ld.metrics,
            staged=staged,
        )
        names.append(name)
    meta = {
        "format": MIXTURE_FORMAT,
        "format_version": MIXTURE_FORMAT_VERSION,
        "members": names,
        "sources": list(sources),
        "weights": [float(w) for w in mix.weights],
        "report": report,
    }
    meta["meta_sha256"] = meta_digest(meta)  # a hand edit of the weights is refused on loading
    try:
        atomic_write(os.path.join(workdir, MIXTURE_FILE), (json.dumps(meta, indent=1) + "\n").encode(), staged)
    except OSError as err:
        raise _cannot_write(workdir, err) from None


def is_mixture(workdir: str) -> bool:
    return os.path.isfile(os.path.join(workdir, MIXTURE_FILE))


def _load_mixture(workdir: str) -> Loaded:
    """Loaded whose model is the Mixture saved in workdir."""
    path = os.path.join(workdir, MIXTURE_FILE)
    try:
        with open(path, "rb") as f:
            meta = json.loads(f.read().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise MakemoreError(f"{path}: not a readable mixture file ({err.__class__.__name__})") from None
    version = meta.get("format_version") if isinstance(meta, dict) else None
    if not (
        isinstance(meta, dict)
        and meta.get("format") == MIXTURE_FORMAT
        and not isinstance(version, bool)
        and version in MIXTURE_READABLE_VERSIONS
    ):
        raise MakemoreError(
            f"{path}: not a makemore-jax mixture file of version {' or '.join(map(str, MIXTURE_READABLE_VERSIONS))}"
        )
    names, weights = meta.get("members"), meta.get("weights")
    if not (
        isinstance(names, list)
        and isinstance(weights, list)
        and len(names) == len(weights) >= 2
        and all(
            isinstance(n, str) and n.startswith("member-") and not any(s in n for s in ("/", os.sep, os.altsep) if s)
            for n in names
        )
        and all(isinstance(w, (int, float)) and 0 < w < float("inf") for w in weights)
    ):
        raise MakemoreError(f"{path}: damaged (members and weights do not match)")
    # version 1 files were written with and without the checksum; from version 2 on it is required
    if (version >= 2 or "meta_sha256" in meta) and meta.get("meta_sha256") != meta_digest(meta):
        raise MakemoreError(f"{path}: its fields do not match their checksum (meta_sha256): edited by hand or damaged")
    loaded = [load(os.path.join(workdir, n), "model") for n in names]
    members = tuple(ld.fitted for ld in loaded if isinstance(ld.fitted, Fitted))
    if len(members) != len(loaded):
        raise MakemoreError(f"{path}: a member is itself a mixture")
    try:
        mixture.check_members(members)
    except MakemoreError as err:
        raise MakemoreError(f"{path}: {err}") from None
    w = np.asarray(weights, np.float64)
    figures = meta.get("report", {}).get("mixture", {}) if isinstance(meta.get("report"), dict) else {}
    metrics = with_perplexities({f"{s}_nll": _number_or_none(figures.get(s)) for s in SPLITS})
    first = next((k for k, m in enumerate(members) if m.model_def.fitted_here), 0)  # whose data it was fitted on
    return Loaded(
        mixture.Mixture(members, w / w.sum()),
        best_dev=metrics["dev_nll"],
        training=loaded[first].training,
        metrics=metrics,
    )


def _number_or_none(x: object) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else None

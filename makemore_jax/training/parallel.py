"""Data parallelism with JAX's own sharding: one ``data`` mesh axis over the devices of every host.

Say where each array lives and let the compiler (XLA's SPMD partitioner) insert
the communication; nothing here calls pmap or psum.

- A ``Mesh`` of D devices with one axis, ``data``. In a multi-host run
  (``initialize``, i.e. ``jax.distributed``) it spans the devices of every
  process, each process's devices side by side.
- The training words, as padded rows, are split by rows over the axis: each
  device holds about n/D of them, and each process encodes only the rows of
  its own devices. Batch indices are drawn exactly as on one device
  (``fold_in(batch key, step)`` over all n words); the rows are gathered from
  the sharded table and the batch is constrained to ``P("data")``, so every
  device computes on B/D rows of the very batch a one-device run would see.
- Parameters and optimizer state are replicated; with ``shard_params`` every
  matrix (the embedding, the head, the layers' weights) is split along its
  largest dimension that D divides, ZeRO-3 style, and gathered where it is
  used. The loss is a mean over the sharded batch, so the gradient of a
  replicated parameter is a sum over devices: the partitioner adds the
  all-reduce.
- Counting (``count_matrix``, ``count_ngram_rows``): the pairs or n-grams are
  cut into D equal parts, each device scatter-adds its part into a table of
  its own, and the D tables are summed. Integer sums in any order are the same
  sum, so the result is exactly the one-device table. A sparse n-gram table
  is counted on the host within a memory budget (``count_ngram_words``), by
  each process for its own part in a multi-host run, and the parts summed.

With one device none of this runs: ``trainer.fit`` without a ``DataParallel``
compiles the plain program, bit for bit the one it compiled before.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.experimental import multihost_utils
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from ..data.hosts import SlicedDataset, allgather, allgather_ragged
from ..data.words import Vocabulary, encode_padded
from ..errors import MakemoreError
from ..models import Params, counts, ngram
from ..models.ngram import NgramCounts
from ..models.ngram.spill import Progress
from .steps import BatchData, LossFn, OptState, run_steps

DATA_AXIS = "data"
PLATFORMS = ("cpu", "gpu", "tpu")
SIMULATE_HINT = "simulate more CPU devices with XLA_FLAGS=--xla_force_host_platform_device_count=N"


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def initialize(coordinator: str, num_processes: int, process_id: int, timeout_s: int = 300) -> None:
    """Join a multi-host run through ``jax.distributed``; call it before any JAX computation.

    coordinator is HOST:PORT of process 0, which serves there. Every process
    runs the same command with its own process_id in 0..num_processes-1.
    Raises MakemoreError for bad settings or a coordinator that cannot be reached.
    """
    host, _, port = coordinator.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise MakemoreError(f"--coordinator must be HOST:PORT, got {coordinator!r}")
    if num_processes < 1:
        raise MakemoreError(f"--num-processes must be >= 1, got {num_processes}")
    if not 0 <= process_id < num_processes:
        raise MakemoreError(f"--process-id must be in 0..{num_processes - 1}, got {process_id}")
    try:
        jax.distributed.initialize(
            coordinator,
            num_processes,
            process_id,
            cluster_detection_method="deactivate",
            initialization_timeout=timeout_s,
        )
    except (RuntimeError, ValueError) as err:  # jaxlib's XlaRuntimeError is a RuntimeError
        raise MakemoreError(
            f"cannot join {coordinator} as process {process_id} of {num_processes}: {_first_line(err)}"
        ) from None


def select_devices(platform: str | None = None, count: int | None = None) -> list[jax.Device]:
    """count devices of every process (None: all of each process's own) of a platform (None: JAX's default).

    Ordered by process, then id, so each process's devices are neighbours on
    the mesh and hold neighbouring rows of the data.
    """
    if platform is not None and platform not in PLATFORMS:
        raise MakemoreError(f"--device must be one of {', '.join(PLATFORMS)}, got {platform!r}")
    try:
        devices = jax.devices(platform) if platform else jax.devices()
    except RuntimeError as err:
        raise MakemoreError(f"--device {platform}: JAX has no {platform} device here ({_first_line(err)})") from None
    mine = [d for d in devices if d.process_index == jax.process_index()]
    kind = mine[0].platform if mine else (platform or "default")
    if count is None:
        count = len(mine)
    if count < 1:
        raise MakemoreError(f"--devices must be >= 1, got {count}")
    if count > len(mine):
        hint = f"; {SIMULATE_HINT}" if kind == "cpu" else ""
        raise MakemoreError(f"--devices {count}: this process sees only {len(mine)} {kind} device(s){hint}")
    by_process: dict[int, list[jax.Device]] = {}
    for d in sorted(devices, key=lambda d: (d.process_index, d.id)):
        by_process.setdefault(d.process_index, []).append(d)
    return [d for p in sorted(by_process) for d in by_process[p][:count]]


def _rows_of(index: tuple[slice, ...] | None, total: int, offset: int = 0) -> slice:
    """The rows a shard's index covers (its first axis: a slice over `total` rows), moved back by offset."""
    if index is None:  # jax's annotation allows it; a NamedSharding's shards always have an index
        raise ValueError("a shard without an index")
    start, stop, _ = index[0].indices(total)
    return slice(start - offset, stop - offset)


def _encode_rows(words: Sequence[str], vocab: Vocabulary, block_size: int, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """encode_padded of the words (a WordArray or a list of str), then rows - len(words) empty rows
    of length -1 (no position counts)."""
    tokens, lengths = encode_padded(words, vocab, block_size)
    pad = rows - len(lengths)
    return np.pad(tokens, ((0, pad), (0, 0))), np.pad(lengths, (0, pad), constant_values=-1)


def _put(x: jax.Array | np.ndarray, sharding: NamedSharding) -> jax.Array:
    """x (host or device, key arrays too) laid out by sharding; in a multi-host run x must agree on every process."""
    if isinstance(x, jax.Array) and x.sharding == sharding:
        return x
    if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
        return jax.random.wrap_key_data(_put(jax.random.key_data(x), sharding), impl=jax.random.key_impl(x))
    host = np.asarray(x)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: np.asarray(host[index]))


@dataclass(frozen=True)
class DataParallel:
    """Where training runs: a one-axis mesh (``data``) over the devices; shard_params splits the matrices too."""

    mesh: Mesh
    shard_params: bool = False

    @classmethod
    def over(cls, devices: Sequence[jax.Device], shard_params: bool = False) -> DataParallel:
        """A mesh over these devices (see select_devices), the batch axis named ``data``."""
        grid = np.empty(len(devices), dtype=object)
        grid[:] = list(devices)
        return cls(Mesh(grid, (DATA_AXIS,), axis_types=(AxisType.Auto,)), shard_params)

    @property
    def size(self) -> int:
        """D, the devices on the mesh (of every process)."""
        return int(self.mesh.devices.size)

    def sharding(self, *spec: str | None) -> NamedSharding:
        """NamedSharding on the mesh: () is replicated, (DATA_AXIS,) splits the first dimension."""
        return NamedSharding(self.mesh, PartitionSpec(*spec))

    def check_batch(self, batch_size: int) -> None:
        """MakemoreError unless a batch of batch_size words (0: all of them) splits evenly over the devices."""
        if batch_size and batch_size % self.size:
            raise MakemoreError(
                f"batch size {batch_size} does not divide among {self.size} devices: "
                f"use a multiple of {self.size}, or fewer --devices"
            )

    # ---- parameters and optimizer state ------------------------------------------

    def param_sharding(self, x: jax.Array | np.ndarray) -> NamedSharding:
        """Replicated; with shard_params a matrix is split along its largest dimension that D divides."""
        shape = tuple(np.shape(x))
        if self.shard_params and len(shape) >= 2:
            for dim in sorted(range(len(shape)), key=lambda i: -shape[i]):
                if shape[dim] % self.size == 0:
                    spec: list[str | None] = [None] * len(shape)
                    spec[dim] = DATA_AXIS
                    return self.sharding(*spec)
        return self.sharding()

    def place_state(self, params: Params, opt_state: OptState) -> tuple[Params, OptState]:
        """Parameters and optimizer state on the mesh; a moment gets its parameter's layout (same shape, same rule)."""
        place = partial(jax.tree.map, lambda x: _put(x, self.param_sharding(x)))
        return place(params), place(opt_state)

    def readable(self, tree: Params) -> Params:
        """The tree as the rest of the package may read it (save, evaluate, sample).

        One process: unchanged, every array is addressable. Several: numpy
        copies of the global values (a collective: every process calls it).
        """
        if jax.process_count() == 1:
            return tree

        def host(x):
            if x.is_fully_addressable or x.is_fully_replicated:
                return np.asarray(x)
            return multihost_utils.process_allgather(x, tiled=True)

        return jax.tree.map(host, tree)

    # ---- the training data ---------------------------------------------------------

    def shard_rows(self, words: Sequence[str], vocab: Vocabulary, block_size: int) -> tuple[jax.Array, jax.Array]:
        """The words as padded rows split over the data axis: tokens (R, block_size + 1), lengths (R,).

        R is len(words) rounded up to a multiple of D; the extra rows have
        length -1, so no position of theirs counts. This process encodes only
        the rows its own devices hold.
        """
        n = len(words)
        total = -(-n // self.size) * self.size
        by_rows, by_row = self.sharding(DATA_AXIS, None), self.sharding(DATA_AXIS)
        shape = (total, block_size + 1)
        spans = [_rows_of(index, total) for index in by_rows.addressable_devices_indices_map(shape).values()]
        lo, hi = min(s.start for s in spans), max(s.stop for s in spans)
        tokens, lengths = _encode_rows(words[lo : min(hi, n)], vocab, block_size, hi - lo)
        return (
            jax.make_array_from_callback(shape, by_rows, lambda index: tokens[_rows_of(index, total, lo)]),
            jax.make_array_from_callback((total,), by_row, lambda index: lengths[_rows_of(index, total, lo)]),
        )

    def local_devices(self) -> list[jax.Device]:
        """This process's devices on the mesh, in mesh order."""
        return [d for d in self.mesh.devices.flat if d.process_index == jax.process_index()]

    def hold_rows(self, data: SlicedDataset, block_size: int) -> tuple[jax.Array, jax.Array]:
        """A multi-host run's training rows where they were parsed: tokens (P·m, block_size + 1), lengths (P·m,).

        data is this process's data.hosts.SlicedDataset: its training words go,
        in row order, to rows p·m … of the table (m = data.held_per_process),
        which are its own devices' rows; the rest of its block has length -1.
        data.row_of maps a training row to its row here.
        """
        m = data.held_per_process
        tokens, lengths = _encode_rows(data.words["train"], data.vocab, block_size, m)
        rows = jax.process_count() * m
        return (
            jax.make_array_from_process_local_data(self.sharding(DATA_AXIS, None), tokens, (rows, block_size + 1)),
            jax.make_array_from_process_local_data(self.sharding(DATA_AXIS), lengths, (rows,)),
        )

    def place_batch(self, tokens_BxL: jax.Array, lengths_B: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Inside the step: the drawn batch split by rows over the devices."""
        constrain = jax.lax.with_sharding_constraint
        return constrain(tokens_BxL, self.sharding(DATA_AXIS, None)), constrain(lengths_B, self.sharding(DATA_AXIS))

    def place_inputs(self, batch_data: BatchData) -> BatchData:
        """The step's other inputs (keys, a count table) replicated; arrays already on the mesh stay as they are."""
        return jax.tree.map(lambda x: _put(x, x.sharding if _on_mesh(x, self.mesh) else self.sharding()), batch_data)

    def compile_steps(
        self,
        loss_fn: LossFn,
        optimizer: optax.GradientTransformation,
        params: Params,
        opt_state: OptState,
        batch_data: BatchData,
        num_steps: int,
        unroll: int = 1,
    ) -> jax.stages.Compiled:
        """``steps.run_steps`` compiled over the mesh for these inputs' layouts.

        Called as (params, opt_state, batch_data, first_step): params and
        optimizer state come back laid out as they went in, the losses replicated.
        """
        layout = partial(jax.tree.map, lambda x: x.sharding)
        p_s, o_s, b_s = layout(params), layout(opt_state), layout(batch_data)
        replicated = self.sharding()
        steps = jax.jit(
            lambda p, o, b, first: run_steps(loss_fn, optimizer, p, o, b, first, num_steps, unroll),
            in_shardings=(p_s, o_s, b_s, replicated),
            out_shardings=(p_s, o_s, replicated),
        )
        return steps.lower(params, opt_state, batch_data, 0).compile()


def _on_mesh(x: object, mesh: Mesh) -> bool:
    return isinstance(x, jax.Array) and isinstance(x.sharding, NamedSharding) and x.sharding.mesh == mesh


# ---- counting over a sharded set of pairs ------------------------------------------------


@partial(jax.jit, static_argnames=("cells", "parts", "whole"))
def _summed_tables(flat_DxM: jax.Array, cells: int, parts: NamedSharding, whole: NamedSharding) -> jax.Array:
    """Row d of flat_DxM scatter-added into table d (on device d), then the D tables summed."""
    flat_DxM = jax.lax.with_sharding_constraint(flat_DxM, parts)
    # index `cells` (the padding) is out of range: mode="drop" leaves it out
    tables_DxC = jax.vmap(lambda flat_M: jnp.zeros((cells,), jnp.int32).at[flat_M].add(1, mode="drop"))(flat_DxM)
    tables_DxC = jax.lax.with_sharding_constraint(tables_DxC, parts)
    return jax.lax.with_sharding_constraint(tables_DxC.sum(axis=0), whole)


def count_flat(flat_P: np.ndarray, cells: int, parallel: DataParallel, process_local: bool = False) -> jax.Array:
    """How often each flat index 0..cells-1 occurs, int32 (cells,), each device counting its share of them.

    flat_P is the same on every process (each then counts 1/P of it), or with
    process_local each process's own indices (a multi-host run where each
    process parsed its part of the input): the table counts them all.
    """
    flat_P = np.asarray(flat_P, np.int64)
    if flat_P.size and (flat_P.min() < 0 or flat_P.max() >= cells):
        raise MakemoreError(f"ids out of range: flat indices must lie in [0, {cells})")
    processes = jax.process_count()
    if processes > 1 and not process_local:
        flat_P = np.array_split(flat_P, processes)[jax.process_index()]
    mine = len(parallel.local_devices())
    most = flat_P.size
    if processes > 1:
        most = int(allgather(np.int64(flat_P.size)).max())
    per_device = max(-(-most // mine), 1)
    local_dxM = np.full((mine * per_device,), cells, np.int32)
    local_dxM[: flat_P.size] = flat_P
    parts = parallel.sharding(DATA_AXIS, None)
    placed = jax.make_array_from_process_local_data(
        parts, local_dxM.reshape(mine, per_device), (parallel.size, per_device)
    )
    return _summed_tables(placed, cells, parts, parallel.sharding())


def count_matrix(
    xs: np.ndarray, ys: np.ndarray, vocab_size: int, parallel: DataParallel | None = None, process_local: bool = False
) -> jax.Array:
    """counts.count_matrix (N[i, j] = how often j follows i, int32 V×V), counted over the devices.

    Without parallel (or with one device) it is counts.count_matrix itself.
    process_local: see count_flat.
    """
    if parallel is None or parallel.size == 1:
        return counts.count_matrix(jnp.asarray(xs), jnp.asarray(ys), vocab_size)
    flat = np.asarray(xs, np.int64) * vocab_size + np.asarray(ys, np.int64)
    return count_flat(flat, vocab_size * vocab_size, parallel, process_local).reshape(vocab_size, vocab_size)


def count_ngram_words(
    words: Sequence[str],
    vocab: Vocabulary,
    order: int,
    memory: int,
    parallel: DataParallel | None = None,
    process_local: bool = False,
    temp_dir: str | None = None,
    progress: Progress | None = None,
) -> NgramCounts:
    """The n-grams of the words counted as count_ngram_rows counts their rows: the same NgramCounts.

    Where a process counts on its host (one device, or a sparse table) it
    counts within `memory` bytes, spilling to temp_dir past them
    (ngram.count_words); with process_local every process so counts its own
    words and the distinct n-grams with their counts are gathered and summed.
    A dense table over several devices is counted sharded, from the rows.
    """
    V = vocab.size
    if parallel is not None and parallel.size > 1 and ngram.dense_fits(V, order):
        return count_ngram_rows(ngram.words_to_ngrams(words, vocab, order), V, parallel, process_local)
    mine = ngram.count_words(words, vocab, order, memory, temp_dir, progress)
    if parallel is None or not process_local or jax.process_count() == 1:
        return mine
    rows = np.concatenate(allgather_ragged(mine.ngrams))
    weights = np.concatenate(allgather_ragged(mine.counts))
    return ngram.count_weighted_rows(rows, weights, V, "sparse")


def count_ngram_rows(
    ngrams_PxN: np.ndarray, vocab_size: int, parallel: DataParallel | None = None, process_local: bool = False
) -> NgramCounts:
    """ngram.count_ngram_rows counted over the devices: the same NgramCounts.

    Dense tables (V^N within ngram.DENSE_MAX_CELLS) are counted sharded;
    a sparse table is counted on one device, as ngram does it. With
    process_local (each process passes the rows of its own part of the
    input) a sparse table is counted by each process and the distinct
    n-grams with their counts are gathered and summed.
    """
    ngrams_PxN = np.asarray(ngrams_PxN, np.int32)
    order = ngrams_PxN.shape[1]
    if parallel is None or parallel.size == 1:
        return ngram.count_ngram_rows(ngrams_PxN, vocab_size)
    if not ngram.dense_fits(vocab_size, order):
        mine = ngram.count_ngram_rows(ngrams_PxN, vocab_size)
        if not process_local or jax.process_count() == 1:
            return mine
        rows = np.concatenate(allgather_ragged(mine.ngrams))
        weights = np.concatenate(allgather_ragged(mine.counts))
        return ngram.count_weighted_rows(rows, weights, vocab_size, "sparse")
    # ngram.flat_index's order: column j weighs V^j, so increasing index is suffix order
    flat = (ngrams_PxN.astype(np.int64) * vocab_size ** np.arange(order, dtype=np.int64)).sum(axis=1)
    table = count_flat(flat, vocab_size**order, parallel, process_local)
    return ngram.counts_from_table(np.asarray(table), order, vocab_size)

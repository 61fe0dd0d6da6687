import atexit
import os
import shutil
import sys
import tempfile

# One disk cache of compiled programs for the whole session, this process and the makemore
# processes the tests start (they inherit the environment): many tests compile the same small
# programs, and from the cache each later compile is a file read. The results are those of a
# fresh compile (the same executable). Set before JAX is imported; removed at exit.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _cache = tempfile.mkdtemp(prefix="makemore-tests-jax-cache-")
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)
    os.environ.update(
        JAX_COMPILATION_CACHE_DIR=_cache,
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
        JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0",
    )
    if "jax" in sys.modules:  # imported already (by a plugin): too late for the environment
        sys.modules["jax"].config.update("jax_compilation_cache_dir", _cache)
        sys.modules["jax"].config.update("jax_persistent_cache_min_compile_time_secs", 0)
        sys.modules["jax"].config.update("jax_persistent_cache_min_entry_size_bytes", 0)

# Compile for a short compile, not for the fastest code: the suite compiles about two thousand
# small programs and runs each for milliseconds, and LLVM's optimisation of the generated code is
# most of every compile (measured: 30-40% of the suite's time). The programs are the same HLO,
# fused the same way; what LLVM makes of each fusion is only less optimised. Processes the
# tests start inherit it (the multi-device tests add their device flag to it).
# MAKEMORE_TEST_XLA_FLAGS="" runs the suite as users compile (it passes so too).
TEST_XLA_FLAGS = os.environ.get(
    "MAKEMORE_TEST_XLA_FLAGS", "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
)
if TEST_XLA_FLAGS and TEST_XLA_FLAGS not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {TEST_XLA_FLAGS}".strip()

import pytest  # noqa: E402

from makemore_jax.data import words as data  # noqa: E402
from makemore_jax.models.counts import count_matrix  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def _free_compiled_programs():
    """After each test module, drop the programs JAX keeps compiled in this process.

    Every compiled program holds memory mappings of its machine code, and one
    process may hold at most vm.max_map_count of them (65,530 by default on
    Linux): the whole suite in one process compiles enough programs to pass it,
    and XLA then crashes while compiling the next one. A later module that needs
    a program again reads it from the session's disk cache above.
    """
    yield
    if "jax" in sys.modules:
        import gc

        sys.modules["jax"].clear_caches()
        gc.collect()


def run_inprocess(capsys, *args):
    """Run `makemore ARGS` in this process; (exit code, stdout, stderr)."""
    from makemore_jax.cli.commands import main

    try:
        code = main(list(args))
    except SystemExit as exit:
        code = exit.code
    out, err = capsys.readouterr()
    return code, out, err


def snapshot(d):
    """Every file of a directory, name -> bytes."""
    return {name: open(os.path.join(d, name), "rb").read() for name in sorted(os.listdir(d))}


def fit_words(words, cfg, parallel=None):
    """Split the words with cfg.seed, build the model and train it to its last step: (model, state or None, data).

    The trainer's pieces without a run around them (the tests of the trainer compare final states)."""
    from makemore_jax.data.words import Dataset
    from makemore_jax.seeding import seed_key
    from makemore_jax.training.sizes import check_fits
    from makemore_jax.training.trainer import fit, new_model

    data = Dataset.build(words, seed_key(cfg.seed, "split"), cfg.split)
    check_fits(cfg, data, parallel)
    model = new_model(cfg, data, parallel)
    state = None if model.model_def.counted else fit(model, data, None, parallel=parallel)
    return model, state, data


TINY = {"n_layer": 1, "n_head": 2, "n_embd": 8, "n_embd2": 16, "batch_size": 8, "eval_every": 10, "log_every": 10}


def tiny_settings(kind: str, **more) -> dict:
    """Small sizes and frequent evaluations for a model type: those of TINY (and more) that the type takes."""
    from makemore_jax.models import get_model
    from makemore_jax.training.config import takes

    model_def = get_model(kind)
    return {k: v for k, v in {**TINY, **more}.items() if takes(model_def, k)}


def tiny_flags(kind: str, **more) -> list:
    """tiny_settings as command-line flags."""
    flags = []
    for name, value in tiny_settings(kind, **more).items():
        flags += [f"--{name.replace('_', '-')}", str(value)]
    return flags


def first_names(tmp_path_factory, n: int) -> str:
    """A file of the first n names of names.txt, for tests that train small models quickly."""
    path = tmp_path_factory.mktemp("data") / "small.txt"
    with open(NAMES) as f:
        path.write_text("".join(f.readline() for _ in range(n)))
    return str(path)


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAMES = os.path.join(ROOT, "names.txt")


@pytest.fixture(scope="session")
def names():
    return data.read_words(NAMES)


@pytest.fixture(scope="session")
def vocab(names):
    return data.Vocabulary.from_words(names)


@pytest.fixture(scope="session")
def pairs(names, vocab):
    return data.bigram_pairs(names, vocab)


@pytest.fixture(scope="session")
def counts(pairs, vocab):
    xs, ys = pairs
    return count_matrix(xs, ys, vocab.size)


# Under pytest-xdist each module runs on one worker, modules handed out in the order collected:
# the longest (by --durations) go first, so that no worker is left running one alone at the end.
SLOW_MODULES_FIRST = ("test_benchmarks.py", "test_training_parallel.py", "test_sampling.py", "test_cli_faults.py")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(SLOW_MODULES_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order

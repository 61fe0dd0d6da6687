"""safetensors files of a model: exact round trips, readable by the safetensors package, damage refused."""

import json
import struct

import numpy as np
import pytest
from safetensors.numpy import load as st_load  # the reference reader (the test extra has it)
from safetensors.numpy import save as st_save

import makemore_jax
from makemore_jax.errors import MakemoreError
from makemore_jax.store import checkpoint, makemore, safetensors

from conftest import first_names, tiny_settings


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return first_names(tmp_path_factory, 300)


@pytest.fixture(scope="module")
def models(small):
    """Counted models, and neural ones as initialised (a round trip of the arrays needs no training)."""
    from makemore_jax.data.words import Dataset, read_words
    from makemore_jax.seeding import seed_key
    from makemore_jax.training.config import settings_for
    from makemore_jax.training.trainer import new_model

    out = {kind: makemore_jax.train(small, type=kind) for kind in ("counts", "ngram")}
    for kind in ("bigram", "lstm", "transformer"):
        cfg = settings_for(kind, tiny_settings(kind))
        data = Dataset.build(read_words(small), seed_key(cfg.seed, "split"), cfg.split)
        out[kind] = makemore_jax.api.Model(new_model(cfg, data))
    return out


@pytest.mark.parametrize("kind", ["counts", "ngram", "bigram", "lstm", "transformer"])
def test_a_round_trip_is_exact_and_the_reference_reader_agrees(models, kind):
    model = models[kind].fitted
    raw = safetensors.model_bytes(model)
    back = safetensors.model_from_bytes(raw, "m.safetensors")
    assert back.config == model.config and back.vocab == model.vocab and back.block_size == model.block_size
    ours, theirs = checkpoint.flatten_params(model.params), checkpoint.flatten_params(back.params)
    assert ours.keys() == theirs.keys()
    for key in ours:
        assert ours[key].dtype == theirs[key].dtype
        np.testing.assert_array_equal(ours[key], theirs[key])
    reference = st_load(raw)
    if kind in makemore.TYPES:  # under makemore.py's names, in torch's layout: its state_dict
        expected = makemore.to_state_dict(model)
    else:
        expected = {k[len("params/") :].replace("/", "."): v for k, v in ours.items()}
    assert reference.keys() == expected.keys()
    for name, array in reference.items():
        np.testing.assert_array_equal(array, expected[name])
    if kind in ("counts", "bigram"):  # the arrays and settings above make the same model; once end to end
        assert makemore_jax.api.Model(back).sample(5, seed=2) == models[kind].sample(5, seed=2)


def test_a_file_the_reference_writer_wrote_is_read(models):
    for kind in ("bigram", "lstm"):
        model = models[kind].fitted
        arrays, meta = safetensors.decode(safetensors.model_bytes(model))
        back = safetensors.model_from_bytes(st_save(arrays, metadata=meta), "ref.safetensors")
        for key, value in checkpoint.flatten_params(model.params).items():
            np.testing.assert_array_equal(checkpoint.flatten_params(back.params)[key], value)


def test_damaged_or_foreign_files_are_refused_in_one_line(models):
    raw = safetensors.model_bytes(models["bigram"].fitted)
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    cases = [
        (raw[:5], "shorter than its 8-byte header length"),
        (struct.pack("<Q", 10**9) + raw[8:], "runs past the file"),
        (raw[:8] + b"x" + raw[9 : 8 + n] + raw[8 + n :], "its header is not JSON"),
        (raw[:-4], "do not hold a F32"),
        (st_save({"W": np.zeros((3, 3), np.float32)}), "not a makemore-jax model"),
    ]
    header["logits"]["shape"] = [3, 3]
    text = json.dumps(header).encode()
    cases.append((struct.pack("<Q", len(text)) + text + raw[8 + n :], "do not hold a F32[3, 3]"))
    meta = dict(header["__metadata__"])
    wrong = st_save({"logits": np.zeros((5, 5), np.float32)}, metadata=meta)
    V = models["bigram"].vocab.size
    cases.append((wrong, f"logits is (5, 5), expected ({V}, {V})"))
    own = st_save({"W": np.zeros((5, 5), np.float32)}, metadata={**meta, "names": "makemore-jax"})
    cases.append((own, f"W is float32[5, 5], expected float32[{V}, {V}]"))
    for data, message in cases:
        with pytest.raises(MakemoreError) as err:
            safetensors.model_from_bytes(data, "m.safetensors")
        assert message in str(err.value) and "\n" not in str(err.value), (message, err.value)
    with pytest.raises(MakemoreError, match="a mixture is not one set of weights"):
        from makemore_jax.models.mixture import Mixture

        safetensors.model_bytes(Mixture((models["counts"].fitted, models["bigram"].fitted), np.array([0.5, 0.5])))


def test_export_then_import_gives_a_work_directory_that_samples_and_scores_the_same(tmp_path, capsys, small):
    from conftest import run_inprocess

    a, b, f = str(tmp_path / "a"), str(tmp_path / "b"), str(tmp_path / "m.safetensors")
    makemore_jax.train(small, workdir=a, type="mlp", **tiny_settings("mlp", steps=10))
    code, out, err = run_inprocess(capsys, "export", "-o", a, "--format", "safetensors", f)
    assert code == 0 and out.startswith(f"wrote {f}: safetensors, mlp"), err
    code, out, err = run_inprocess(capsys, "import", "--format", "safetensors", "-o", b, f)
    assert code == 0 and out == f"read {f}: mlp; saved to {b}/\n", err
    for command in (["sample", "-n", "8", "--seed", "4", "--no-report"], ["eval", "-i", small]):
        assert (
            run_inprocess(capsys, command[0], "-o", a, *command[1:])[1]
            == run_inprocess(capsys, command[0], "-o", b, *command[1:])[1]
        )
    model = makemore_jax.import_model(f, format="safetensors")
    assert model.sample(3, seed=1) == makemore_jax.load(a).sample(3, seed=1)
    code, _, err = run_inprocess(capsys, "import", "--format", "safetensors", "-o", str(tmp_path / "c"), small)
    assert code == 2 and "is not a safetensors file" in err and not (tmp_path / "c").exists()

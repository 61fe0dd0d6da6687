"""The lecture notebooks (notebooks/, docs/notebooks.md), executed top to bottom as committed.

Each runs in a fresh kernel, its working directory a temporary folder: any
error or failed assertion in a cell fails the test. Its key figures are the
lines of the form ``label: value`` its cells print (each also asserted in its
cell); a fresh run must print exactly the lines the committed outputs show, so
a notebook whose code changed without being re-run, or whose figures moved,
fails. Every notebook shows its figures inline, in the committed file and in
the fresh run.

Each notebook is a test class of its own, so that pytest-xdist (which hands
out a module's functions or a class's methods as one unit) runs them on
whichever worker is free.
"""

import copy
import os
import re

import nbclient  # the test extra installs nbclient, nbformat and ipykernel
import nbformat

from conftest import TEST_XLA_FLAGS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = os.path.join(ROOT, "notebooks")
KEY_LINE = re.compile(r"^[A-Za-z(|][^:\n]{0,80}: (True|False|[-+]?\d[\d,]*(\.\d+)?(e[-+]?\d+)?%?)$")
CELL_TIMEOUT = 300  # seconds for one cell


def key_lines(notebook) -> list[str]:
    """The 'label: value' lines the notebook's code cells print, in order."""
    lines = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            if output.get("output_type") == "stream" and output.get("name") == "stdout":
                lines += [line for line in output["text"].splitlines() if KEY_LINE.match(line)]
    return lines


def images(notebook) -> int:
    """How many inline PNG figures the outputs hold."""
    return sum(
        "image/png" in output.get("data", {})
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    )


def errors(notebook) -> list[str]:
    return [
        f"{o.get('ename')}: {o.get('evalue')}"
        for cell in notebook.cells
        if cell.cell_type == "code"
        for o in cell.get("outputs", [])
        if o.get("output_type") == "error"
    ]


def user_environment() -> dict:
    """This process's environment without what conftest sets for the suite's own programs (the compile flags
    and the disk cache): the kernel compiles as a user's does, so its figures are those a reader gets (and
    its long training loops run optimised code)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_COMPILATION_CACHE", "JAX_PERSISTENT_CACHE"))}
    flags = env.get("XLA_FLAGS", "").replace(TEST_XLA_FLAGS, "").strip() if TEST_XLA_FLAGS else env.get("XLA_FLAGS")
    if flags:
        env["XLA_FLAGS"] = flags
    else:
        env.pop("XLA_FLAGS", None)
    return env


def check_notebook(name: str, tmp_path) -> None:
    committed = nbformat.read(os.path.join(NOTEBOOKS, name), as_version=4)
    expected = key_lines(committed)
    assert len(expected) >= 4, f"{name}: its committed outputs print too few key figures ({expected})"
    assert images(committed) >= 1, f"{name}: its committed outputs show no figure"
    assert errors(committed) == [], f"{name}: committed with an error in its outputs"
    fresh = copy.deepcopy(committed)
    client = nbclient.NotebookClient(
        fresh, timeout=CELL_TIMEOUT, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute(env=user_environment())  # CellExecutionError on any error or failed assertion
    assert key_lines(fresh) == expected, f"{name}: a fresh run prints other key figures than the committed outputs"
    assert images(fresh) == images(committed)
    assert os.listdir(tmp_path) == [], f"{name}: wrote files into its working directory"


def _class_for(name: str) -> type:
    def test_runs_as_committed(self, tmp_path):
        check_notebook(name, tmp_path)

    return type(f"TestNotebook_{name.split('.')[0]}", (), {"test_runs_as_committed": test_runs_as_committed})


NAMES = sorted(f for f in os.listdir(NOTEBOOKS) if f.endswith(".ipynb")) if os.path.isdir(NOTEBOOKS) else []
for _name in NAMES:
    globals()[_class_for(_name).__name__] = _class_for(_name)


def test_every_lecture_has_its_notebook():
    lectures = ["01_bigram", "02_mlp", "03_activations_batchnorm", "04_backprop_by_hand", "05_wavenet"]
    assert [n.split(".")[0] for n in NAMES] == lectures

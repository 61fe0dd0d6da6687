"""The README's example and commands are the ones that actually work."""

import ast
import math
import os
import re
import subprocess
import sys

from conftest import ROOT, run_inprocess

README = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()


def blocks(lang):
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def test_python_example_prints_what_the_readme_says():
    code = next(b for b in blocks("python") if "count_matrix" in b)
    expected = next(b for b in blocks("text") if b.startswith("counting model NLL"))
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": ROOT},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == expected


def test_ci_runs_the_readme_test_command():
    test_command = blocks("bash")[1].strip()
    ci = open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8").read()
    assert "pytest" in test_command
    assert test_command in ci


def test_python_api_example_runs(tmp_path):
    code = next(b for b in blocks("python") if "makemore_jax.train(" in b)
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": ROOT},
    )
    assert out.returncode == 0, out.stderr
    nll_line, names_line, logp_line = out.stdout.splitlines()
    nll, ppl = (float(x) for x in re.findall(r"\d+\.\d+", nll_line))
    assert nll_line.startswith("test NLL ") and abs(ppl - math.exp(nll)) < 0.01
    names = ast.literal_eval(names_line)
    assert len(names) == len(set(names)) == 5 and all(n.startswith("ka") and len(n) >= 5 for n in names)
    assert all(n not in open(os.path.join(ROOT, "names.txt")).read().split() for n in names)
    assert len(logp_line.strip("[]").split()) == 2
    assert os.path.exists(tmp_path / "ng5" / "model.json")


def test_the_scripted_run_of_docs_python_runs_and_matches_the_command(tmp_path, monkeypatch, capsys):
    page = open(os.path.join(ROOT, "docs", "python.md"), encoding="utf-8").read()
    code = next(b for b in re.findall(r"```python\n(.*?)```", page, flags=re.S) if "resume=True" in b)
    monkeypatch.chdir(tmp_path)  # in this process: its compiled programs serve the command below too
    exec(compile(code, "docs/python.md", "exec"), {"__name__": "docs_python"})
    *evaluations, best, names = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in evaluations] == ["step 100", "step 200", "step 300"]
    assert re.fullmatch(r"best by dev: step (100|200|300), test NLL \d\.\d{4}", best)
    code, out, err = run_inprocess(capsys, "sample", "-o", "run", "-n", "5", "--seed", "1", "--no-report")
    assert code == 0, err
    assert ast.literal_eval(names) == out.splitlines()


def test_the_export_example_of_docs_python_round_trips(tmp_path, monkeypatch, capsys):
    page = open(os.path.join(ROOT, "docs", "python.md"), encoding="utf-8").read()
    code = next(b for b in re.findall(r"```python\n(.*?)```", page, flags=re.S) if "import_model" in b)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "docs/python.md", "exec"), {"__name__": "docs_python"})
    wrote, same = capsys.readouterr().out.splitlines()
    assert wrote.startswith("safetensors, bigram") and same == "True True"
    assert (tmp_path / "imported" / "model.json").exists()

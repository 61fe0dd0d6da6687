"""The README's example and commands are the ones that actually work."""

import os
import re
import subprocess
import sys

from conftest import ROOT

README = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()


def blocks(lang):
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def test_python_example_prints_what_the_readme_says():
    code = blocks("python")[0]
    expected = next(b for b in blocks("text") if b.startswith("counting model NLL"))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": ROOT})
    assert out.returncode == 0, out.stderr
    assert out.stdout == expected


def test_ci_runs_the_readme_test_command():
    test_command = blocks("bash")[1].strip()
    ci = open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8").read()
    assert "pytest" in test_command
    assert test_command in ci

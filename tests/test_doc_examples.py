"""Every Python example of README.md and docs/*.md runs.

The fenced ```python blocks are read from the Markdown itself (never copied
here) and each runs in a fresh Python process, with this checkout first on
PYTHONPATH. Conventions:

- all blocks run in one temporary working directory, README.md first, then
  the docs pages in alphabetical order, each page top to bottom, so a block
  may use what an earlier one wrote (`runs/demo`, made by the README, is
  predicted from and served in prediction.md and serving.md);
- a block whose first line is a comment naming a Python file
  (`# my_sensors.py ...`) is that module: it is written to the file, and the
  blocks after it import it;
- a block right after a `<!-- no-test: REASON -->` line is a fragment that
  cannot run here (REASON says why, e.g. it downloads weights); keep these
  rare.

The examples keep themselves small (few epochs, `max_steps_per_epoch`); no
environment variable shrinks them behind the reader's back.
"""

import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
NO_TEST = re.compile(r"<!--\s*no-test:\s*(\S.*?)\s*-->")
MODULE_LINE = re.compile(r"#\s*([A-Za-z_][A-Za-z0-9_]*\.py)\b")
MAX_SKIPPED = 2


def pages():
    """README.md, then docs/*.md in alphabetical order."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def python_blocks(path):
    """(line number, code, no-test reason or None) of each ```python block."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        if lines[i].strip() == "```python":
            start, body = i + 1, []
            i += 1
            while i < len(lines) and lines[i].strip() != "```":
                body.append(lines[i])
                i += 1
            previous = next((line for line in reversed(lines[:start - 1]) if line.strip()), "")
            match = NO_TEST.search(previous)
            blocks.append((start, "\n".join(body) + "\n", match.group(1) if match else None))
        i += 1
    return blocks


def test_blocks_are_found_and_skips_are_rare_and_justified():
    found = [(p.name, b) for p in pages() for b in python_blocks(p)]
    assert len(found) >= 8
    skipped = [(name, line, reason) for name, (line, _, reason) in found if reason]
    assert len(skipped) <= MAX_SKIPPED, skipped
    # a bare `<!-- no-test -->` (no reason) does not skip: it is an error
    for path in pages():
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"<!--\s*no-test\s*-->", text), f"{path.name}: give a reason"


@pytest.mark.slow
def test_every_python_example_runs(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               TF_CPP_MIN_LOG_LEVEL="2")
    failures = []
    for path in pages():
        for line, code, reason in python_blocks(path):
            where = f"{path.relative_to(ROOT)}:{line}"
            if reason:
                continue
            first = code.lstrip().splitlines()[0] if code.strip() else ""
            module = MODULE_LINE.match(first)
            if module:
                (tmp_path / module.group(1)).write_text(code, encoding="utf-8")
                continue
            proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                                  capture_output=True, text=True, timeout=900)
            if proc.returncode != 0:
                failures.append(f"{where}: exit {proc.returncode}\n{proc.stderr[-2000:]}")
    assert not failures, "\n\n".join(failures)

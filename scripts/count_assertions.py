"""Counts the checks in the test suite, so a faster suite can show it kept them.

    python scripts/count_assertions.py [tests]

A check is an `assert` statement or a call that fails a test by itself:
`pytest.raises(...)`, `pytest.warns(...)` and `np.testing.assert_*(...)`.
Prints one JSON line: the totals and the count per file.
"""

import ast
import json
import os
import sys

FAILING_CALLS = ("raises", "warns")


def _is_check_call(node):
    if not isinstance(node, ast.Call):
        return False
    name = node.func
    if isinstance(name, ast.Attribute):
        if name.attr in FAILING_CALLS and isinstance(name.value, ast.Name) \
                and name.value.id == "pytest":
            return True
        return name.attr.startswith("assert_")  # np.testing.assert_allclose, ...
    return False


def count(path):
    """(assert statements, failing calls) in one Python file."""
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    asserts = sum(isinstance(n, ast.Assert) for n in ast.walk(tree))
    calls = sum(_is_check_call(n) for n in ast.walk(tree))
    return asserts, calls


def main(root="tests"):
    per_file, asserts, calls = {}, 0, 0
    for folder, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                a, c = count(path)
                per_file[path] = a + c
                asserts, calls = asserts + a, calls + c
    print(json.dumps({"assert_statements": asserts, "check_calls": calls,
                      "total": asserts + calls, "files": per_file}))


if __name__ == "__main__":
    main(*sys.argv[1:])

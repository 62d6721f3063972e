"""The README as a front door, and the documentation site's sources.

`mkdocs build --strict` itself runs in .ci/run; these fast checks catch the
common breakages earlier: a nav entry without its page, a subcommand or a
public name missing from the generated references, a README that grew back.
"""

import importlib.util
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _hook():
    spec = importlib.util.spec_from_file_location("docs_hook",
                                                  ROOT / "docs" / "hooks" / "reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_is_short_and_starts_with_the_two_commands():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 220
    commands = [line.strip() for line in lines[:15] if line.startswith("    ")]
    assert commands == ["pip install -e . && ssnas run", "bash .ci/run"]


def test_readme_links_and_nav_pages_exist():
    yaml = pytest.importorskip("yaml")
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))

    def pages(entry):
        if isinstance(entry, str):
            yield entry
        elif isinstance(entry, dict):
            for value in entry.values():
                yield from pages(value)
        else:
            for item in entry:
                yield from pages(item)

    for page in pages(config["nav"]):
        assert (ROOT / "docs" / page).is_file(), page
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for target in re.findall(r"\]\(((?:docs/)[^)#]*)", readme):
        assert (ROOT / target).exists(), target


def test_cli_reference_has_every_subcommand():
    from ssnas_tf.cli import build_parser
    text = _hook().cli_reference()
    for name in _hook()._subparsers(build_parser()):
        assert f"## `ssnas {name}`" in text, name
    assert "## `ssnas predict`" in text and "--on-bad-rows" in text


def test_api_reference_has_every_public_name():
    import ssnas_tf
    text = _hook().api_reference()
    for name, module in ssnas_tf._EXPORTS.items():
        assert f"::: {module}.{name}\n" in text, name

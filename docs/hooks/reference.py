"""mkdocs hook: the CLI and API reference pages, generated at build time.

`cli.md` holds the marker `<!-- cli-reference -->`: it is replaced by the
`--help` text of `ssnas` and of each of its subcommands, rendered from the
argparse parser itself (`ssnas_tf.cli.build_parser`), so the page cannot drift
from the code. `api.md` holds `<!-- api-reference -->`: it is replaced by one
mkdocstrings `:::` entry per public name of `ssnas_tf._EXPORTS`, so every name
`import ssnas_tf` offers is documented from its docstring (a name without one
fails `mkdocs build --strict`).
"""

import argparse
import logging
import re
import os

CLI_MARKER = "<!-- cli-reference -->"
API_MARKER = "<!-- api-reference -->"
HELP_COLUMNS = "88"


def _subparsers(parser):
    for action in parser._actions:  # pylint: disable=protected-access
        if isinstance(action, argparse._SubParsersAction):  # pylint: disable=protected-access
            return action.choices
    return {}


def cli_reference():
    """Markdown: `ssnas --help`, then one section per subcommand."""
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = HELP_COLUMNS  # argparse wraps at the terminal width
    try:
        from ssnas_tf.cli import build_parser
        parser = build_parser()
        parts = ["## `ssnas`", "", "```text", parser.format_help().rstrip(), "```", ""]
        for name, sub in _subparsers(parser).items():
            parts += [f"## `ssnas {name}`", "", "```text",
                      sub.format_help().rstrip(), "```", ""]
    finally:
        if old is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old
    return "\n".join(parts)


def api_reference():
    """Markdown: a `:::` entry for every public name of `ssnas_tf`."""
    import ssnas_tf
    parts = []
    for name in sorted(ssnas_tf._EXPORTS):  # pylint: disable=protected-access
        module = ssnas_tf._EXPORTS[name]  # pylint: disable=protected-access
        parts += [f"## `{name}`", "", f"`from ssnas_tf import {name}` "
                  f"(defined in `{module}`)", "", f"::: {module}.{name}",
                  "    options:", "      show_root_heading: false", ""]
    return "\n".join(parts)


def on_page_markdown(markdown, page, **kwargs):  # pylint: disable=unused-argument
    """Fills in the generated reference sections."""
    if CLI_MARKER in markdown:
        markdown = markdown.replace(CLI_MARKER, cli_reference())
    if API_MARKER in markdown:
        markdown = markdown.replace(API_MARKER, api_reference())
    return markdown


# -- warnings about docstring layout, not about the site ----------------------------
#
# Docstrings follow STYLE.md (Google style, doctest examples); a few of their
# forms are not what griffe's parser or autorefs expect: a doctest output such
# as `[(3, 2), (2, 2, 2)]` reads as a cross-reference to autorefs, and an
# argument list "a, b, c: ..." wrapped over two lines is not a "name:
# description" pair to griffe. These are shown as INFO, and do not fail
# `--strict`. Everything else still does: a `:::` name that does not resolve,
# an unresolved reference to a dotted identifier, a broken link between pages.

_IDENTIFIER = re.compile(r"^[A-Za-z_][\w.]*$")
_TARGET = re.compile(r"Could not find cross-reference target '(.*)'$")
_GRIFFE_LAYOUT = ("Failed to get 'name: description' pair",)


def _layout_only(record):
    if record.levelno != logging.WARNING:
        return False
    message = record.getMessage()
    target = _TARGET.search(message)
    if target is not None:
        return not _IDENTIFIER.match(target.group(1))
    return "griffe" in record.name and any(text in message for text in _GRIFFE_LAYOUT)


class _DocstringLayoutFilter(logging.Filter):
    """Drops docstring-layout warnings from the strict-mode counter; shows
    them as INFO elsewhere."""

    def __init__(self, counter):
        super().__init__()
        self.counter = counter

    def filter(self, record):
        if not _layout_only(record):
            return True
        if self.counter:
            return False
        record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def on_config(config, **kwargs):  # pylint: disable=unused-argument
    """Installs the docstring-layout filter on mkdocs' log handlers."""
    from mkdocs.utils import CountHandler
    for handler in logging.getLogger("mkdocs").handlers:
        if not any(isinstance(f, _DocstringLayoutFilter) for f in handler.filters):
            handler.addFilter(_DocstringLayoutFilter(isinstance(handler, CountHandler)))
    return config

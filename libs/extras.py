"""Optional packages: the production image installs only the runtime dependencies.

The embedded broker and PostgreSQL (`podium up`, the tests) come with the `dev` extra;
pyarrow and matplotlib (`podium events export --format parquet`, `podium report --plot`)
with the `analyst` extra, which `dev` includes. Code that needs one imports it through
`optional`, inside the function that uses it, so no service imports it at start-up and a
missing one is named with the command that installs it.
"""

from __future__ import annotations

import importlib
from types import ModuleType


class MissingExtra(RuntimeError):
    pass


def optional(module: str, extra: str, purpose: str) -> ModuleType:
    """`import module`, or a MissingExtra saying which extra to install for `purpose`."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingExtra(
            f"{purpose} needs {module.split('.')[0]}, which comes with the {extra!r} extra: "
            f"pip install 'podium[{extra}]' (or pip install -e '.[{extra}]' in a checkout)"
        ) from e

"""The one exception for an operator's mistake, shared by the CLI, the app and plugins.

`python main.py` prints it as one line on stderr and exits with code 2 (see `bot.cli`). It lives
here, not in `bot.cli`, so the app's start-up (a busy HTTP port, a database that cannot be
opened) can raise it without importing the CLI.
"""

from __future__ import annotations

USAGE_ERROR = 2
"""The exit code of every operator mistake (argparse uses it too)."""


class UserError(Exception):
    """A mistake the user can fix; printed as one line, exit code 2."""


def one_line(message: object) -> str:
    """The message on one line: a multi-line reason keeps its parts, joined with "; "."""
    parts = [line.strip() for line in str(message).splitlines() if line.strip()]
    return "; ".join(parts) or type(message).__name__

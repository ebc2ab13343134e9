"""Prompt templates live as plain text in `prompts/<name>.txt`, so wording changes need no code change.

Templates use `string.Template` (`$name` / `${name}`; `$$` is a literal dollar sign). A missing value
is an error, never a silently blank hole in what the model reads.
"""

from __future__ import annotations

import re
import string
from functools import lru_cache
from pathlib import Path

PROMPTS_DIR = Path(__file__).resolve().parent.parent / "prompts"
_NAME = re.compile(r"[a-z0-9][a-z0-9_\-]*")


class PromptError(KeyError):
    """A prompt that does not exist or lacks a value."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


def load_prompt(name: str, **values: object) -> str:
    """Read `prompts/<name>.txt` and substitute `values`; raise PromptError on an unknown name or missing value."""
    template = _template(name)
    try:
        return template.substitute(values)
    except KeyError as exc:
        raise PromptError(f"prompt {name!r} needs a value for ${exc.args[0]}") from None
    except ValueError as exc:  # a lone "$" in the file
        raise PromptError(f"prompt {name!r} is malformed: {exc}") from None


def prompt_names() -> list[str]:
    return sorted(p.stem for p in PROMPTS_DIR.glob("*.txt"))


@lru_cache(maxsize=128)
def _template(name: str) -> string.Template:
    if not _NAME.fullmatch(name):
        raise PromptError(f"bad prompt name {name!r}: lowercase letters, digits, '_' and '-' only")
    path = PROMPTS_DIR / f"{name}.txt"
    if not path.is_file():
        raise PromptError(f"no prompt {name!r} (looked for {path})")
    return string.Template(path.read_text(encoding="utf-8"))

"""The optional TOML file: people, stores, teams, shifts and schedules.

The core reads `[[people]]` and `[schedules]`; each plugin validates its own sections with
`section(name, Model)`, so a bad value names its key: `stores[0].timezone: ...`.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

M = TypeVar("M")


class ConfigError(ValueError):
    """One line, naming the key."""


def describe(exc: ValidationError, prefix: str = "") -> str:
    err = exc.errors()[0]
    loc = prefix
    for part in err["loc"]:
        loc += f"[{part}]" if isinstance(part, int) else (f".{part}" if loc else str(part))
    more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    return f"{loc or 'config'}: {err['msg']}{more}"


class ConfigFile:
    def __init__(self, data: dict[str, Any] | None = None, path: Path | None = None) -> None:
        self.data = data or {}
        self.path = path

    @classmethod
    def load(cls, path: Path | str | None) -> ConfigFile:
        if path is None:
            default = Path("huddle.toml")
            if not default.exists():
                return cls()
            path = default
        path = Path(path)
        if not path.exists():
            raise ConfigError(f"config: file {path} not found")
        try:
            return cls(tomllib.loads(path.read_text(encoding="utf-8")), path)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config: {path}: {exc}") from None

    def section(self, name: str, model: type[M] | Any, default: Any = None) -> M:
        """Validate one top-level section (a table or an array of tables) into `model`."""
        raw = self.data.get(name, default)
        try:
            return TypeAdapter(model).validate_python(raw)
        except ValidationError as exc:
            raise ConfigError(describe(exc, name)) from None


class StrictModel(BaseModel):
    """Config models reject unknown keys, so a typo is an error rather than a silent default."""

    model_config = {"extra": "forbid"}

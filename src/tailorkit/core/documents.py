"""Versioned JSON documents (search results, export manifests): read whole, checked, or a clear error."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from tailorkit.core.errors import ConfigError

T = TypeVar("T")


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB chunks (models and tables can be large)."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_json_object(path: str | Path, what: str) -> dict[str, Any]:
    """The JSON object in ``path``; a missing, unreadable or non-object file is a ConfigError naming ``what``."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{what} {str(path)!r} does not exist") from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{what} {str(path)!r} is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{what} {str(path)!r} is not a JSON object")
    return data


def from_document(cls: type[T], data: Mapping[str, Any], schema: str, version: int, what: str) -> T:
    """A dataclass from a document's fields after checking its ``schema`` and ``version``; unknown fields are
    ignored (later minor additions), missing ones are a ConfigError."""
    if data.get("schema") != schema:
        raise ConfigError(f"not a tailorkit {what} (schema {data.get('schema')!r})")
    if data.get("version") != version:
        raise ConfigError(f"{what} version {data.get('version')!r} is not {version}")
    names = set(cls.__dataclass_fields__)  # type: ignore[attr-defined]
    try:
        return cls(**{k: v for k, v in data.items() if k in names})
    except TypeError as exc:
        raise ConfigError(f"{what} is missing fields ({exc})") from None

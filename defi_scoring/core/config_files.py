"""Where a YAML configuration is read from, so an installed wheel and a checkout behave alike.

Order: an explicit path → `$DEFI_SCORING_CONFIG_DIR/<name>` → `./models/<name>` (the repository's folder
for edited copies) → the default shipped inside the package (`defi_scoring/defaults/<name>`).
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel

Model = TypeVar("Model", bound=BaseModel)

CONFIG_DIR_ENV = "DEFI_SCORING_CONFIG_DIR"
LOCAL_CONFIG_DIR = Path("models")
CONFIG_NAMES = ("ensemble.yaml", "scoring.yaml", "data_checks.yaml")


def packaged_default(name: str) -> str:
    """The text of the default `name` shipped in the package."""
    return resources.files("defi_scoring.defaults").joinpath(name).read_text(encoding="utf-8")


def resolve_config(name: str, explicit: str | Path | None = None) -> tuple[str, str]:
    """(source, YAML text) of the configuration `name`; source is a path or `package:<name>`.

    An explicit path or a set DEFI_SCORING_CONFIG_DIR that lacks the file is an error (a typo there
    must not silently fall back to the defaults)."""
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise FileNotFoundError(
                f"configuration file {path} not found; pass an existing path or leave it "
                f"empty for the default (see `defi-scoring config show {name}`)"
            )
        return str(path), path.read_text(encoding="utf-8")
    folder = os.environ.get(CONFIG_DIR_ENV)
    if folder:
        path = Path(folder).expanduser() / name
        if not path.is_file():
            raise FileNotFoundError(
                f"{CONFIG_DIR_ENV}={folder} has no {name}; write one with "
                f"`defi-scoring config init --dir {folder}` or unset {CONFIG_DIR_ENV}"
            )
        return str(path), path.read_text(encoding="utf-8")
    local = LOCAL_CONFIG_DIR / name
    if local.is_file():
        return str(local.resolve()), local.read_text(encoding="utf-8")
    return f"package:{name}", packaged_default(name)


def load_validated(name: str, model: type[Model], explicit: str | Path | None = None) -> Model:
    """Resolve, parse and validate one configuration; a bad file raises a ValueError naming the file."""
    source, text = resolve_config(name, explicit)
    try:
        return model.model_validate(yaml.safe_load(text))
    except Exception as exc:
        raise ValueError(f"{source}: invalid {name}: {exc}") from exc


def write_defaults(folder: Path, overwrite: bool = False) -> list[Path]:
    """Copy the packaged defaults into `folder` for editing; existing files are kept unless `overwrite`."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name in CONFIG_NAMES:
        target = folder / name
        if target.exists() and not overwrite:
            continue
        target.write_text(packaged_default(name), encoding="utf-8")
        written.append(target)
    return written

"""Every setting a user can set is documented in the README."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices

from tracehouse.config import Settings

README = (Path(__file__).parents[2] / "README.md").read_text()


def _env_names(name: str, field) -> list[str]:
    alias = field.validation_alias
    if isinstance(alias, str):
        return [alias]
    if isinstance(alias, AliasChoices):
        return [str(c) for c in alias.choices]
    return ["TRACEHOUSE_" + name.upper()]


def test_every_setting_is_in_the_readme():
    missing = []
    for name, field in Settings.model_fields.items():
        names = _env_names(name, field)
        if not any(n in README for n in names):
            missing.append(names)
    assert missing == []

"""from_section: every field read from the section, no fallback to dataclass defaults."""

from dataclasses import dataclass

import pytest

from eolabels.settings import from_section


@dataclass(frozen=True)
class _Recipe:
    steps: int = 300
    sizes: tuple[int, ...] = (7, 11)


def test_reads_every_field_and_freezes_lists():
    recipe = from_section(_Recipe, {"steps": 5, "sizes": [3, 5], "threads": 2})
    assert recipe == _Recipe(steps=5, sizes=(3, 5))


def test_missing_key_is_an_error_not_the_dataclass_default():
    with pytest.raises(KeyError, match=r"_Recipe.*\['sizes'\]"):
        from_section(_Recipe, {"steps": 5})


def test_overrides_replace_fields_built_elsewhere():
    assert from_section(_Recipe, {"steps": 1}, sizes=(9,)).sizes == (9,)

"""Built-in suites: what each covers, and that every name in them is a real perturbation."""

from __future__ import annotations

import pytest

from brittle.perturbations import catalogue, get_perturbation
from brittle.run.suites import IMAGENET_C_COMMON, builtin_suite


def test_standard_represents_every_family_at_1_3_5() -> None:
    suite = builtin_suite("standard")
    families = {get_perturbation(p).family for p in suite.severities}
    assert families == set(catalogue())
    assert set(suite.severities.values()) == {(1, 3, 5)}


def test_full_is_the_whole_catalogue_and_imagenet_c_the_15() -> None:
    full = builtin_suite("full")
    assert len(full.cells()) == 5 * sum(len(v) for v in catalogue().values())
    inc = builtin_suite("imagenet-c")
    assert tuple(inc.severities) == IMAGENET_C_COMMON
    assert all(get_perturbation(p).imagenet_c == "common" for p in inc.severities)


def test_quick_is_small() -> None:
    quick = builtin_suite("quick")
    assert 5 <= len(quick.cells()) <= 10
    assert set(quick.severities.values()) == {(3,)}


def test_unknown_suite() -> None:
    with pytest.raises(KeyError, match="did you mean 'quick'"):
        builtin_suite("quik")

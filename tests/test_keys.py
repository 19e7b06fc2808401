"""Config keys are found by Go's rule (cni/keys.py): an exact match first, else the first key equal to
it ignoring case; ``fields`` reads several keys of one object in one pass and finds each as ``get``."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from cni.keys import fields, get

NAMES = ("mtu", "linkInContainer", "runtimeConfig", "master")
SPELLINGS = st.sampled_from([*NAMES, "MTU", "Mtu", "linkincontainer", "LinkInContainer", "RuntimeConfig", "other"])


def test_an_exact_match_wins_over_one_ignoring_case() -> None:
    config = {"MTU": 1, "mtu": 2, "Master": "a", "MASTER": "b"}
    assert fields(config, NAMES) == {"mtu": 2, "master": "a"}
    assert [get(config, "mtu"), get(config, "master")] == [2, "a"]


@given(st.dictionaries(SPELLINGS, st.integers(), max_size=6))
def test_fields_finds_each_key_as_get_does(config: dict) -> None:
    assert fields(config, NAMES) == {
        name: get(config, name) for name in NAMES if get(config, name, KeyError) is not KeyError
    }

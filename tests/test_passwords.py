"""The password generator honours every valid complexity policy."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from records.complexity import KEEPER_SPECIALS, Complexity, ComplexityError
from rotation.passwords import generate, satisfies


@st.composite
def policies(draw):
    length = draw(st.integers(min_value=4, max_value=64))
    counts = [draw(st.integers(min_value=0, max_value=length)) for _ in range(4)]
    while sum(counts) > length:
        i = counts.index(max(counts))
        counts[i] -= 1
    specials = draw(st.sets(st.sampled_from(KEEPER_SPECIALS), min_size=0 if counts[3] == 0 else 1))
    return Complexity(length, *counts, special_chars="".join(sorted(specials)))


# As many policies as the hypothesis profile asks (tests/conftest.py): 1,000 in CI, 100 on a laptop.
@given(policies())
def test_every_generated_password_satisfies_its_policy(policy):
    password = generate(policy)
    assert satisfies(password, policy), policy


def test_the_default_policy_gives_twenty_characters_with_every_class():
    policy = Complexity()
    password = generate(policy)
    assert len(password) == 20 and satisfies(password, policy)


def test_characters_are_spread_evenly_over_the_alphabet():
    # 20,000 characters over a 10-character alphabet: each should appear about 2,000 times.
    policy = Complexity(length=20, upper=0, lower=0, digits=20, special=0, special_chars="")
    counts = Counter("".join(generate(policy) for _ in range(1000)))
    assert set(counts) == set("0123456789")
    assert all(1700 < n < 2300 for n in counts.values()), counts


def test_required_characters_are_not_always_in_the_same_place():
    policy = Complexity(length=8, upper=1, lower=0, digits=0, special=0, special_chars="")
    first_is_upper = sum(generate(policy)[0].isupper() for _ in range(400))
    assert first_is_upper < 400


@pytest.mark.parametrize(
    "text, message",
    [
        ("10,5,5,5,5", "more than the length"),
        ("20,1,1,1,1,", "none are allowed"),
        ("20,1,1,1", "length,upper"),
        ("twenty,1,1,1,1", "whole numbers"),
        ("2,0,0,0,0", "between 4"),
        ("20,1,1,1,1,ab", "punctuation"),
        ("20,-1,1,1,1", "negative"),
    ],
)
def test_impossible_policies_are_rejected_with_a_reason(text, message):
    with pytest.raises(ComplexityError, match=message):
        Complexity.parse(text)


def test_keeper_form_round_trips_including_a_custom_special_set():
    policy = Complexity.parse("32,5,5,5,5,!@#,.")
    assert policy.special_chars == "!@#,."
    assert Complexity.parse(policy.to_keeper()) == policy
    assert Complexity.parse("20,1,1,1,1").to_keeper() == "20,1,1,1,1"

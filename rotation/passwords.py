"""Generate passwords that satisfy a complexity policy (pure Python, no Django)."""

from __future__ import annotations

import secrets

from records.complexity import DIGITS, LOWER, UPPER, Complexity


def generate(policy: Complexity) -> str:
    """Return a random password with the policy's length and at least its minimum of each class.

    Every character is drawn with ``secrets.choice`` (rejection sampling, so no modulo bias), and
    the positions are shuffled with a Fisher-Yates shuffle driven by ``secrets.randbelow``.
    """
    chars = (
        [secrets.choice(UPPER) for _ in range(policy.upper)]
        + [secrets.choice(LOWER) for _ in range(policy.lower)]
        + [secrets.choice(DIGITS) for _ in range(policy.digits)]
        + [secrets.choice(policy.special_chars) for _ in range(policy.special)]
    )
    alphabet = policy.alphabet
    chars += [secrets.choice(alphabet) for _ in range(policy.length - len(chars))]
    for i in range(len(chars) - 1, 0, -1):
        j = secrets.randbelow(i + 1)
        chars[i], chars[j] = chars[j], chars[i]
    return "".join(chars)


def satisfies(password: str, policy: Complexity) -> bool:
    """Return whether a password meets the policy (length, class minimums, allowed characters)."""
    allowed = set(policy.alphabet)
    return (
        len(password) == policy.length
        and all(char in allowed for char in password)
        and sum(char in UPPER for char in password) >= policy.upper
        and sum(char in LOWER for char in password) >= policy.lower
        and sum(char in DIGITS for char in password) >= policy.digits
        and sum(char in policy.special_chars for char in password) >= policy.special
    )

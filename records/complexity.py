"""Password complexity in Keeper's shape: length and minimum counts per character class."""

from __future__ import annotations

from dataclasses import dataclass

# Keeper's default special character set.
KEEPER_SPECIALS = "!@#$%^?();',.=+[]<>{}-_/\\*&:\"`~|"
UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
LOWER = "abcdefghijklmnopqrstuvwxyz"
DIGITS = "0123456789"
MIN_LENGTH = 4
MAX_LENGTH = 256


def keeper_text(length, upper, lower, digits, special, special_chars: str = KEEPER_SPECIALS) -> str:
    """Return Keeper's CLI form of a policy's parts, unchecked (the model's validator checks it); the set only when it is not Keeper's."""
    text = f"{length},{upper},{lower},{digits},{special}"
    return text if special_chars == KEEPER_SPECIALS else f"{text},{special_chars}"


class ComplexityError(ValueError):
    """A complexity policy that cannot be parsed or cannot be satisfied."""


@dataclass(frozen=True)
class Complexity:
    """A password policy: total length, minimum per class, and the allowed special characters."""

    length: int = 20
    upper: int = 1
    lower: int = 1
    digits: int = 1
    special: int = 1
    special_chars: str = KEEPER_SPECIALS

    def __post_init__(self):
        for name in ("length", "upper", "lower", "digits", "special"):
            if getattr(self, name) < 0:
                raise ComplexityError(f"{name} cannot be negative")
        if not MIN_LENGTH <= self.length <= MAX_LENGTH:
            raise ComplexityError(f"length must be between {MIN_LENGTH} and {MAX_LENGTH}")
        if self.upper + self.lower + self.digits + self.special > self.length:
            raise ComplexityError(
                f"the minimum counts add up to {self.upper + self.lower + self.digits + self.special}, "
                f"more than the length {self.length}"
            )
        for char in self.special_chars:
            if char.isalnum() or char.isspace() or not char.isprintable() or not char.isascii():
                raise ComplexityError(
                    "special characters must be printable ASCII punctuation (no letters, digits or spaces)"
                )
        if len(set(self.special_chars)) != len(self.special_chars):
            raise ComplexityError("special characters are listed twice")
        if self.special and not self.special_chars:
            raise ComplexityError("special characters are required but none are allowed")

    @property
    def alphabet(self) -> str:
        """Return every character a password may contain."""
        return UPPER + LOWER + DIGITS + self.special_chars

    @classmethod
    def parse(cls, text: str) -> Complexity:
        """Parse Keeper's CLI form ``length,upper,lower,digits,special[,CHARS]``."""
        parts = text.strip().split(",", 5)
        if len(parts) < 5:
            raise ComplexityError(
                'write the complexity as "length,upper,lower,digits,special[,characters]", '
                'for example "20,1,1,1,1"'
            )
        try:
            numbers = [int(part.strip()) for part in parts[:5]]
        except ValueError:
            raise ComplexityError("the first five complexity values must be whole numbers") from None
        if len(parts) == 6:
            return cls(*numbers, special_chars=parts[5])
        return cls(*numbers)

    def to_keeper(self) -> str:
        """Return Keeper's CLI form; the special set is written only when it is not Keeper's."""
        return keeper_text(self.length, self.upper, self.lower, self.digits, self.special, self.special_chars)

    def describe(self) -> str:
        """Return a short human description."""
        return (
            f"{self.length} characters, at least {self.upper} uppercase, {self.lower} lowercase, "
            f"{self.digits} {'digit' if self.digits == 1 else 'digits'}, {self.special} special"
        )

"""Integer lookups that never send the database a number it cannot hold.

Django drops an out-of-range value from ``exact``/``gt``/``lt`` lookups (IntegerFieldOverflow) but
not from ``in``: ``filter(pk__in=[2**64])`` raises OverflowError on SQLite. That is the query every
ModelMultipleChoiceField (forms, admin, the API's related fields) and every ``pk__in`` or
``foreign_key__in`` filter runs, so the fix lives here, on the lookups, for every integer field
(AutoField, BigAutoField) and every relation to one.
"""

from __future__ import annotations

from django.db.models import ForeignObject, IntegerField
from django.db.models.fields.related_lookups import RelatedIn
from django.db.models.lookups import In


class _DropOutOfRange:
    """``in`` without the values past the column's range: no row can hold them."""

    def process_rhs(self, compiler, connection):
        field = self.lhs.output_field
        field = getattr(field, "target_field", field)  # a foreign key: the column it points at
        if self.rhs_is_direct_value() and isinstance(field, IntegerField):
            low, high = connection.ops.integer_field_range(field.get_internal_type())
            self.rhs = [value for value in self.rhs if not _outside(value, low, high)]
        return super().process_rhs(compiler, connection)


@IntegerField.register_lookup
class IntegerFieldIn(_DropOutOfRange, In):
    """``pk__in``, ``id__in``."""


@ForeignObject.register_lookup
class RelatedIntegerIn(_DropOutOfRange, RelatedIn):
    """``resource__in``, ``configurations__in``."""


def _outside(value, low, high) -> bool:
    """Return whether ``value`` is an int outside [low, high] (None: unbounded)."""
    if not isinstance(value, int):
        return False
    return (low is not None and value < low) or (high is not None and value > high)

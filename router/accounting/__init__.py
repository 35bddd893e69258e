"""Token and cost accounting per virtual key, provider, model and UTC day (see `store.py`)."""

from .billed import ZERO, Billed
from .record import ANONYMOUS, UsageRecord, nanos_to_usd, to_nanos, utc_day
from .store import GROUP_BY, Accountant, sum_rows

__all__ = ["ANONYMOUS", "GROUP_BY", "ZERO", "Accountant", "Billed", "UsageRecord", "nanos_to_usd", "sum_rows",
           "to_nanos", "utc_day"]

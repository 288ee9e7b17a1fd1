"""Old path of :mod:`.table` (kept for importers not yet moved)."""
from .table import int_ref, shape  # noqa: F401

"""Old path of :mod:`.window` (kept for importers not yet moved)."""
from .window import (global_pool_shape, out_sizes, patches, pool_geometry, pool_shape,  # noqa: F401
                     spatial_attrs, window_counts)

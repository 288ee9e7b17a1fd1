"""The error every backend raises when a design cannot be generated (also
``nnforge.BackendError``)."""


class BackendError(Exception):
    """The design cannot be generated for a target; nothing has been written."""

"""Op definitions. Importing this package registers every primitive."""

from . import elementwise, gradient, movement, nn, reduction, source  # noqa: F401

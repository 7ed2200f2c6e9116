"""Everything the app knows about the Carnet API, without Kivy: client, errors, input rules."""

from .client import CarnetClient, default_device_name
from .errors import ApiError, FieldError

__all__ = ["ApiError", "CarnetClient", "FieldError", "default_device_name"]

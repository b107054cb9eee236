"""nasindex: one searchable index of the medical images on several NAS devices."""

__version__ = "0.1.0"

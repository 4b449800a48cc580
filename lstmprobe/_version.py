"""The package version, in one place (recorded in every store's attributes)."""

__version__ = "0.1.0"

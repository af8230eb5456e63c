"""The package version, in core so every layer can record it without importing the facade."""

__version__ = "0.1.0"

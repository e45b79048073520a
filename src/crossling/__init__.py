"""crossling: how a multilingual transformer learns and transfers sentiment across languages."""

__version__ = "0.1.0"

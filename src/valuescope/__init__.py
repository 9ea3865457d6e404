"""valuescope: audit how a language model's expressed values respond to role-play."""

__version__ = "0.1.0"

"""The version of oppie-pulumi, in a module that imports nothing: ``pyproject.toml``, the client's User-Agent and
the plugin's schema all read it here."""

__version__ = "0.1.0"

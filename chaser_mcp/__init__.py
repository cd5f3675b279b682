"""chaser-mcp: real mobile browser sessions from Chaser, served to AI agents over MCP."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("chaser-mcp")
except PackageNotFoundError:  # running from a checkout that was never installed
    __version__ = "0.0.0"

__all__ = ["__version__"]

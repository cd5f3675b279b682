"""chaser-mcp: real mobile browser sessions from Chaser, served to AI agents over MCP."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("chaser-mcp")
except PackageNotFoundError:  # running from a checkout that was never installed
    __version__ = "0.0.0"


def user_agent() -> str:
    """What every request to the API says it is."""
    return f"chaser-mcp/{__version__}"


__all__ = ["__version__", "user_agent"]

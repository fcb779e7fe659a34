"""takt-mcp: an MCP server that gives agents an independent, position-holding voice."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("takt-mcp")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

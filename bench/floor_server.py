"""The floor for the start-up and per-call benchmarks: a bare MCPServer with one no-op tool."""

from mcp.server.mcpserver import MCPServer

server = MCPServer("floor")


@server.tool()
def noop(question: str) -> str:
    """Return the question unchanged."""
    return question


if __name__ == "__main__":
    server.run("stdio")

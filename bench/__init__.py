"""Benchmarks of takt-mcp against a bare MCP server; run `python -m bench.run`."""

"""The pressure evaluation: does a voice hold a correct answer under pressure and move on evidence?

`takt-mcp eval` runs each case under three conditions on one model (a plain
assistant prompt, the identity block alone, and the full orchestrator),
judges the answer after every turn, and writes per-turn results, a summary,
a Markdown report and a chart.
"""

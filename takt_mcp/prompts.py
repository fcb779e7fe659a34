"""MCP prompts: slash commands that ask the host model to call a takt tool."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mcp.server.mcpserver import MCPServer

if TYPE_CHECKING:
    from takt_mcp.server import ServerState


def register_prompts(server: MCPServer[ServerState]) -> None:
    @server.prompt(
        name="second_opinion",
        description="Ask the anchored voice for a second opinion on a question.",
    )
    def second_opinion_prompt(question: str, proposal: str = "") -> str:
        text = (
            "Call the takt second_opinion tool. Pass this as `question`, unchanged:\n\n"
            f"{question}\n"
        )
        if proposal:
            text += f"\nPass this as `proposal`:\n\n{proposal}\n"
        text += (
            "\nIf I have stated a position of my own in this conversation, pass it as "
            "`user_position`. Then report the verdict, the key premise and the frame "
            "influence, and say whether you now change your answer and why."
        )
        return text

    @server.prompt(
        name="mediate",
        description="Ask the anchored voice to mediate a disagreement between named parties.",
    )
    def mediate_prompt(dispute: str) -> str:
        return (
            "Call the takt mediate tool on the disagreement below. Give each party, "
            "including me and you where we disagree, as a separate participant with its own "
            "name and position, quoting their messages verbatim. Then report the crux, the "
            "mediator's own position and what each party should concede.\n\n"
            f"{dispute}"
        )

    @server.prompt(
        name="frame_check",
        description="Audit this conversation for premises and positions taken over unchecked.",
    )
    def frame_check_prompt(draft: str = "") -> str:
        text = (
            "Call the takt frame_check tool on this conversation so far: pass every turn as "
            "`conversation` with speaker 'user' or 'assistant', verbatim."
        )
        if draft:
            text += f" Pass this as `draft`:\n\n{draft}\n"
        text += (
            "\nThen list the premises you adopted without support and any position you "
            "dropped without new evidence, and say what you will do differently."
        )
        return text

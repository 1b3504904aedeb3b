"""The agent: the one package that uses the OpenAI Agents SDK."""

from app.agent.models import open_model
from app.agent.runner import AgentRun, TodoAgent

__all__ = ["AgentRun", "TodoAgent", "open_model"]

"""The agent: the one package that uses the OpenAI Agents SDK."""

from app.agent.models import build_model
from app.agent.runner import AgentRun, TodoAgent

__all__ = ["AgentRun", "TodoAgent", "build_model"]

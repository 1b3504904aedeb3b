"""The agent: the one package that uses the OpenAI Agents SDK."""

from agents import Model

from app.agent.models import open_model
from app.agent.runner import AgentRun, TodoAgent

__all__ = ["AgentRun", "Model", "TodoAgent", "open_model"]

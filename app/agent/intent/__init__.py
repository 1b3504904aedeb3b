"""What the offline model understands: everyday todo requests, and what to do next.

Plain functions, no SDK. `understand()` reads a message into a `Request`, the actions it asks
for in the order they were said; `next_step()` decides, from the request and what the tools
have answered so far in this turn, the next model response: the tool calls to make together,
or the reply. One room per concern:

- `vocabulary`, `phrasings`, `wrappers`: the words, the phrasings of each kind of request, and
  what is said around a request (greetings, "could you please be a dear and …");
- `reading`, `readers`, `references`, `titles`: a message into clauses, a clause into an
  action, the tasks a reference names, the titles an add names;
- `steps`: the next step; `matching`: finding tasks by their words; `replies`: the wording.
"""

from app.agent.intent.actions import Intent, Request, Step, ToolCallPlan, ToolResult
from app.agent.intent.matching import match_tasks
from app.agent.intent.reading import understand
from app.agent.intent.replies import HELP
from app.agent.intent.steps import MAX_CALLS_PER_RESPONSE, next_step

__all__ = [
    "HELP",
    "MAX_CALLS_PER_RESPONSE",
    "Intent",
    "Request",
    "Step",
    "ToolCallPlan",
    "ToolResult",
    "match_tasks",
    "next_step",
    "understand",
]

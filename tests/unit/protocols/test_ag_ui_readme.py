"""The README shows the resuming `HttpAgent` subclass whole: it must be the tested one
(tests/clients/ag_ui_resuming_agent.mjs), comments aside."""

from __future__ import annotations

from app.settings import PROJECT_ROOT


def test_the_readmes_resuming_agent_is_the_tested_one() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text()
    shown = readme.split("<summary>The subclass", 1)[1].split("```js\n", 1)[1].split("```", 1)[0]
    tested = (PROJECT_ROOT / "tests/clients/ag_ui_resuming_agent.mjs").read_text()
    code = [line for line in tested.splitlines() if not line.lstrip().startswith("//")]
    assert shown == "\n".join(code).strip() + "\n"

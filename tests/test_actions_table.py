"""The table of client actions (chatnet/actions) as chatnet.node builds it:
every action docs/protocol.md documents and nothing else, the steps the
``live`` extension adds running only after their base action succeeded,
and each action family a module of its own under 300 lines. Pure: no
store is asked (building the actions calls none)."""
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import pytest_twisted

from chatnet.actions import LiveParts, build
from chatnet.actions.dispatch import then
from chatnet.config import NodeConfig
from chatnet.limits.budget import ByteBudget

REPO = Path(__file__).resolve().parent.parent
#: the extensions' actions (docs/protocol.md, "Extensions"), each under a heading of its own
EXTENSION_ACTIONS = {"resume", "history", "edit", "delete", "typing", "read"}


def documented_actions():
    """The first column of the table "What a client can ask", and the
    extensions' actions (checked to have their heading)."""
    text = (REPO / "docs" / "protocol.md").read_text()
    table = text.split("## What a client can ask", 1)[1].split("\n\n", 2)[1]
    names = set(re.findall(r"^\| `(\w+)`", table, re.MULTILINE))
    for name in EXTENSION_ACTIONS:
        assert re.search(rf"^#+ .*`{name}`", text, re.MULTILINE), name
    return names | EXTENSION_ACTIONS


def actions(live):
    clock = SimpleNamespace()
    config = NodeConfig()
    parts = dict.fromkeys(["view", "mongo", "offline", "history", "popular", "directory", "sessions", "presence",
                           "rooms", "feed", "delivery", "login_throttle"])
    return build(config=config, clock=clock, posting=SimpleNamespace(background=None),
                 budget=ByteBudget.from_config(config, clock),
                 live=LiveParts(*[None] * 7) if live else None, **parts)


def test_the_node_serves_every_documented_action_and_no_other():
    assert set(actions(live=True).actions) == documented_actions()
    assert set(actions(live=False).actions) == documented_actions() - (EXTENSION_ACTIONS - {"resume"})


@pytest_twisted.ensureDeferred
async def test_a_step_runs_after_its_action_and_only_if_it_succeeded():
    done = []

    async def action(connection, request):
        done.append(("action", request))
        if request == "bad":
            raise ValueError(request)

    async def step(connection, request):
        done.append(("step", request))

    both = then(action, step)
    await both(None, "good")
    with pytest.raises(ValueError):
        await both(None, "bad")
    assert done == [("action", "good"), ("step", "good"), ("action", "bad")]


def test_each_family_is_a_short_module():
    for path in (REPO / "chatnet" / "actions").glob("*.py"):
        assert len(path.read_text().splitlines()) < 300, path.name

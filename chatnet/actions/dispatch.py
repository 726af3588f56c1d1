"""The table of client actions and the one entry the WebSocket protocol
calls (L{ClientActions.handle}): every request is charged to the byte
budget first, then checked (a known action, logged in, ``resume`` only
with that feature) and handed to its action."""
from chatnet.errors import ProtocolError

INTERNAL_ACTIONS = frozenset(
    {"leaderConnect", "syncServers", "serverList", "registerServer", "heartbeat", "deliver", "relay"}
)


class ClientActions:
    """The client actions of one node (L{chatnet.actions.build} makes it).

    @param actions: a mapping of action name (docs/protocol.md) to
        C{action(connection, request)}, which answers through the
        connection or raises L{ProtocolError}.
    @param budget: the L{chatnet.limits.budget.ByteBudget} every request is
        charged to first.
    @param families: the objects the actions are methods of, by name
        (C{"session"}, C{"chat"}, ...): for a reader (and a test) that
        wants one; the dispatch does not use them.
    """

    def __init__(self, actions, budget, families=None):
        self.actions = dict(actions)
        self.budget = budget
        self.families = dict(families or {})

    async def handle(self, connection, request):
        record = connection.record
        self.budget.charge(connection, record.username if record is not None else None, request.size)
        action = request.action
        handler = self.actions.get(action)
        if handler is None:
            if action in INTERNAL_ACTIONS:
                raise ProtocolError(403, f"{action} is a cluster-internal action, refused on the client port", action)
            raise ProtocolError(400, f"unknown action {action[:64]!r}", action[:64])
        if action != "login" and connection.record is None:
            raise ProtocolError(401, "log in first", action)
        if action == "resume" and "resume" not in connection.features:
            raise ProtocolError(400, f"unknown action {action!r}", action)
        if connection.session.holding and action != "resume":
            # held after a login with "resume", but the client goes on without
            connection.session.release()
        await handler(connection, request)


def then(action, step):
    """An action that runs C{action}, then, if it succeeded, C{step} (with
    the same connection and request): what an extension does after a base
    action (an error of the base action leaves nothing done)."""
    async def both(connection, request):
        await action(connection, request)
        await step(connection, request)
    return both

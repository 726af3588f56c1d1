"""The actions that only read (docs/protocol.md): ``userInfo`` (is a user
online, where, since when) and ``popular`` (the most used words)."""
from chatnet.actions.limits import MAX_NAME
from chatnet.domain.messages import now_ms
from chatnet.errors import StoreUnavailable, not_online
from chatnet.protocols.constants import online_for


class QueryActions:
    """C{userInfo}, C{popular}. Collaborators:

    @param clock: an C{IReactorTime}.
    @param directory: the L{chatnet.service.online.SessionDirectory}.
    @param popular: the L{chatnet.service.popular.PopularWords}.
    """

    def __init__(self, *, clock, directory, popular):
        self.clock = clock
        self.directory = directory
        self.popular_words = popular

    async def user_info(self, connection, request):
        username = request.string("username", max_length=MAX_NAME)
        # from Redis: a session that logged in a moment ago on another node
        # may not have been announced here yet (the cache if Redis is down)
        try:
            records = await self.directory.lookup_all(username, refresh=True)
        except StoreUnavailable:
            records = self.directory.cached_all(username)
        if not records:
            raise not_online(username, "userInfo")
        login_time = min(r.loginTime for r in records)
        records = self.directory.reachable(records)
        nodes = sorted({r.nodeId for r in records})
        connection.answer(
            "userInfo",
            {
                "username": username,
                "loginTime": login_time,
                "nodeId": records[-1].nodeId,
                "nodes": nodes,
                "isOnline": True,
                "onlineFor": online_for(login_time, now_ms(self.clock)),
            },
            request,
        )

    async def popular(self, connection, request):
        # old clients send n as typed: a string of digits
        n = request.integer("n", default=1, minimum=0, maximum=1000, digits=True) or 1
        connection.answer("popular", {"words": await self.popular_words.top(n)}, request)

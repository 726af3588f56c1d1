"""What an extension adds to the answers of base actions: the interface
the session and room actions call, and L{NoExtras}, a node without
extensions (the ``live`` extension's is
L{chatnet.actions.liverooms.LiveRooms})."""


class NoExtras:
    """Adds nothing.

    An extras object has:

      - C{login_answer(connection)}: a Deferred (or coroutine) firing with
        the fields the C{login} answer gains;
      - C{join_answer(connection, doc)}: the fields the C{joinRoom} answer
        gains (C{doc}: the room's document as read before the join, None
        for an automatic room);
      - C{room_list(connection)}: a coroutine firing with the C{listRooms}
        entries instead of the base's, or None for the base's.
    """

    async def login_answer(self, connection):
        return {}

    def join_answer(self, connection, doc):
        return {}

    async def room_list(self, connection):
        return None


NO_EXTRAS = NoExtras()

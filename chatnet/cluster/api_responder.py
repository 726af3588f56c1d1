"""The node's side of the server API's commands on the internal port: an
AMP C{CommandLocator} that unpacks each C{Api*} command
(L{chatnet.protocols.amp_commands}), calls L{chatnet.service.api.ServerApi}
and maps its failures to the commands' AMP errors. Only an authenticated
gateway reaches it (L{chatnet.protocols.internal.InternalProtocol})."""
from twisted.internet import defer
from twisted.protocols import amp

from chatnet.errors import ProtocolError, StoreUnavailable
from chatnet.protocols import amp_commands as cmd

_BY_CODE = {400: cmd.BadRequest, 404: cmd.NotFound, 409: cmd.Conflict, 413: cmd.BadRequest}


def _translate(failure):
    e = failure.value
    if isinstance(e, StoreUnavailable):
        raise cmd.StoreDown(e.message)
    if isinstance(e, ProtocolError):
        raise _BY_CODE.get(e.code, cmd.StoreDown)(e.message)
    return failure


class ApiResponder(amp.CommandLocator):
    """@param api: the node's L{chatnet.service.api.ServerApi}."""

    def __init__(self, api):
        self.api = api

    def _call(self, coro, answer):
        return defer.ensureDeferred(coro).addCallbacks(answer, _translate)

    @cmd.ApiPost.responder
    def post(self, message, sender, roomName=None, to=None):
        if bool(roomName) == bool(to):
            raise cmd.BadRequest("give either roomName or to")
        return self._call(
            self.api.post(sender, message, room=roomName, to=to),
            lambda a: {"msgId": a.msgId, "seq": a.seq, "ts": a.ts, "queued": a.queued},
        )

    @cmd.ApiPresence.responder
    def presence(self, username):
        return self._call(self.api.presence(username),
                          lambda r: {"online": r[0], "nodes": r[1], "onlineFor": r[2]})

    @cmd.ApiRoomPresence.responder
    def room_presence(self, roomName):
        return self._call(self.api.room_presence(roomName), lambda r: {"usernames": r[0], "truncated": r[1]})

    @cmd.ApiDisconnect.responder
    def disconnect(self, username):
        return self._call(self.api.disconnect_user(username), lambda n: {"sessions": n})

    @cmd.ApiCreateUser.responder
    def create_user(self, username, password=None, alliance=None):
        return self._call(self.api.create_user(username, password, alliance), lambda _: {})

    @cmd.ApiDeleteUser.responder
    def delete_user(self, username):
        return self._call(self.api.delete_user(username), lambda n: {"sessions": n})

    @cmd.ApiCreateRoom.responder
    def create_room(self, roomName, private, owner=None):
        return self._call(self.api.create_room(roomName, private, owner), lambda _: {})

    @cmd.ApiDeleteRoom.responder
    def delete_room(self, roomName):
        return self._call(self.api.delete_room(roomName), lambda _: {})

    @cmd.ApiRoomMember.responder
    def room_member(self, roomName, username, member):
        return self._call(self.api.room_member(roomName, username, member), lambda changed: {"changed": changed})

"""The internal AMP protocol between chat nodes.

Both ends speak the same protocol. The connecting node authenticates first
(challenge-response, HMAC-SHA256 over a fresh nonce with the cluster secret);
until then every command but the two of the handshake is refused and the
connection closed. A peer that fails the handshake is disconnected.
"""
import hashlib
import hmac
import os

import orjson
from twisted.internet import defer
from twisted.logger import Logger
from twisted.protocols import amp

from chatnet.errors import ProtocolError, StoreUnavailable
from chatnet.protocols import amp_commands as cmd

log = Logger()

HANDSHAKE = {cmd.Challenge.commandName, cmd.Authenticate.commandName}


def client_mac(secret, server_nonce, node_id):
    return hmac.new(secret, b"client|" + server_nonce + b"|" + node_id.encode(), hashlib.sha256).digest()


def server_mac(secret, client_nonce):
    return hmac.new(secret, b"server|" + client_nonce, hashlib.sha256).digest()


def _translate(exc):
    """Internal failures become the AMP errors the caller maps back."""
    if isinstance(exc, StoreUnavailable):
        return cmd.StoreDown(exc.store)
    if isinstance(exc, ProtocolError) and exc.code == 404:
        return cmd.NoSuchRoom(exc.message)
    return exc


class InternalProtocol(amp.AMP):
    """One authenticated link between two nodes.

    @ivar handler: the node's cluster handler (see L{chatnet.cluster.handler}).
    @ivar peerNodeId: the authenticated node id of the other end.
    """

    def __init__(self, handler, secret):
        super().__init__()
        self.handler = handler
        self.secret = secret
        self.authenticated = False
        self.peerNodeId = None
        self._nonce = None

    # -- gatekeeping ------------------------------------------------------

    def locateResponder(self, name):
        if not self.authenticated and name not in HANDSHAKE:
            log.warn("unauthenticated internal command {name!r} from {peer}; closing", name=name, peer=self.transport.getPeer())
            self.transport.loseConnection()

            def refuse(box):
                return defer.fail(cmd.NotAuthenticated())

            return refuse
        return super().locateResponder(name)

    @cmd.Challenge.responder
    def challenge(self):
        self._nonce = os.urandom(32)
        return {"nonce": self._nonce}

    @cmd.Authenticate.responder
    def authenticate(self, nodeId, nonce, mac):
        expected = self._nonce and client_mac(self.secret, self._nonce, nodeId)
        self._nonce = None
        if not expected or not hmac.compare_digest(expected, mac):
            log.warn("internal peer {peer} failed authentication", peer=self.transport.getPeer())
            raise cmd.NotAuthenticated()
        self.authenticated = True
        self.peerNodeId = nodeId
        return {"mac": server_mac(self.secret, nonce)}

    async def login(self, node_id):
        """Authenticate this (client) end; raises if the server is not a
        cluster member either."""
        nonce = os.urandom(32)
        answer = await self.callRemote(cmd.Challenge)
        reply = await self.callRemote(
            cmd.Authenticate, nodeId=node_id, nonce=nonce, mac=client_mac(self.secret, answer["nonce"], node_id)
        )
        if not hmac.compare_digest(reply["mac"], server_mac(self.secret, nonce)):
            self.transport.loseConnection()
            raise cmd.NotAuthenticated()
        self.authenticated = True

    # -- cluster commands -------------------------------------------------

    def _call(self, coro):
        def translate(failure):
            raise _translate(failure.value)

        return defer.ensureDeferred(coro).addErrback(translate)

    @cmd.SessionChanged.responder
    def session_changed(self, username, nodeId, sessionId, loginTime, alliance, version, online):
        self.handler.session_changed(username, nodeId, sessionId, loginTime, alliance, version, online)
        return {}

    @cmd.Deliver.responder
    def deliver(self, msgId, data, usernames, everyone):
        delivered, missing = self.handler.deliver(msgId, data, usernames, everyone)
        return {"delivered": delivered, "missing": missing}

    @cmd.DeliverMany.responder
    def deliver_many(self, msgIds, datas, usernames):
        missing = [
            msg_id
            for msg_id, data, username in zip(msgIds, datas, usernames)
            if self.handler.deliver(msg_id, data, [username], False)[1]
        ]
        return {"missing": missing}

    @cmd.RoomPost.responder
    def room_post(self, roomName, msgId, seq, data):
        return self._call(self.handler.room_post(roomName, msgId, seq, data)).addCallback(lambda n: {"nodes": n})

    @cmd.RoomJoin.responder
    def room_join(self, roomName, username):
        return self._call(self.handler.room_join(roomName, username)).addCallback(lambda n: {"members": n})

    @cmd.RoomLeave.responder
    def room_leave(self, roomName, username):
        return self._call(self.handler.room_leave(roomName, username)).addCallback(lambda n: {"members": n})

    @cmd.RoomList.responder
    def room_list(self):
        return self._call(self.handler.room_list()).addCallback(lambda rooms: {"rooms": orjson.dumps(rooms)})

    onLost = None

    def connectionLost(self, reason):
        super().connectionLost(reason)
        if self.onLost is not None:
            self.onLost()

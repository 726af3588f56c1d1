"""The internal AMP protocol between chat nodes.

Both ends speak the same protocol. The connecting node authenticates first
(challenge-response, HMAC-SHA256 over a fresh nonce with the cluster secret)
as the node id that ZooKeeper lists for its source address (see
L{chatnet.cluster.identity}); until then every command but the two of the
handshake is refused and the connection closed. A peer that fails the
handshake is disconnected.

A peer is a node or a gateway (see L{chatnet.cluster.identity}): a gateway
may send only the server API's commands (L{cmd.API_COMMANDS}, answered by
the C{api} locator), a node only the others; anything else is refused
with C{NOT_ALLOWED}.

What a peer may send is bounded, so that nobody can make a node hold on to
memory it sends:

* before authentication: L{PRE_AUTH_BYTES} bytes in all and
  L{PRE_AUTH_SECONDS} seconds (the handshake takes well under 1 KiB); past
  either the connection is dropped;
* after it: one box of at most L{MAX_BOX_KEYS} keys and L{MAX_BOX_BYTES}
  bytes. Every AMP value is below 64 KiB, and the largest legitimate box
  (L{cmd.DeliverMany}: three list values the router cuts to at most
  C{BATCH_BYTES} of data and C{NAMES_PER_CALL} names, each below 64 KiB,
  plus a few small fields) is below 200 KiB. A larger box drops the
  connection.

What a node sends a peer is bounded too: a peer that leaves more than
L{MAX_OUTBOUND_BYTES} unread (beyond the transport's 64 KiB buffer; counted
by L{chatnet.protocols.backlog.OutboundBacklog}) is dropped. Its calls fail
as for a node that went away (the callers retry or catch up, see
L{chatnet.cluster.router}), and the link is made again at the next call.

The boxes are read by L{chatnet.adapters.twisted.amp.FastAMP} rather than by
Twisted's box parser, and the calls that carry the messages
(L{cmd.DeliverMany}, L{cmd.RoomDeliver}) are encoded, answered and decoded
here with its short ways rather than by AMP's generic command machinery,
which made an AMP round trip cost several times the delivery it carries
(see bench/RESULTS.md). The bytes on the wire are AMP's own; a box these
fast paths cannot read (malformed) goes the generic way, with its errors.
"""
import hashlib
import hmac
import os

from twisted.internet import defer
from twisted.logger import Logger
from twisted.protocols import amp

from chatnet.adapters.twisted.amp import FastAMP, pack, unpack
from chatnet.errors import ProtocolError, StoreUnavailable
from chatnet.protocols import amp_commands as cmd
from chatnet.protocols.backlog import OutboundBacklog
from chatnet.protocols.turnwrites import send_at_turn_end

log = Logger()

HANDSHAKE = {cmd.Challenge.commandName, cmd.Authenticate.commandName}

PRE_AUTH_BYTES = 4096
PRE_AUTH_SECONDS = 5.0
MAX_BOX_KEYS = 32
MAX_BOX_BYTES = 256 * 1024
# what may wait unread by a peer: the calls in flight to it (16 of at most
# 200 KiB, chatnet.cluster.router.MAX_IN_FLIGHT) and the answers to its own
MAX_OUTBOUND_BYTES = 16 * 1024 * 1024


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


def _texts(value):
    return [item.decode("utf-8") for item in unpack(value)]


def _encode_deliver_many(msgIds, datas, usernames):
    return amp.AmpBox({
        b"msgIds": pack([m.encode("utf-8") for m in msgIds]),
        b"datas": pack(datas),
        b"usernames": pack([u.encode("utf-8") for u in usernames]),
    })


def _decode_deliver_many_answer(box):
    return {"missing": _texts(box[b"missing"])}


def _encode_room_deliver(roomNames, seqs, msgIds, datas):
    return amp.AmpBox({
        b"roomNames": pack([r.encode("utf-8") for r in roomNames]),
        b"seqs": pack([b"%d" % s for s in seqs]),
        b"msgIds": pack([m.encode("utf-8") for m in msgIds]),
        b"datas": pack(datas),
    })


def _decode_empty_answer(box):
    return {}


# the commands called with a hand-made box: their encoder and answer decoder
_FAST_CALLS = {
    cmd.DeliverMany: (_encode_deliver_many, _decode_deliver_many_answer),
    cmd.RoomDeliver: (_encode_room_deliver, _decode_empty_answer),
}


def _refusal(code, why):
    return amp.RemoteAmpError(code, why, fatal=True)


def _refusal_soft(code, why):
    return amp.RemoteAmpError(code, why)


class InternalProtocol(FastAMP):
    """One link between two nodes.

    @ivar responder: the node's responder of the cluster's commands (see L{chatnet.node.ChatNode}).
    @ivar clock: an L{IReactorTime} for the pre-authentication deadline.
    @ivar identity: checks the node id an accepted peer claims (see
        L{chatnet.cluster.identity.MemberIdentity}); None on the connecting
        side, which never answers L{cmd.Authenticate}.
    @ivar api: an C{amp.CommandLocator} answering the server API's
        commands (L{chatnet.cluster.api_responder.ApiResponder}), or None:
        they are refused.
    @ivar peerNodeId: the authenticated node id of the other end.
    @ivar peerKind: C{"node"} or C{"gateway"} once authenticated.
    """

    preAuthBytes = PRE_AUTH_BYTES
    preAuthSeconds = PRE_AUTH_SECONDS
    maxBoxKeys = MAX_BOX_KEYS
    maxBoxBytes = MAX_BOX_BYTES
    maxOutboundBytes = MAX_OUTBOUND_BYTES

    def __init__(self, responder, secret, clock, identity=None, api=None):
        super().__init__()
        self.responder = responder
        self.api = api
        self.peerKind = None
        self.secret = secret
        self.clock = clock
        self.identity = identity
        self.authenticated = False
        self.peerNodeId = None
        self._nonce = None
        self._received = 0  # bytes before authentication
        self._dropped = False
        self._deadline = None

    # -- limits -----------------------------------------------------------

    def connectionMade(self):
        send_at_turn_end(self.transport)
        OutboundBacklog(self.maxOutboundBytes, lambda: self._drop("it does not read what it is sent")).attach(
            self.transport)
        super().connectionMade()
        self._deadline = self.clock.callLater(self.preAuthSeconds, self._drop, "did not authenticate in time")

    def _drop(self, why):
        """Close at once: a peer breaking the limits gets no answer."""
        if self._dropped:
            return
        self._dropped = True
        self.stop_reading()  # nothing more of what is buffered either
        log.warn("internal peer {peer} ({node}) dropped: {why}", peer=self._peer(), node=self.peerNodeId, why=why)
        if self.transport is not None:
            self.transport.abortConnection()

    def _peer(self):
        peer = self.transport.getPeer() if self.transport is not None else None
        return getattr(peer, "host", peer)

    def _authenticated(self, node_id=None):
        self.authenticated = True
        if node_id is not None:
            self.peerNodeId = node_id
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()

    def dataReceived(self, data):
        """Count what a peer sends before authenticating, then read the
        boxes (L{FastAMP.dataReceived}, with L{maxBoxKeys} and
        L{maxBoxBytes})."""
        if self._dropped:
            return
        if not self.authenticated:
            self._received += len(data)
            if self._received > self.preAuthBytes:
                self._drop(f"sent more than {self.preAuthBytes} bytes before authenticating")
                return
        super().dataReceived(data)

    def box_refused(self, why):
        """A box past the bounds, or a key longer than AMP allows: the
        connection is dropped."""
        self._drop(why)

    def ampBoxReceived(self, box):
        if self._dropped:
            return
        if self.peerKind == "node" and self.responder is not None:
            fast = _FAST_RESPONDERS.get(box.get(amp.COMMAND))
            if fast is not None and fast(self, box):
                return
        try:
            super().ampBoxReceived(box)
        except Exception as e:
            # an answer to nothing asked, a box that is no command, ...
            self._drop(f"malformed box ({e.__class__.__name__})")

    def _fast_deliver_many(self, box):
        """L{cmd.DeliverMany}, answered without AMP's command machinery;
        False if the box is not one it can read (the generic way answers)."""
        try:
            msg_ids, datas, usernames = _texts(box[b"msgIds"]), unpack(box[b"datas"]), _texts(box[b"usernames"])
        except (KeyError, ValueError):
            return False
        deliver = self.responder.deliver
        try:
            missing = [
                msg_id.encode("utf-8")
                for msg_id, data, username in zip(msg_ids, datas, usernames)
                if deliver(msg_id, data, [username], False)[1]
            ]
        except Exception:
            self._fast_failed(box)
            return True
        self.answer_box(box, {b"missing": pack(missing)})
        return True

    def _fast_room_deliver(self, box):
        """L{cmd.RoomDeliver}, as L{_fast_deliver_many}."""
        try:
            rooms, seqs = _texts(box[b"roomNames"]), [int(s) for s in unpack(box[b"seqs"])]
            msg_ids, datas = _texts(box[b"msgIds"]), unpack(box[b"datas"])
        except (KeyError, ValueError):
            return False
        try:
            for room, seq, msg_id, data in zip(rooms, seqs, msg_ids, datas):
                self.responder.room_deliver(room, seq, msg_id, data)
        except Exception:
            self._fast_failed(box)
            return True
        self.answer_box(box, {})
        return True

    def _fast_failed(self, box):
        """As AMP answers a command whose responder raised: logged, an
        UNKNOWN error, and the connection closed."""
        log.failure("internal command {name} failed", name=box[amp.COMMAND].decode("ascii", "replace"))
        self.answer_failure(box)

    def callRemote(self, command, **arguments):
        """AMP's, with the boxes of the message-carrying commands made here
        (the same bytes as AMP's)."""
        fast = _FAST_CALLS.get(command)
        if fast is None:
            return super().callRemote(command, **arguments)
        encode, decode = fast
        return self.call_with_box(command, encode(**arguments), decode)

    def unhandledError(self, failure):
        if failure.check(amp.RemoteAmpError):
            # a refused command that asked for no answer (SessionChanged)
            self._drop(f"refused {failure.value.errorCode.decode(errors='replace')}, no answer asked")
            return
        super().unhandledError(failure)

    def connectionLost(self, reason):
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        super().connectionLost(reason)
        if self.onLost is not None:
            self.onLost()

    # -- gatekeeping ------------------------------------------------------

    def locateResponder(self, name):
        if self.authenticated:
            return self._allowed(name)
        if name not in HANDSHAKE:
            log.warn("unauthenticated internal command {name!r} from {peer}; closing", name=name, peer=self._peer())

            def refuse(box):
                return defer.fail(_refusal(b"NOT_AUTHENTICATED", "authenticate first"))

            return refuse
        responder = super().locateResponder(name)

        def guarded(box):
            # a malformed handshake closes the connection, with no traceback
            def malformed(failure):
                if failure.check(amp.RemoteAmpError):
                    return failure
                log.warn("malformed {name!r} from {peer}: {e}", name=name, peer=self._peer(), e=failure.value)
                return defer.fail(_refusal(b"AUTH_FAILED", "malformed handshake"))

            return defer.maybeDeferred(responder, box).addErrback(malformed)

        return guarded

    def _allowed(self, name):
        """The responder of C{name} if the peer's kind may send it."""
        api = name in cmd.API_COMMANDS
        if self.responder is None or api != (self.peerKind == "gateway") or (api and self.api is None):
            log.warn("internal command {name!r} refused to {kind} {node}", name=name, kind=self.peerKind,
                     node=self.peerNodeId)

            def refuse(box):
                return defer.fail(_refusal_soft(b"NOT_ALLOWED", f"{self.peerKind} may not send this command"))

            return refuse
        if api:
            return self.api.locateResponder(name)
        return super().locateResponder(name)

    @cmd.Challenge.responder
    def challenge(self):
        self._nonce = os.urandom(32)
        return {"nonce": self._nonce}

    @cmd.Authenticate.responder
    def authenticate(self, nodeId, nonce, mac):
        expected = self._nonce and client_mac(self.secret, self._nonce, nodeId)
        self._nonce = None
        if self.identity is None or not expected or not hmac.compare_digest(expected, mac):
            log.warn("internal peer {peer} failed authentication", peer=self._peer())
            raise cmd.NotAuthenticated()
        d = defer.ensureDeferred(self.identity.verify(nodeId, self._peer()))

        def admitted(kind):
            if self._dropped:
                raise cmd.NotAuthenticated()
            self.peerKind = kind or "node"
            self._authenticated(nodeId)
            return {"mac": server_mac(self.secret, nonce)}

        return d.addCallback(admitted)

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
        self.peerKind = "node"  # only nodes listen
        self._authenticated()

    # -- cluster commands -------------------------------------------------

    def _call(self, coro):
        def translate(failure):
            raise _translate(failure.value)

        return defer.ensureDeferred(coro).addErrback(translate)

    @cmd.SessionChanged.responder
    def session_changed(self, username, nodeId, sessionId, loginTime, alliance, version, online, multi=False):
        if nodeId != self.peerNodeId:
            log.warn("{peer} announced a session of node {node!r}: refused", peer=self.peerNodeId, node=nodeId)
            raise cmd.WrongNode(nodeId)
        self.responder.session_changed(username, nodeId, sessionId, loginTime, alliance, version, online, bool(multi))
        return {}

    @cmd.Deliver.responder
    def deliver(self, msgId, data, usernames, everyone):
        delivered, missing = self.responder.deliver(msgId, data, usernames, everyone)
        return {"delivered": delivered, "missing": missing}

    @cmd.DeliverMany.responder
    def deliver_many(self, msgIds, datas, usernames):
        missing = [
            msg_id
            for msg_id, data, username in zip(msgIds, datas, usernames)
            if self.responder.deliver(msg_id, data, [username], False)[1]
        ]
        return {"missing": missing}

    @cmd.RoomDeliver.responder
    def room_deliver(self, roomNames, seqs, msgIds, datas):
        for room, seq, msg_id, data in zip(roomNames, seqs, msgIds, datas):
            self.responder.room_deliver(room, seq, msg_id, data)
        return {}

    @cmd.RoomMember.responder
    def room_member(self, roomName, username, joined):
        return self._call(self.responder.room_member(roomName, username, joined)).addCallback(lambda _: {})

    @cmd.RoomNotice.responder
    def room_notice(self, roomName, data, feature=None, skipUser=None, skipSession=None):
        self.responder.room_notice(roomName, data, feature, skipUser, skipSession)
        return {}

    @cmd.UserNotice.responder
    def user_notice(self, username, data, feature, skip):
        self.responder.user_notice(username, data, feature, skip)
        return {}

    @cmd.Disconnect.responder
    def disconnect(self, username):
        return self._call(self.responder.disconnect(username)).addCallback(lambda n: {"sessions": n})

    onLost = None


_FAST_RESPONDERS = {
    cmd.DeliverMany.commandName: InternalProtocol._fast_deliver_many,
    cmd.RoomDeliver.commandName: InternalProtocol._fast_room_deliver,
}

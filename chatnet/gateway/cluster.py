"""The gateway's links to the chat nodes, for the server API (docs/api.md).

With the API enabled the gateway is an authenticated member of the cluster's
internal port, of the kind "gateway": it registers in ZooKeeper
(L{chatnet.cluster.gateways.GatewayRegistration}), learns the nodes'
internal addresses there, and logs in to a node as ``gateway:<id>`` with the
cluster secret, from its registered ``internalHost`` (L{Peers}). The nodes
then answer its C{Api*} commands and nothing else.
"""
import random

from twisted.application import service
from twisted.internet import defer, task
from twisted.logger import Logger
from twisted.protocols import amp

from chatnet.cluster.gateways import GatewayRegistration
from chatnet.cluster.identity import GATEWAY_PREFIX
from chatnet.cluster.peers import Peers
from chatnet.errors import PeerUnavailable
from chatnet.protocols import amp_commands as cmd

log = Logger()

#: nodes one API call tries before it gives up (503)
TRIES = 3


class ClusterUnavailable(Exception):
    """No chat node could be asked."""


class NodeLinks(service.Service):
    """@param reactor: the reactor.
    @param zookeeper: ZooKeeper hosts (with the cluster's chroot).
    @param gateway_id: this gateway's id.
    @param secret: the cluster secret (bytes).
    @param internal_host: the address the links leave from, registered in
        ZooKeeper for the nodes to check.
    @param timeout: seconds an API call may take on a node.
    """

    def __init__(self, reactor, zookeeper, gateway_id, secret, internal_host, zookeeper_auth="", timeout=15.0,
                 tls_options=None):
        self.reactor = reactor
        self.peers = Peers(reactor, GATEWAY_PREFIX + gateway_id, secret, None, timeout=timeout,
                           bind_host=internal_host, tls_options=tls_options)
        self.registration = GatewayRegistration(
            zookeeper, gateway_id, {"internalHost": internal_host}, self.peers.update, reactor,
            auth=zookeeper_auth,
        )
        self._starting = None

    def startService(self):
        super().startService()
        self._starting = defer.ensureDeferred(self._start())

    async def _start(self):
        while self.running:
            try:
                await self.registration.start()
                return
            except Exception as e:
                log.warn("gateway not registered in zookeeper yet: {e}", e=e)
                await self.registration.abandon()
                await task.deferLater(self.reactor, 2.0, lambda: None)

    def stopService(self):
        super().stopService()
        self.peers.close()
        d = defer.ensureDeferred(self.registration.stop())
        return d.addErrback(lambda f: log.warn("leaving zookeeper failed: {e}", e=f.getErrorMessage()))

    async def call(self, command, **arguments):
        """Run C{command} on a live node: another one if a node cannot be
        reached (never after the command may have reached it);
        L{ClusterUnavailable} if none could be asked."""
        nodes = list(self.peers.addresses)
        random.shuffle(nodes)
        for node in nodes[:TRIES]:
            try:
                return await self.peers.call(node, command, **arguments)
            except PeerUnavailable as e:
                if e.__cause__ is not None and not _not_sent(e.__cause__):
                    raise ClusterUnavailable(f"node {node} did not answer in time") from e
                log.warn("node {node} unreachable for the server API", node=node)
        raise ClusterUnavailable("no chat node reachable")


def _not_sent(cause):
    """True if the command certainly did not reach the node (the link was
    refused), so that another node may be asked."""
    return isinstance(cause, cmd.NotAuthenticated) or getattr(cause, "errorCode", None) == b"NOT_AUTHENTICATED"


class NodeRefused(Exception):
    """A node refused an API request: C{code} is the HTTP status the
    gateway answers (400, 404, 409, 503), C{message} what the node said."""

    def __init__(self, code, message):
        super().__init__(code, message)
        self.code = code
        self.message = message


#: the HTTP status of each error a node answers an API command with
_REFUSALS = {
    cmd.BadRequest: 400,
    cmd.NotFound: 404,
    cmd.NoSuchRoom: 404,
    cmd.Conflict: 409,
    cmd.StoreDown: 503,
    # a node that refuses this gateway, or is not the node it was
    cmd.NotAllowed: 503,
    cmd.NotAuthenticated: 503,
}


class ClusterApi:
    """The chat cluster as the server API sees it: one method for each
    thing it asks of a node, with plain values in and out. Failures are
    L{NodeRefused} or L{ClusterUnavailable}; the AMP commands that carry
    them stay here.

    @param links: what runs a command on a live node (L{NodeLinks}).
    """

    def __init__(self, links):
        self.links = links

    async def _call(self, command, **arguments):
        try:
            return await self.links.call(command, **arguments)
        except amp.RemoteAmpError as e:
            code = _REFUSALS.get(type(e))
            if code is None:
                log.warn("a node refused {command}: {e}", command=command.__name__, e=e)
                raise NodeRefused(503, "the chat cluster could not carry out the request, try again")
            raise NodeRefused(code, _description(e))
        except tuple(_REFUSALS) as e:
            code = _REFUSALS[type(e)]
            if code == 503:
                log.warn("a node refused {command}: {e!r}", command=command.__name__, e=e)
            raise NodeRefused(code, _description(e))

    async def post(self, sender, text, room=None, to=None):
        """Post C{text} from C{sender} to C{room} or user C{to}: a dict of
        its C{msgId}, C{seq}, C{ts} and whether it was C{queued}."""
        arguments = {"roomName": room} if room else {"to": to}
        answer = await self._call(cmd.ApiPost, message=text, sender=sender, **arguments)
        return {k: answer[k] for k in ("msgId", "seq", "ts", "queued")}

    async def presence(self, username):
        """C{(online, nodes, onlineFor or None)} of C{username}."""
        answer = await self._call(cmd.ApiPresence, username=username)
        return answer["online"], answer["nodes"], answer.get("onlineFor")

    async def room_presence(self, room):
        """C{(online user names, truncated)} of C{room}."""
        answer = await self._call(cmd.ApiRoomPresence, roomName=room)
        return answer["usernames"], answer["truncated"]

    async def create_user(self, username, password=None, alliance=None):
        arguments = {"username": username}
        if password is not None:
            arguments["password"] = password
        if alliance is not None:
            arguments["alliance"] = alliance
        await self._call(cmd.ApiCreateUser, **arguments)

    async def delete_user(self, username):
        """Delete the account; how many of its sessions were closed."""
        return (await self._call(cmd.ApiDeleteUser, username=username))["sessions"]

    async def disconnect(self, username):
        """Close every session of C{username}; how many there were."""
        return (await self._call(cmd.ApiDisconnect, username=username))["sessions"]

    async def create_room(self, room, private, owner=None):
        arguments = {"roomName": room, "private": private}
        if owner is not None:
            arguments["owner"] = owner
        await self._call(cmd.ApiCreateRoom, **arguments)

    async def delete_room(self, room):
        await self._call(cmd.ApiDeleteRoom, roomName=room)

    async def room_member(self, room, username, member):
        """Make C{username} a member of C{room} or not; whether that changed."""
        return (await self._call(cmd.ApiRoomMember, roomName=room, username=username, member=member))["changed"]


def _description(error):
    """The message a node gave with an AMP error."""
    text = error.args[0] if error.args else ""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return str(text) or "refused"

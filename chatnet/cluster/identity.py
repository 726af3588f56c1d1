"""Which peer may speak as which node on the internal port.

Knowing the cluster secret is not enough: a peer that authenticates as node
X must be a current member X of the ZooKeeper membership, connecting from
the C{internalHost} that X registered there. A node that has just joined
may connect before our membership view lists it: the check waits a little
for the view to catch up, then refuses with L{UnknownNode} (the connecting
node retries).

A gateway that serves the server API authenticates the same way as
C{gateway:<id>}: it must be registered under C{/chatnet/gateways/<id>}
(L{chatnet.cluster.gateways}) and connect from the C{internalHost} it
registered. L{MemberIdentity.verify} says which kind of peer it admitted: a
gateway may then send only the API's commands, a node only the others
(L{chatnet.protocols.internal.InternalProtocol.locateResponder}).
"""
import ipaddress
import socket

from twisted.internet import threads
from twisted.logger import Logger

from chatnet.protocols.amp_commands import NotAuthenticated, UnknownNode

log = Logger()

# seconds to wait for a node id we do not know yet to appear in our view
MEMBERSHIP_WAIT = 2.0

#: the prefix of the id a gateway authenticates with
GATEWAY_PREFIX = "gateway:"
NODE, GATEWAY = "node", "gateway"


def _ip(text):
    """C{text} as an IP address (IPv4-mapped IPv6 as IPv4), or None."""
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if address.version == 6 and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class MemberIdentity:
    """@param members: returns the current membership, node id -> info with
        C{internalHost} (see L{chatnet.cluster.membership}).
    @param membership_changed: C{membership_changed(at_most)} returns a
        Deferred that fires at the next membership change or after
        C{at_most} seconds, whichever comes first.
    @param clock: an L{IReactorTime}.
    @param resolve: C{resolve(hostname)} returns a Deferred of the host's IP
        addresses (strings); by default C{getaddrinfo} in the reactor's
        thread pool.
    @param gateways: returns the registered gateways, gateway id -> info
        with C{internalHost}.
    """

    def __init__(self, members, membership_changed, clock, resolve=None, wait=MEMBERSHIP_WAIT,
                 gateways=lambda: {}):
        self.members = members
        self.gateways = gateways
        self.membership_changed = membership_changed
        self.clock = clock
        self.resolve = resolve or self._getaddrinfo
        self.wait = wait

    async def verify(self, node_id, source):
        """Raise L{UnknownNode} unless C{node_id} is (or becomes, within
        C{wait} seconds) a member, L{NotAuthenticated} unless its
        C{internalHost} is the IP address C{source}. Returns L{NODE}, or
        L{GATEWAY} for C{gateway:<id>} of a registered gateway."""
        kind, known, name = NODE, self.members, node_id
        if node_id.startswith(GATEWAY_PREFIX):
            kind, known, name = GATEWAY, self.gateways, node_id[len(GATEWAY_PREFIX):]
        give_up = self.clock.seconds() + self.wait
        while (info := known().get(name)) is None:
            remaining = give_up - self.clock.seconds()
            if remaining <= 0:
                log.warn("internal peer {source} claims node id {node!r}, not a member", source=source, node=node_id)
                raise UnknownNode(node_id)
            await self.membership_changed(remaining)
        host = str(info.get("internalHost", ""))
        if not await self._is_host(host, source):
            log.warn(
                "internal peer {source} claims node id {node!r}, registered at {host}: refused",
                source=source, node=node_id, host=host,
            )
            raise NotAuthenticated("not connecting from the member's internal host")
        return kind

    async def _is_host(self, host, source):
        source = _ip(source) if isinstance(source, str) else None
        if source is None or not host:
            return False
        literal = _ip(host)
        if literal is not None:
            return literal == source
        try:
            addresses = await self.resolve(host)
        except Exception as e:
            log.warn("cannot resolve the internal host {host}: {e}", host=host, e=e)
            return False
        return source in {_ip(a) for a in addresses}

    def _getaddrinfo(self, host):
        def lookup():
            return [info[4][0] for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)]

        return threads.deferToThreadPool(self.clock, self.clock.getThreadPool(), lookup)

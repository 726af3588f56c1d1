"""Catching a node's users up after the node was out of the cluster.

When a node's ZooKeeper session expires (ZooKeeper paused, a network
partition) the other nodes see it leave: room messages fanned out until they
see it again skip its users, although those stayed connected. The node
cannot tell which messages those were, but it knows when its outage began:
once it is registered again (and a little later, for posts still in flight
then), it reads the recent history of every room its connected users are in
and delivers what they have not had, oldest first. Deliveries are
de-duplicated by message id per user (L{chatnet.cluster.router.RecentDeliveries}),
so what did reach them is not sent twice.
"""
import orjson
from bson import ObjectId
from twisted.logger import Logger

from chatnet.errors import StoreUnavailable
from chatnet.messages import room_channel
from chatnet.protocols.constants import automatic_rooms

log = Logger()

# how far before the outage's start to look (clocks of nodes differ a little)
MARGIN = 2.0


class CatchUp:
    """C{sessions}: the node's L{chatnet.sessions.LocalSessions};
    C{deliver(msgId, data, usernames, everyone)}: local delivery."""

    def __init__(self, sessions, mongo, history, deliver):
        self.sessions = sessions
        self.mongo = mongo
        self.history = history
        self.deliver = deliver

    async def since(self, started):
        """Deliver what the connected users missed of their rooms since
        C{started} (seconds since the epoch); returns how many deliveries."""
        records = [c.record for c in self.sessions if c.record is not None]
        if not records:
            return 0
        members = {}  # room -> usernames connected here
        for record in records:
            for room in automatic_rooms(record.alliance):
                members.setdefault(room, set()).add(record.username)
        try:
            for room, names in (await self.mongo.rooms_of([r.username for r in records])).items():
                members.setdefault(room, set()).update(names)
        except StoreUnavailable:
            log.warn("catching up after an outage: room members unknown (mongodb unavailable), automatic rooms only")
        cutoff = started - MARGIN
        delivered = 0
        for room, names in sorted(members.items()):
            try:
                messages = await self.history.recent(room_channel(room), self.history.keep)
            except StoreUnavailable:
                log.warn("catching up after an outage: history of {room} unavailable", room=room)
                continue
            for data in messages:
                msg_id = data.get("msgId", "")
                if not ObjectId.is_valid(msg_id) or ObjectId(msg_id).generation_time.timestamp() < cutoff:
                    continue
                delivered += self.deliver(msg_id, orjson.dumps(data), sorted(names), False)[0]
        if delivered:
            log.info("caught {n} missed room deliveries up after an outage", n=delivered)
        return delivered

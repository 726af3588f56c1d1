"""The ``export`` event plugin: chat messages to RabbitMQ. It needs ``pika``
(``pip install 'chatnet[export]'``).

``export`` publishes every message the node accepts as one JSON object to an
AMQP 0-9-1 exchange (RabbitMQ), with ``pika``'s Twisted adapter::

    {"msgId", "channel", "roomName", "from", "to", "message", "ts", "format",
     "seq", "nodeId"}

and every edit and deletion of a message made through the node (the
``live`` extension) as::

    {"event": "edited", "msgId", "channel", "roomName", "from", "to", "seq",
     "by", "editedAt", "message", "nodeId"}
    {"event": "deleted", "msgId", "channel", "roomName", "from", "to", "seq",
     "by", "deletedAt", "nodeId"}

(``message``: the new masked text; a deletion carries no text). Their
``{kind}`` in the routing key is ``room.edited``, ``room.deleted``,
``direct.edited`` or ``direct.deleted``, so with the default key a queue
bound to ``chat.room`` or ``chat.*`` gets the messages only and one bound to
``chat.#`` gets the edits and deletions too. They share the messages' buffer,
bound and drop counting.

Delivery is at least once: messages wait in a bounded buffer until the broker
confirms them (publisher confirms); when the connection breaks, the
unconfirmed ones go back to the head of the buffer and are sent again after
the reconnection, so a consumer de-duplicates by ``msgId``. While the broker
is away the buffer fills; when it is full the oldest waiting message is
dropped, counted (``dropped``, and the metric
``chatnet_export_dropped_total``) and logged.

Options (``--plugin export:key=value,...`` or ``CHATNET_PLUGIN_EXPORT_<KEY>``):

``url``
    ``amqp://user:password@host:port/vhost`` (``amqps://`` for TLS);
    default ``amqp://guest:guest@127.0.0.1:5672/%2F``.
``exchange``
    default ``chatnet.domain.messages``; declared durable unless ``declare=no``.
``exchange-type``
    default ``topic``.
``routing-key``
    default ``chat.{kind}``; a template with ``{kind}`` (``room`` or
    ``direct``), ``{room}`` (the room name, ``""`` for direct messages),
    ``{node}`` (the node id).
``buffer``
    most messages kept while the broker is away or slow; default 10000.
``retry-max``
    longest wait between two connection attempts, seconds; default 5.
``declare``
    ``yes`` (default) or ``no``.
"""
from collections import deque
from urllib.parse import urlparse

import orjson
import pika
from pika.adapters.twisted_connection import TwistedProtocolConnection
from twisted.application.internet import ClientService, backoffPolicy
from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.protocol import Factory
from twisted.internet.ssl import optionsForClientTLS
from twisted.logger import Logger
from zope.interface import implementer

from chatnet.ops.events import IChatEventListener

log = Logger()

#: Messages published and not yet confirmed, at most.
WINDOW = 256
#: Seconds between two log lines about dropped messages.
LOG_EVERY = 10.0
DEFAULTS = {
    "url": "amqp://guest:guest@127.0.0.1:5672/%2F",
    "exchange": "chatnet.domain.messages",
    "exchange-type": "topic",
    "routing-key": "chat.{kind}",
    "buffer": "10000",
    "retry-max": "5",
    "declare": "yes",
}
YES = {"yes", "true", "1", "on"}
NO = {"no", "false", "0", "off"}


def message_json(message, node_id):
    """The JSON document exported for a L{chatnet.domain.messages.ChatMessage}
    (with C{"system": true} for a message of the server API)."""
    return orjson.dumps(
        {
            **({"system": True} if message.system else {}),
            "msgId": message.msgId,
            "channel": message.channel,
            "roomName": message.roomName,
            "from": message.sender,
            "to": message.to,
            "message": message.message,
            "ts": message.ts,
            "format": message.format,
            "seq": message.seq,
            "nodeId": node_id,
        }
    )


def revision_json(revision, node_id):
    """The JSON document exported for a L{chatnet.domain.messages.MessageRevision}:
    an edit (C{"event": "edited"}) or a deletion (C{"event": "deleted"})."""
    document = {
        "event": "deleted" if revision.deleted else "edited",
        "msgId": revision.msgId,
        "channel": revision.channel,
        "roomName": revision.roomName,
        "from": revision.sender,
        "to": revision.to,
        "seq": revision.seq,
        "by": revision.by,
    }
    if revision.deleted:
        document["deletedAt"] = revision.at
    else:
        document.update(editedAt=revision.at, message=revision.message)
    document["nodeId"] = node_id
    return orjson.dumps(document)


class _BrokerConnection(TwistedProtocolConnection):
    """pika's protocol, telling the exporter when the connection is lost."""

    def __init__(self, exporter, parameters):
        super().__init__(parameters, custom_reactor=exporter.reactor)
        self.exporter = exporter

    def connectionLost(self, reason):
        self.exporter._connection_lost(self, reason)
        super().connectionLost(reason)


@implementer(IChatEventListener)
class AmqpExport(Service):
    """The ``export`` plugin; see the module docstring.

    @ivar published: messages the broker confirmed.
    @ivar dropped: messages dropped because the buffer was full.
    @ivar connected: whether a channel to the broker is open now.
    """

    name = "export"

    def __init__(self, node, options):
        unknown = set(options) - set(DEFAULTS)
        if unknown:
            raise ValueError(f"export: unknown options {', '.join(sorted(unknown))}; known: {', '.join(DEFAULTS)}")
        opts = dict(DEFAULTS, **options)
        self.node = node
        self.reactor = node.reactor
        self.url = opts["url"]
        parsed = urlparse(self.url)
        if parsed.scheme not in ("amqp", "amqps"):
            raise ValueError(f"export: url must be amqp:// or amqps://, not {self.url!r}")
        self.parameters = pika.URLParameters(self.url)
        self.tls = parsed.scheme == "amqps"
        self.exchange = opts["exchange"]
        self.exchange_type = opts["exchange-type"]
        self.routing_key = opts["routing-key"]
        try:
            self.routing_key.format(kind="room", room="", node="")
            self.capacity = int(opts["buffer"])
            self.retry_max = float(opts["retry-max"])
        except (KeyError, IndexError, ValueError) as e:
            raise ValueError(f"export: bad option: {e}") from None
        if self.capacity < 1 or self.retry_max <= 0:
            raise ValueError("export: buffer and retry-max must be positive")
        if opts["declare"].lower() not in YES | NO:
            raise ValueError("export: declare must be yes or no")
        self.declare = opts["declare"].lower() in YES
        self.buffer = deque()
        self.inflight = {}
        self.published = 0
        self.dropped = 0
        self._unlogged_drops = 0
        self._drop_logged_at = None
        self._tag = 0
        self._generation = 0
        self._channel = None
        self._connection = None
        self._client = None
        self._built = None  # the broker connection made last
        self._drained = []
        metrics = getattr(node, "metrics", None)
        if metrics is not None:
            metrics.track("chatnet_export_published", "Messages the broker confirmed.", lambda: self.published)
            metrics.track("chatnet_export_dropped", "Messages dropped: the export buffer was full.", lambda: self.dropped)
            metrics.track("chatnet_export_buffered", "Messages waiting for the broker.", lambda: self.waiting,
                          kind="gauge")
            metrics.track("chatnet_export_connected", "1 while a channel to the broker is open.",
                          lambda: int(self.connected), kind="gauge")

    # -- state -------------------------------------------------------------

    @property
    def connected(self):
        return self._channel is not None

    @property
    def waiting(self):
        """Messages accepted and not yet confirmed by the broker."""
        return len(self.buffer) + len(self.inflight)

    # -- events ------------------------------------------------------------

    def message_accepted(self, message):
        kind = "room" if message.roomName else "direct"
        self._enqueue(self.routing_key.format(kind=kind, room=message.roomName, node=self.node.node_id),
                      message, message_json)

    def message_edited(self, revision):
        self._revised(revision)

    def message_deleted(self, revision):
        self._revised(revision)

    def _revised(self, revision):
        kind = ("room" if revision.roomName else "direct") + (".deleted" if revision.deleted else ".edited")
        self._enqueue(self.routing_key.format(kind=kind, room=revision.roomName, node=self.node.node_id),
                      revision, revision_json)

    def _enqueue(self, key, item, to_json):
        """Wait for the broker with C{item} (its document made by
        C{to_json}); when the buffer is full, the oldest waiting one is
        dropped for it."""
        if self.waiting >= self.capacity:
            if self.buffer:
                self.buffer.popleft()
                self.buffer.append((key, to_json(item, self.node.node_id)))
            self._dropped()
            return
        self.buffer.append((key, to_json(item, self.node.node_id)))
        self._flush()

    def _dropped(self):
        self.dropped += 1
        now = self.reactor.seconds()
        if self._drop_logged_at is not None and now - self._drop_logged_at < LOG_EVERY:
            self._unlogged_drops += 1
            return
        log.warn(
            "export buffer full ({capacity} messages, broker {state}): dropped {count} messages, {total} in all",
            capacity=self.capacity, state="connected" if self.connected else "unreachable",
            count=self._unlogged_drops + 1, total=self.dropped,
        )
        self._drop_logged_at = now
        self._unlogged_drops = 0

    # -- the connection ----------------------------------------------------

    def startService(self):
        super().startService()
        endpoint = HostnameEndpoint(self.reactor, self.parameters.host, self.parameters.port, timeout=5)
        if self.tls:
            endpoint = wrapClientTLS(optionsForClientTLS(self.parameters.host), endpoint)
        factory = Factory.forProtocol(self._connection_for)
        self._client = ClientService(
            endpoint, factory, retryPolicy=backoffPolicy(initialDelay=0.2, maxDelay=self.retry_max),
            clock=self.reactor, prepareConnection=self._prepare,
        )
        self._client.startService()

    def _connection_for(self):
        self._built = _BrokerConnection(self, self.parameters)
        return self._built

    async def _prepare(self, proxy):
        # ClientService hands over a proxy of the connection; the connection
        # itself (which tells its loss) is the one built last: the service
        # makes one connection at a time
        protocol = self._built
        try:
            await protocol.ready
            channel = await protocol.channel()
            await channel.confirm_delivery()
            if self.declare:
                await channel.exchange_declare(
                    exchange=self.exchange, exchange_type=self.exchange_type, durable=True)
        except Exception as e:
            log.warn("export: broker at {host}:{port} not ready: {e}", host=self.parameters.host,
                     port=self.parameters.port, e=e)
            if protocol.transport is not None:
                protocol.transport.loseConnection()
            raise
        channel.on_closed.addBoth(self._channel_closed, protocol)
        self._connection, self._channel = protocol, channel
        log.info("export: connected to {host}:{port}, exchange {exchange}; {n} messages to send",
                 host=self.parameters.host, port=self.parameters.port, exchange=self.exchange, n=self.waiting)
        self._flush()

    def _channel_closed(self, reason, protocol):
        # the broker closed the channel (an error of ours): start afresh
        if protocol is self._connection and protocol.transport is not None:
            log.warn("export: channel closed by the broker: {why}", why=reason)
            protocol.transport.loseConnection()

    def _connection_lost(self, protocol, reason):
        if protocol is not self._connection:
            return
        self._connection = self._channel = None
        self._generation += 1
        unconfirmed = list(self.inflight.values())
        self.inflight.clear()
        self.buffer.extendleft(reversed(unconfirmed))
        if self.running:
            log.warn("export: lost the broker ({why}); {n} messages wait for the reconnection",
                     why=reason.getErrorMessage(), n=self.waiting)

    # -- publishing ----------------------------------------------------------

    def _flush(self):
        channel = self._channel
        properties = pika.BasicProperties(content_type="application/json", delivery_mode=2)
        while channel is not None and self.buffer and len(self.inflight) < WINDOW:
            item = self.buffer.popleft()
            self._tag += 1
            tag = self._tag
            self.inflight[tag] = item
            key, body = item
            d = channel.basic_publish(self.exchange, key, body, properties)
            d.addCallbacks(self._confirmed, self._refused, (tag, self._generation), None, (tag, self._generation))
        if not self.waiting and self._drained:
            waiting, self._drained = self._drained, []
            for d in waiting:
                d.callback(None)

    def _confirmed(self, _, tag, generation):
        if generation == self._generation and self.inflight.pop(tag, None) is not None:
            self.published += 1
            self._flush()

    def _refused(self, failure, tag, generation):
        if generation != self._generation:
            return
        item = self.inflight.pop(tag, None)
        if item is None:
            return
        # nacked, or the channel closed under it: send it again later
        self.buffer.appendleft(item)
        log.warn("export: the broker did not take a message ({why}); retrying", why=failure.getErrorMessage())
        self.reactor.callLater(0.5, self._flush)

    def drained(self):
        """A Deferred that fires when no message waits for the broker."""
        if not self.waiting:
            return defer.succeed(None)
        d = defer.Deferred()
        self._drained.append(d)
        return d

    @defer.inlineCallbacks
    def stopService(self):
        super().stopService()
        if self.waiting and self.connected:
            try:
                yield self.drained().addTimeout(3, self.reactor)
            except defer.TimeoutError:
                pass
        if self.waiting:
            log.warn("export: {n} messages not exported at shutdown", n=self.waiting)
        connection = self._connection
        if connection is not None and connection.is_open:
            closed = connection.close()  # a clean AMQP close first, then the socket
            if closed is not None:
                try:
                    yield closed.addTimeout(2, self.reactor)
                except Exception:
                    pass
        if self._client is not None:
            yield self._client.stopService()

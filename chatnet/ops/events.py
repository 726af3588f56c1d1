"""Events of a chat node, for plugins.

A node tells its listeners what happens (:class:`IChatEventListener`); a
listener is made by a plugin (:class:`IChatEventListenerFactory`) that is
found with Twisted's plugin system in the package ``chatnet.plugins`` and
enabled per node with ``--plugin NAME[:key=value,key=value...]``.

A listener can never block or break chat: every call is made from the
reactor thread, in order, and

* an exception it raises is logged (at most once per listener every
  :data:`LOG_EVERY` seconds, with the number of failures in between);
* a Deferred (or coroutine) it returns is waited for at most ``timeout``
  seconds, then cancelled; its failure is logged the same way;
* while a listener has ``max_pending`` calls still waiting, further events
  for it are dropped and counted (:attr:`ListenerSlot.dropped`), so a stuck
  listener costs bounded memory.

A listener only has to define the methods of the events it wants; a missing
method is skipped. A listener that also provides
:class:`twisted.application.service.IService` runs as a child service of the
node: started with it, stopped with it (after its clients are gone).
"""
import inspect
import os

from twisted.application.service import IService
from twisted.internet import defer
from twisted.logger import Logger
from twisted.plugin import IPlugin, getPlugins
from twisted.python.reflect import namedAny
from zope.interface import Attribute, Interface, implementer

log = Logger()

#: Seconds between two log lines about the failures of one listener.
LOG_EVERY = 10.0

EVENTS = (
    "user_online",
    "user_offline",
    "message_accepted",
    "message_delivered",
    "message_edited",
    "message_deleted",
    "room_joined",
    "room_left",
    "node_became_leader",
)


class IChatEventListener(Interface):
    """What a chat node tells its plugins. Every method may return None, a
    Deferred or a coroutine; what it fires with is ignored."""

    def user_online(username, nodeId):
        """C{username} logged in on node C{nodeId} (this node)."""

    def user_offline(username, nodeId):
        """C{username} logged out of, or lost its connection to, C{nodeId}."""

    def message_accepted(message):
        """A chat message was accepted on this node and is being stored:
        a L{chatnet.domain.messages.ChatMessage} (C{msgId}, C{sender}, C{message}
        (masked), C{ts}, C{format}, C{to}, C{roomName}, C{seq})."""

    def message_edited(revision):
        """A message was edited through this node and the edit stored: a
        L{chatnet.domain.messages.MessageRevision} (C{msgId}, C{channel},
        C{roomName}, C{sender}, C{to}, C{seq}, C{by}, C{at}, C{message}:
        the new masked text)."""

    def message_deleted(revision):
        """A message was deleted through this node (by its author or a
        room's owner or admin) and the deletion stored: a
        L{chatnet.domain.messages.MessageRevision} with C{message} None."""

    def message_delivered(msgId, count):
        """The message C{msgId} was sent to C{count} (>= 1) connections of
        this node."""

    def room_joined(room, username):
        """C{username} joined the room C{room} through this node."""

    def room_left(room, username):
        """C{username} left the room C{room} through this node."""

    def node_became_leader(nodeId):
        """This node (C{nodeId}) became the cluster leader."""


class IChatEventListenerFactory(Interface):
    """A plugin (in the package C{chatnet.plugins}) that makes listeners."""

    name = Attribute("The name given to --plugin.")
    description = Attribute("One line about what the listener does.")

    def listener(node, options):
        """Make the listener of C{node} (a L{chatnet.node.ChatNode}).

        @param options: C{dict} of str -> str, from the command line and the
            environment (see L{plugin_options}).
        @return: an L{IChatEventListener} provider (possibly an C{IService}).
        @raise ValueError: the options are wrong (the node does not start).
        """


@implementer(IPlugin, IChatEventListenerFactory)
class ChatEventPlugin:
    """A plugin declaration that names its listener by a dotted string, so
    that finding plugins imports nothing heavy::

        export = ChatEventPlugin("export", "chatnet.ops.export.AmqpExport", "...")

    The named callable is called as C{callable(node, options)}.
    """

    def __init__(self, name, factory, description=""):
        self.name = name
        self.factory = factory
        self.description = description

    def listener(self, node, options):
        try:
            factory = namedAny(self.factory)
        except ImportError as e:
            raise ValueError(
                f"plugin {self.name!r} needs a package that is not installed ({e}); "
                f"see the install section of the README (extras)") from None
        return factory(node, options)


def available(package):
    """name -> L{IChatEventListenerFactory} of every plugin found in the
    Twisted plugin package C{package} (C{chatnet.plugins}, given by the
    node and its options: the plugins import this module, not the other
    way round)."""
    found = {}
    for plugin in getPlugins(IChatEventListenerFactory, package):
        found.setdefault(plugin.name, plugin)
    return found


def parse_spec(spec):
    """C{"NAME:key=value,key=value"} -> C{("NAME", {"key": "value", ...})}.

    @raise ValueError: a malformed spec.
    """
    name, _, rest = spec.partition(":")
    name = name.strip()
    if not name:
        raise ValueError(f"--plugin {spec!r}: no plugin name")
    options = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise ValueError(f"--plugin {spec!r}: {item!r} is not key=value")
        options[key.strip()] = value
    return name, options


def plugin_options(name, options, environ=None):
    """The options of plugin C{name}: C{CHATNET_PLUGIN_<NAME>_<KEY>} from the
    environment (C{<KEY>} upper case, C{-} as C{_}; the key seen by the plugin
    is lower case with C{-}), overridden by those of the command line."""
    environ = os.environ if environ is None else environ
    prefix = "CHATNET_PLUGIN_" + name.upper().replace("-", "_") + "_"
    merged = {
        key[len(prefix):].lower().replace("_", "-"): value
        for key, value in environ.items()
        if key.startswith(prefix) and len(key) > len(prefix)
    }
    merged.update(options)
    return merged


def check_specs(specs, package):
    """Raise ValueError unless every spec parses and names a plugin known
    in C{package}."""
    known = available(package)
    for spec in specs:
        name, _ = parse_spec(spec)
        if name not in known:
            raise ValueError(
                f"unknown plugin {name!r}; available: {', '.join(sorted(known)) or 'none'}")


def load(node, specs, bus, package):
    """Make the listeners of C{specs} (the --plugin values, found in the
    plugin package C{package}) for C{node}, add them to C{bus}; those that
    are services become children of C{node}."""
    known = available(package) if specs else {}
    for spec in specs:
        name, options = parse_spec(spec)
        if name not in known:
            raise ValueError(f"unknown plugin {name!r}; available: {', '.join(sorted(known)) or 'none'}")
        listener = known[name].listener(node, plugin_options(name, options))
        if IService.providedBy(listener):
            listener.setServiceParent(node)
        bus.add(listener, name)
        log.info("event plugin {plugin} enabled", plugin=name)


class ListenerSlot:
    """One listener on the bus and its counters."""

    def __init__(self, listener, name):
        self.listener = listener
        self.name = name
        self.pending = 0
        self.calls = 0
        self.failures = 0
        self.dropped = 0
        self.timeouts = 0
        self._unlogged = 0
        self._logged_at = None

    def __repr__(self):
        return f"<ListenerSlot {self.name} pending={self.pending} dropped={self.dropped}>"


class EventBus:
    """Calls the listeners' methods; see the module docstring for the rules.

    @ivar slots: the L{ListenerSlot}s, in the order listeners were added.
    """

    def __init__(self, clock, max_pending=1000, timeout=30.0):
        self.clock = clock
        self.max_pending = max_pending
        self.timeout = timeout
        self.slots = []
        self._methods = {}  # event -> [(slot, method)], of the slots as they are now

    def add(self, listener, name=None):
        slot = ListenerSlot(listener, name or type(listener).__name__)
        self.slots.append(slot)
        self._methods.clear()
        return slot

    @property
    def listeners(self):
        return [slot.listener for slot in self.slots]

    def emit(self, event, *args):
        methods = self._methods.get(event)
        if methods is None:
            methods = self._methods[event] = [
                (slot, method) for slot in self.slots
                for method in [getattr(slot.listener, event, None)] if method is not None
            ]
        for slot, method in methods:
            if slot.pending >= self.max_pending:
                slot.dropped += 1
                self._complain(slot, "event listener {plugin} is {pending} calls behind: "
                               "dropped {event} ({dropped} dropped so far)", event)
                continue
            slot.calls += 1
            try:
                result = method(*args)
            except Exception:
                slot.failures += 1
                self._complain(slot, "event listener {plugin} failed on {event}", event, failure=True)
                continue
            if result is None:
                continue
            if inspect.iscoroutine(result):
                result = defer.ensureDeferred(result)
            if isinstance(result, defer.Deferred):
                self._watch(slot, event, result)

    def _watch(self, slot, event, d):
        if d.called:
            d.addErrback(self._failed, slot, event)
            return
        slot.pending += 1
        d.addTimeout(self.timeout, self.clock)
        d.addErrback(self._failed, slot, event)
        d.addBoth(self._settled, slot)

    def _settled(self, _, slot):
        slot.pending -= 1

    def _failed(self, failure, slot, event):
        slot.failures += 1
        if failure.check(defer.TimeoutError, defer.CancelledError):
            slot.timeouts += 1
            self._complain(slot, "event listener {plugin} took longer than {timeout} s on {event}: "
                           "cancelled", event)
        else:
            self._complain(slot, "event listener {plugin} failed on {event}", event, failure=failure)

    def _complain(self, slot, message, event, failure=None):
        now = self.clock.seconds()
        if slot._logged_at is not None and now - slot._logged_at < LOG_EVERY:
            slot._unlogged += 1
            return
        slot._logged_at = now
        fields = dict(
            plugin=slot.name, event=event, pending=slot.pending, dropped=slot.dropped,
            timeout=self.timeout, unlogged=slot._unlogged,
        )
        if slot._unlogged:
            message += " ({unlogged} more problems not logged)"
        slot._unlogged = 0
        if failure is True:
            log.failure(message, **fields)
        elif failure is not None:
            log.failure(message, failure, **fields)
        else:
            log.warn(message, **fields)

"""Cluster membership and leader election through ZooKeeper (kazoo).

Each node holds two ephemeral znodes for as long as its ZooKeeper session
lives:

* ``/chatnet/nodes/<nodeId>``: JSON with the node's client and internal
  addresses (membership);
* ``/chatnet/election/n_<seq>``: sequential, data = node id; the node of the
  smallest sequence is the leader.

It also reads the gateways that serve the server API (``/chatnet/gateways/<id>``,
registered by L{chatnet.cluster.gateways.GatewayRegistration}): :attr:`gateways`,
gateway id -> info with ``internalHost``, which the internal port's identity
check admits (L{chatnet.cluster.identity}).

kazoo runs its own thread: every watch and state callback is handed to the
reactor with ``callFromThread``, and every blocking kazoo call runs in a
thread with ``deferToThread``. The reactor side sees one thing only: the
``listener`` is called with ``(members, leaderId)`` after every change,
``members`` being node id -> info of every live node. It is also called
after every registration (the first one, and each one after the session was
lost), changed or not: :attr:`registrations` counts them, so the listener can
tell that the cluster may have forgotten this node meanwhile.

Leadership is dropped (the listener sees ``leaderId=None``) as soon as the
session is lost, and also when the connection has been suspended for the
whole session timeout, since by then ZooKeeper may have expired the session
and elected someone else (a partitioned leader must not keep leading).
"""
import orjson
from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import NodeExistsError, NoNodeError
from kazoo.retry import KazooRetry
from twisted.internet import defer, threads
from twisted.logger import Logger

from chatnet.cluster import zkacl

log = Logger()

ROOT = "/chatnet"
NODES = ROOT + "/nodes"
ELECTION = ROOT + "/election"
GATEWAYS = ROOT + "/gateways"


def new_client(hosts, session_timeout, auth):
    """A kazoo client as chatnet's processes use it: reconnecting for ever
    (at most a second apart), commands tried three times, and digest auth
    with ACLs on its znodes when C{auth} is given (L{zkacl})."""
    return KazooClient(
        hosts=hosts,
        timeout=session_timeout,
        connection_retry=KazooRetry(max_tries=-1, delay=0.2, max_delay=1.0),
        command_retry=KazooRetry(max_tries=3, delay=0.1, max_delay=1.0),
        **zkacl.client_options(auth),
    )


def read_children(zk, path):
    """The JSON data of each child of C{path}: name -> data (blocking: run
    it in a thread). A child gone meanwhile, or not JSON, is left out."""
    found = {}
    for child in zk.get_children(path):
        try:
            data, _ = zk.get(f"{path}/{child}")
            found[child] = orjson.loads(data)
        except (NoNodeError, ValueError):
            continue
    return found


class ZooKeeperMembership:
    def __init__(self, hosts, node_id, info, listener, reactor, session_timeout=10.0, auth=""):
        self.hosts = hosts
        self.auth = auth  # "USER:PASSWORD": digest auth, ACLs on our znodes (chatnet.cluster.zkacl)
        self.node_id = node_id
        self.info = dict(info, nodeId=node_id)
        self.listener = listener
        self.reactor = reactor
        self.session_timeout = session_timeout
        self.zk = None
        self.members = {}
        self.gateways = {}
        self._change_waiters = []
        self.leader = None
        self.connected = False
        self.registered = False
        self.registrations = 0
        self._election_path = None
        self._suspended_call = None
        self._refreshing = False
        self._dirty = False
        self._stopping = False
        self._session_lost = False
        self._watching = False
        self._tell = False

    # -- life cycle (reactor thread) -------------------------------------

    async def start(self):
        self.zk = new_client(self.hosts, self.session_timeout, self.auth)
        self.zk.add_listener(self._state_changed)
        await threads.deferToThreadPool(self.reactor, self.reactor.getThreadPool(), self.zk.start, 15)
        self.connected = True
        await self._register()

    async def stop(self):
        """Leave the cluster: delete our znodes, close the session."""
        self._stopping = True
        if self._suspended_call is not None and self._suspended_call.active():
            self._suspended_call.cancel()
        if self.zk is None:
            return
        zk, self.zk = self.zk, None
        node_path, election_path = f"{NODES}/{self.node_id}", self._election_path

        def leave():
            for path in (node_path, election_path):
                if path:
                    try:
                        zk.delete(path)
                    except Exception:
                        pass

        await self._thread(leave)
        # The session itself ends with the process: closing kazoo's sockets
        # while the reactor still runs has been seen to close reactor fds.

    def _thread(self, f, *args, **kwargs):
        return threads.deferToThreadPool(self.reactor, self.reactor.getThreadPool(), f, *args, **kwargs)

    async def _register(self):
        zk = self.zk
        data = orjson.dumps(self.info)

        def register():
            zkacl.ensure_paths(zk, (NODES, ELECTION, GATEWAYS))
            path = f"{NODES}/{self.node_id}"
            try:
                zk.create(path, data, ephemeral=True)
            except NodeExistsError:
                # left by an earlier process with our id whose session has
                # not expired yet: it is dead, we are its successor
                zk.delete(path)
                zk.create(path, data, ephemeral=True)
            for child in zk.get_children(ELECTION):
                try:
                    owner, _ = zk.get(f"{ELECTION}/{child}")
                except NoNodeError:
                    continue
                if owner.decode() == self.node_id:
                    zk.delete(f"{ELECTION}/{child}")
            return zk.create(f"{ELECTION}/n_", self.node_id.encode(), ephemeral=True, sequence=True)

        self._election_path = await self._thread(register)
        self.registered = True
        self.registrations += 1
        self._tell = True
        log.info("registered in zookeeper as {node} ({path})", node=self.node_id, path=self._election_path)
        if not self._watching:
            # kazoo's watches survive a new session by themselves
            self._watching = True
            zk.ChildrenWatch(NODES, self._children_changed)
            zk.ChildrenWatch(ELECTION, self._children_changed)
            zk.ChildrenWatch(GATEWAYS, self._children_changed)
        self.refresh()

    # -- kazoo thread -> reactor -------------------------------------------

    def _children_changed(self, children):
        self.reactor.callFromThread(self.refresh)

    def _state_changed(self, state):
        self.reactor.callFromThread(self._on_state, state)

    # -- reactor thread ----------------------------------------------------

    def _on_state(self, state):
        if self._stopping:
            return
        if state == KazooState.SUSPENDED:
            log.warn("zookeeper connection suspended")
            self.connected = False
            if self._suspended_call is None or not self._suspended_call.active():
                self._suspended_call = self.reactor.callLater(self.session_timeout, self._suspended_too_long)
        elif state == KazooState.LOST:
            log.warn("zookeeper session lost: leaving leadership, will register again")
            self.connected = False
            self.registered = False
            self._session_lost = True
            self._lose_leadership()
        elif state == KazooState.CONNECTED:
            self.connected = True
            if self._suspended_call is not None and self._suspended_call.active():
                self._suspended_call.cancel()
            log.info("zookeeper connected")
            if self._session_lost:
                self._session_lost = False
                d = defer.ensureDeferred(self._register())
                d.addErrback(lambda f: log.failure("registering again failed", f))
            else:
                self.refresh()

    def _suspended_too_long(self):
        log.warn("zookeeper unreachable for the whole session timeout: not leading any more")
        self._lose_leadership()

    def _lose_leadership(self):
        if self.leader == self.node_id:
            self.leader = None
            self.listener(dict(self.members), None)

    def wait_for_change(self, at_most):
        """A Deferred that fires once the members, the leader or the
        gateways changed, or after C{at_most} seconds."""
        d = defer.Deferred()
        self._change_waiters.append(d)
        call = self.reactor.callLater(at_most, lambda: d.called or d.callback(None))
        d.addBoth(lambda r: (call.active() and call.cancel(), r)[1])
        return d

    def refresh(self):
        """Read membership and election anew and tell the listener."""
        if self._refreshing:
            self._dirty = True
            return
        if self.zk is None or not self.registered:
            return
        self._refreshing = True
        zk = self.zk

        def read():
            members = read_children(zk, NODES)
            candidates = []
            for child in zk.get_children(ELECTION):
                try:
                    data, _ = zk.get(f"{ELECTION}/{child}")
                except NoNodeError:
                    continue
                candidates.append((child.rsplit("_", 1)[-1], data.decode()))
            candidates.sort()
            leader = next((node for _, node in candidates if node in members), None)
            return members, leader, read_children(zk, GATEWAYS)

        d = self._thread(read)
        d.addCallbacks(self._read, self._read_failed)

    def _read(self, result):
        self._refreshing = False
        members, leader, gateways = result
        changed = members != self.members or leader != self.leader or self._tell
        self._tell = False
        self.members, self.leader = members, leader
        if changed:
            self.listener(dict(members), leader)
        if changed or gateways != self.gateways:
            self.gateways = gateways
            waiters, self._change_waiters = self._change_waiters, []
            for waiter in waiters:
                if not waiter.called:
                    waiter.callback(None)
        if self._dirty:
            self._dirty = False
            self.refresh()

    def _read_failed(self, failure):
        self._refreshing = False
        log.warn("reading cluster membership failed: {why}", why=failure.getErrorMessage())
        self.reactor.callLater(0.5, self.refresh)

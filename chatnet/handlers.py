"""What each client action means (PROTOCOL.md section 3).

A handler gets the connection and a decoded, type-checked :class:`Request`
and either answers through the connection or raises :class:`ProtocolError`.
"""
import orjson
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from twisted.internet import defer, threads
from twisted.logger import Logger

from chatnet import words
from chatnet.errors import ProtocolError, StoreUnavailable, not_online, unknown_room
from chatnet.messages import ChatMessage, new_message_id, now_ms, room_channel
from chatnet.protocols import amp_commands as cmd
from chatnet.protocols.codec import frame_id
from chatnet.rooms import ALLIANCE_PREFIX, WORLD, automatic_rooms, is_automatic
from chatnet.sessions import SessionRecord

log = Logger()

INTERNAL_ACTIONS = frozenset(
    {"leaderConnect", "syncServers", "serverList", "registerServer", "heartbeat", "deliver", "relay"}
)
MAX_NAME = 128
FORMATS = 32
_hasher = PasswordHasher()


def online_for(login_ms, now_ms_):
    seconds = max(0, (now_ms_ - login_ms) // 1000)
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    return f"{days:02d}d {hours:02d}h {minutes:02d}m {seconds:02d}s"


def check_password(stored_hash, password):
    try:
        return _hasher.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


class ChatHandlers:
    def __init__(self, node):
        self.node = node
        self.config = node.config
        self.known_rooms = set()
        self.actions = {
            "login": self.login,
            "chat": self.chat,
            "joinRoom": self.join_room,
            "leaveRoom": self.leave_room,
            "listRooms": self.list_rooms,
            "userInfo": self.user_info,
            "popular": self.popular,
        }

    async def handle(self, connection, request):
        action = request.action
        handler = self.actions.get(action)
        if handler is None:
            if action in INTERNAL_ACTIONS:
                raise ProtocolError(403, f"{action} is a cluster-internal action, refused on the client port", action)
            raise ProtocolError(400, f"unknown action {action!r}", action[:64])
        if action != "login" and connection.record is None:
            raise ProtocolError(401, "log in first", action)
        await handler(connection, request)

    # -- login ---------------------------------------------------------------

    async def login(self, connection, request):
        username = request.string("username", max_length=MAX_NAME)
        password = request.string("password", required=False)
        if connection.record is not None:
            if connection.record.username == username:
                connection.answer("login", self._login_data(connection.record), request)
                return
            raise ProtocolError(400, "already logged in; open another connection for another user", "login")
        user = await self.node.mongo.find_user(username)
        if user is None:
            raise ProtocolError(401, "unknown user or wrong password", "login")
        stored = user.get("passwordHash")
        if stored:
            if password is None or not await threads.deferToThread(check_password, stored, password):
                raise ProtocolError(401, "unknown user or wrong password", "login")
        elif not self.config.open_login:
            raise ProtocolError(401, "this user has no password and open login is off", "login")
        alliance = user.get("alliance") if isinstance(user.get("alliance"), str) else ""
        if connection.closed:
            return
        record = SessionRecord.new(username, self.node.node_id, now_ms(self.node.reactor), alliance)
        previous_local = self.node.sessions.add(username, connection)
        connection.record = record
        try:
            await self.node.directory.publish(record)
        except StoreUnavailable:
            self.node.sessions.remove(username, connection)
            if previous_local is not None:
                self.node.sessions.add(username, previous_local)
            connection.record = None
            raise
        if previous_local is not None and previous_local is not connection:
            previous_local.replaced()
        self.node.announce(record, True)
        if connection.closed:
            # the client left while we were logging it in
            await connection.logout()
            return
        connection.answer("login", self._login_data(record), request)
        self.node.emit("user_online", username, self.node.node_id)
        log.info("{user} logged in on {node}", user=username, node=self.node.node_id)

    def _login_data(self, record):
        return {"username": record.username, "sessionId": record.sessionId, "nodeId": record.nodeId}

    # -- chat ------------------------------------------------------------------

    async def chat(self, connection, request):
        record = connection.record
        text = request.string("message", max_length=self.config.max_message_chars)
        fmt = request.string("format", required=False, default="text", max_length=FORMATS)
        is_group = request.boolean("isGroup", default=False)
        ts = request.integer("ts")
        room = request.string("roomName", required=False, max_length=MAX_NAME)
        if is_group or room:
            if not room:
                raise ProtocolError(400, "missing field 'roomName'", "chat")
            await self._check_room(record, room)
            to = ""
        else:
            to = request.string("to", max_length=MAX_NAME)
            target = await self.node.directory.lookup(to)
            if target is None:
                raise not_online(to)
        masked = self.node.profanity.mask(text)
        message = ChatMessage(
            new_message_id(), record.username, masked, ts if ts is not None else now_ms(self.node.reactor),
            fmt, to, room or "",
        )
        data = await self._accept(message)
        if room:
            defer.ensureDeferred(self.node.router.room(message, data))
        else:
            defer.ensureDeferred(self.node.router.direct(message, data, target))

    async def _accept(self, message):
        """Accept the message: its seq, history entry and word counts (one
        Redis call, see chatnet.accept), then store it; returns the chat
        frame data (JSON bytes)."""
        data = await self.node.acceptor.accept(message, words.tokenize(message.message))
        self.node.message_log.append(message.document())
        self.node.emit("message_accepted", message)
        return data

    async def _check_room(self, record, room):
        if room == WORLD:
            return
        if room.startswith(ALLIANCE_PREFIX):
            if room != ALLIANCE_PREFIX + record.alliance:
                raise unknown_room(room)
            return
        if room in self.known_rooms:
            return
        if not await self.node.mongo.room_exists(room):
            raise unknown_room(room)
        self.known_rooms.add(room)

    # -- rooms -----------------------------------------------------------------

    async def join_room(self, connection, request):
        room = request.string("roomName", max_length=MAX_NAME)
        username = connection.record.username
        if is_automatic(room) and room not in automatic_rooms(connection.record.alliance):
            raise unknown_room(room, "joinRoom")
        members = await self.node.router.to_leader(
            lambda host: host.join(room, username), cmd.RoomJoin, roomName=room, username=username
        )
        if isinstance(members, dict):
            members = members["members"]
        self.known_rooms.add(room)
        history = await self.node.history.recent(room_channel(room))
        for data in history:
            connection.sendMessage(b'{"id":%d,"action":"chat","data":%s}' % (frame_id(), orjson.dumps(data)))
        connection.answer("joinRoom", {"roomName": room, "members": members}, request)
        self.node.emit("room_joined", room, username)

    async def leave_room(self, connection, request):
        room = request.string("roomName", max_length=MAX_NAME)
        username = connection.record.username
        await self.node.router.to_leader(
            lambda host: host.leave(room, username), cmd.RoomLeave, roomName=room, username=username
        )
        connection.answer("leaveRoom", {"roomName": room}, request)
        self.node.emit("room_left", room, username)

    async def list_rooms(self, connection, request):
        rooms = await self.node.router.to_leader(lambda host: host.list(), cmd.RoomList)
        if isinstance(rooms, dict):
            rooms = orjson.loads(rooms["rooms"])
        connection.answer("listRooms", {"rooms": rooms}, request)

    # -- information -------------------------------------------------------------

    async def user_info(self, connection, request):
        username = request.string("username", max_length=MAX_NAME)
        record = await self.node.directory.lookup(username)
        if record is None:
            raise not_online(username, "userInfo")
        connection.answer(
            "userInfo",
            {
                "username": username,
                "loginTime": record.loginTime,
                "nodeId": record.nodeId,
                "isOnline": True,
                "onlineFor": online_for(record.loginTime, now_ms(self.node.reactor)),
            },
            request,
        )

    async def popular(self, connection, request):
        n = request.integer("n", default=1, minimum=0, maximum=1000) or 1
        connection.answer("popular", {"words": await self.node.popular.top(n)}, request)

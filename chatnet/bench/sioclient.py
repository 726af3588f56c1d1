"""One bench user on one process of a Socket.IO server (``--target
socketio``): the same WebSocket client as the chatnet scenarios'
(`BenchClient`, autobahn), speaking Socket.IO 4 over it
(:mod:`chatnet.bench.socketio`) instead of chatnet's JSON frames.

The chat is chatnet's, as Socket.IO events (bench/peers/socketio/server.js):
``login`` and ``joinRoom`` ask for an ack, which is their answer; ``chat``
asks for none, and its deliveries come as ``chat`` events whose data has the
same ``message`` text; a refusal comes as an ``error`` event
``{code, message, ext}``.
"""

from __future__ import annotations

import itertools
from typing import Any, Optional

from chatnet.bench import socketio
from chatnet.bench.client import BenchClient, BenchError
from chatnet.bench.tracker import Key, parse_message_key


class SocketIOClient(BenchClient):
    """A `BenchClient` whose frames are Socket.IO packets.

    It is open (`connect` goes on to the login) once the server has answered
    the namespace connect (``40``), not at the WebSocket open; it answers the
    server's pings (``2``) with a pong (``3``).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._ack_ids = itertools.count(1)

    # connection -------------------------------------------------------------
    def _opened(self, proto):
        # the WebSocket is open; the session opens with the server's "0{...}"
        self.connected = True
        self.compressed = False

    def _namespace_connected(self):
        if self._open_d is not None and not self._open_d.called:
            self._open_d.callback(None)

    def _write(self, frame: bytes) -> None:
        self.proto.sendMessage(frame, False)

    # frames -------------------------------------------------------------------
    def send(self, action: str, data: dict, fid: Optional[int] = None) -> int:
        """Emit ``action`` asking for an ack (a request); the ack id is returned."""
        if fid is None:
            fid = next(self._ack_ids)
        self._write(socketio.encode_event(action, data, ack_id=fid))
        return fid

    def send_chat(self, key: Key, data: dict) -> None:
        self._write(socketio.encode_event("chat", data))

    def _frame(self, payload: bytes) -> None:
        run = self.run
        ev = socketio.event_of(payload)
        if ev is not None:
            name, data = ev
            if name == "chat":
                if isinstance(data, dict):
                    key = parse_message_key(run.prefix, data.get("message"))
                    if key is not None:
                        self.traffic.on_chat(self, key)
                return
            if name == "error":
                self._error(data if isinstance(data, dict) else {})
            return
        try:
            packet = socketio.decode(payload)
        except socketio.ProtocolError:
            run.count_error("bad-frame")
            return
        if packet.eio == socketio.EIO_PING:
            self._write(socketio.PONG)
        elif packet.eio == socketio.EIO_OPEN:
            self._write(socketio.CONNECT)
        elif packet.eio == socketio.EIO_MESSAGE:
            if packet.sio == socketio.SIO_ACK:
                entry = self.pending.pop(packet.ack_id, None)
                if entry is not None:
                    args = packet.args
                    entry[1].callback(args[0] if args else None)
            elif packet.sio == socketio.SIO_CONNECT:
                self._namespace_connected()
            elif packet.sio == socketio.SIO_CONNECT_ERROR:
                message = packet.data.get("message", "") if isinstance(packet.data, dict) else ""
                run.count_error("connect_error", message)
                if self._open_d is not None and not self._open_d.called:
                    self._open_d.errback(BenchError("connect_error", message))
            elif packet.sio == socketio.SIO_DISCONNECT:
                run.count_error("disconnect", "the server disconnected the socket")
            elif packet.sio == socketio.SIO_EVENT and packet.event == "error":
                args = packet.args
                self._error(args[0] if args and isinstance(args[0], dict) else {})
        elif packet.eio == socketio.EIO_CLOSE:
            self.close()

    def _error(self, data: dict) -> None:
        """An ``error`` event: counted; it fails the pending request of its
        ``ext`` action, if any (a refused chat cannot be told from another)."""
        code: Any = data.get("code")
        self.run.count_error(code, data.get("message"))
        ext = data.get("ext")
        for fid, (action, d) in list(self.pending.items()):
            if action == ext:
                del self.pending[fid]
                d.errback(BenchError(code, data.get("message", ""), ext or ""))
                return

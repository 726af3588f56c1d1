"""chatnet terminal client: urwid on the Twisted reactor.

Usage::

    chatnet-client [--gateway http://127.0.0.1:8888] [--user NAME] [--password PW]
                   [--join ROOM[,ROOM...]] [--log FILE] [--debug-log FILE]

``--debug-log`` gets Twisted's log and a line for every frame sent (``->``)
and received (``<-``), passwords masked.

What is missing on the command line is asked for inside the UI: the user name
first; the login is tried without a password, and a password is asked for when
the node answers 401.  The client asks the gateway for a node (``GET
/server``), connects to it over WebSocket, logs in and keeps the connection up:
when the node goes away it asks the gateway again with backoff, logs in again,
catches up and sends what was typed in the meantime.

The login asks for the protocol extensions ``ack``, ``offline`` and
``resume`` (docs/protocol.md).  Where the node grants them, sent messages are
confirmed by their ``ack`` and those not acked when the connection drops are
sent again; a direct message to a user who is not online is queued by the
node; after a reconnect one ``resume`` request, with the last seq seen per room
and per conversation, brings what was missed (rooms it cannot replay are
joined again for their last 50 messages).  A node that grants nothing gets
the plain protocol: rooms are joined again after a reconnect for their
history, direct messages are confirmed by a ping.

It also asks for ``live``: ``/history`` (or page up with the pane at its top)
shows the 50 messages before the first one shown, ``/edit [n] <words>`` and
``/delete [n]`` change the user's last (or n-th last) message in the current
room, edited messages end with ``(edited)`` and deleted ones read ``(message
deleted)``, edits and deletions by others are noticed, who is typing in the
current room shows in the status bar, an invitation is noticed, and the
unread counts of the login answer and of ``listRooms`` come from the
server's read markers.  Every user is in ``world`` without joining it: it is
the current room until another one is joined.

Screen
------

* the message pane: one line per message or notice, ``HH:MM:SS`` then a mark
  column (``>`` own message, ``~`` history, ``@`` mentions you, ``*`` notice,
  ``!`` error), then ``#room <sender> text`` (no room tag for direct
  messages; ``-> <user> text`` for a direct message you sent);
* the status bar: user, node id, connection state, current room, unread
  counts of the other rooms, who is typing;
* the input line: history with up/down, tab completion of commands, user and
  room names, esc clears it.  Page up/page down scroll the pane (page up at
  its top asks for earlier messages), ctrl-n and
  ctrl-p switch to the next/previous joined room, ctrl-d on an empty line or
  ``/exit`` leaves.

Commands: ``/help`` lists them (``/chat``, ``/msg``, ``/join``, ``/joinRoom``,
``/leave``, ``/room``, ``/rooms``, ``/history``, ``/edit``, ``/delete``,
``/create``, ``/invite``, ``/kick``, ``/ban``, ``/mute``, ``/role``,
``/stats``, ``/popular``, ``/whoami``,
``/reconnect``, ``/help``, ``/exit``).  A line that does not start with ``/``
goes to the current room; ``//text`` sends ``/text``.

Transcript (``--log FILE``)
---------------------------

The file is created (truncated) at start and written in UTF-8, one line per
event, flushed at once, so that a script can wait for lines.  Every line starts
with the local time ``[HH:MM:SS]`` (the message's ``ts`` for chat lines, the
local clock otherwise) and one space::

    [12:01:02] <user2> hello                  direct message received
    [12:01:02] -> <user2> hello               direct message you sent
    [12:01:02] #room1 <user2> hi              room message (your own ones too)
    [12:01:02] (history) #room1 <user2> hi    replayed when joining a room
    [12:01:02] *** reconnected to node2       notice or command output
    [12:01:02] !!! user bob is not on line (404)   error

Notices a script may wait for: ``*** connected to <node> as <user>``,
``*** joined #<room> (<n> members)`` (``*** rejoined #<room>`` after a
reconnect), ``*** reconnected to <node>``, ``*** queued (not connected): ...``,
``*** queued for <user> (offline)``, ``*** caught up: <n> missed messages``
(before ``reconnected``), ``*** <n> messages received while you were
offline`` (``; <m> older ones were dropped``),
``*** <user>: online 00d 01h 02m 03s on node <node>`` (``/stats``; ``on nodes <a>, <b>`` for a user online on several).
Errors: ``!!! disconnected: <reason>``, ``!!! usage: ...``,
``!!! not sent: ...``.  A newline inside a message
is written as the two characters ``\\n``; other control characters as ``?``.

Structure
---------

The client is this package; ``clients/urwid_client.py`` and ``python -m
chatnet.client`` run :func:`chatnet.client.app.main` (the ``chatnet-client``
script).  Names the client shares with the server (extensions, automatic
rooms, close codes, the ``onlineFor`` format) come from
:mod:`chatnet.protocols.constants`.

* :mod:`~chatnet.client.commands`: :func:`parse_command` turns an input line
  into a :class:`Command` or a :class:`UsageError`, with no side effect; help
  and the text of ``/stats``, ``/popular`` and ``/rooms`` answers.
* :mod:`~chatnet.client.connection`: :class:`ChatConnection`, the session
  (state, login, catching up after a reconnect, errors).  It composes
  :class:`~chatnet.client.transport.Link` (gateway lookup, WebSocket connect,
  reconnect with backoff on ``clock.callLater``),
  :class:`~chatnet.client.requests.Requests` (request ids, pending requests,
  acks, what is sent again), :class:`~chatnet.client.outgoing.Outgoing` (what
  is sent now or queued), :class:`~chatnet.client.resume.ResumeTracker` (last
  seqs, the resume request), :class:`~chatnet.client.membership.Membership`
  (rooms and joins) and :class:`~chatnet.client.inbox.Inbox` (chat frames,
  de-duplicated by ``msgId``).  It talks to the network only through two
  injected callables, ``lookup()`` (a Deferred firing with the gateway's
  answer) and ``connector(url, attempt)``, and reports to a
  :class:`~chatnet.client.listener.ConnectionListener`.
* :mod:`~chatnet.client.app`: :class:`ChatApp` is the listener and owns the
  urwid widgets (:mod:`~chatnet.client.widgets`); typed commands go to
  :class:`~chatnet.client.dispatch.CommandDispatcher`; ``main``.

Nothing here imports urwid but ``widgets`` and ``app``.
"""

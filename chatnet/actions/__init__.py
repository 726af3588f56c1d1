"""What each client action means (docs/protocol.md, "What a client can ask"),
one module per family of actions:

  - L{login<chatnet.actions.login>}: C{login} (and what was queued while
    the user was offline);
  - L{resume<chatnet.actions.resume>}: C{resume};
  - L{chat<chatnet.actions.chat>}: C{chat};
  - L{rooms<chatnet.actions.rooms>}: C{joinRoom}, C{leaveRoom},
    C{listRooms}, C{createRoom};
  - L{moderation<chatnet.actions.moderation>}: C{invite}, C{kick},
    C{ban}, C{mute}, C{setRole} (the rules are L{chatnet.domain.moderation}'s);
  - L{queries<chatnet.actions.queries>}: C{userInfo}, C{popular};
  - L{live<chatnet.actions.live>}: the C{live} extension's C{history},
    C{edit}, C{delete}, C{typing}, C{read}, and
    L{liverooms<chatnet.actions.liverooms>}, what it adds to the others.

They share L{access<chatnet.actions.access>} (who may use a room) and
L{limits<chatnet.actions.limits>}. An action gets the connection and a
decoded, type-checked request and either answers through the connection or
raises L{chatnet.errors.ProtocolError}. L{ClientActions} is the table the
WebSocket protocol hands every request to; L{build} makes it.
"""
from chatnet.actions.dispatch import ClientActions
from chatnet.actions.wiring import LiveParts, build

__all__ = ["ClientActions", "LiveParts", "build"]

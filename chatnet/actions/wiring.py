"""How the client actions of a node are put together: L{build} makes each
action family with its collaborators, the table of actions, and the steps
the ``live`` extension adds after base actions. L{chatnet.node} and the
in-process tests build them through it, so both wire them the same way."""
from dataclasses import dataclass
from typing import Any

from chatnet.actions.access import RoomAccess
from chatnet.actions.chat import ChatActions
from chatnet.actions.dispatch import ClientActions, then
from chatnet.actions.extras import NO_EXTRAS
from chatnet.actions.live import LiveActions
from chatnet.actions.liverooms import LiveRooms
from chatnet.actions.login import LoginActions
from chatnet.actions.moderation import ModerationActions
from chatnet.actions.queries import QueryActions
from chatnet.actions.resume import ResumeActions
from chatnet.actions.rooms import RoomActions
from chatnet.actions.typinggate import TypingGate


@dataclass(frozen=True)
class LiveParts:
    """What the C{live} extension uses besides the base actions' parts:

    @ivar redis: the L{chatnet.stores.redis.RedisStore} (channels' last seqs).
    @ivar mongo: the L{chatnet.stores.mongo.MongoStore} (rooms).
    @ivar state: the L{chatnet.stores.livestate.LiveState}.
    @ivar scrollback: the L{chatnet.service.scrollback.Scrollback}.
    @ivar revisions: the L{chatnet.service.revisions.Revisions}.
    @ivar notices: the L{chatnet.service.notices.UserNotices}.
    @ivar profanity: the L{chatnet.text.profanity.ProfanityFilter} (edits).
    """

    redis: Any
    mongo: Any
    state: Any
    scrollback: Any
    revisions: Any
    notices: Any
    profanity: Any


def build(*, config, clock, view, mongo, offline, history, popular, directory, sessions, presence, rooms, feed,
          delivery, posting, login_throttle, budget, tokens=None, room_state=None, emit=lambda event, *args: None,
          live=None):
    """The L{ClientActions} of a node: every action of docs/protocol.md, and
    those of the C{live} extension if C{live} (a L{LiveParts}) is given.

    The parts are those of L{chatnet.node.ChatNode._wire}: C{posting} the
    L{chatnet.service.posting.Posting}, C{login_throttle} the
    L{chatnet.limits.login_throttle.LoginThrottle}, C{budget} the
    L{chatnet.limits.budget.ByteBudget}; the others as the action families
    (L{LoginActions}, ...) name them."""
    access = RoomAccess(mongo, clock)
    live_rooms = None
    if live is not None:
        live_rooms = LiveRooms(redis=live.redis, mongo=live.mongo, live=live.state, rooms=rooms, directory=directory,
                               notices=live.notices, background=posting.background)
    extras = live_rooms if live_rooms is not None else NO_EXTRAS
    families = {
        "login": LoginActions(config=config, clock=clock, view=view, mongo=mongo, offline=offline,
                              directory=directory, sessions=sessions, presence=presence, feed=feed,
                              delivery=delivery, login_throttle=login_throttle, tokens=tokens,
                              room_state=room_state, extras=extras, emit=emit),
        "resume": ResumeActions(mongo=mongo, history=history, access=access),
        "chat": ChatActions(config=config, clock=clock, mongo=mongo, directory=directory, posting=posting,
                            delivery=delivery, access=access, room_state=room_state),
        "rooms": RoomActions(mongo=mongo, rooms=rooms, history=history, directory=directory, extras=extras,
                             emit=emit),
        "moderation": ModerationActions(clock=clock, mongo=mongo, rooms=rooms, room_state=room_state, emit=emit),
        "queries": QueryActions(clock=clock, directory=directory, popular=popular),
    }
    f = families
    actions = {
        "login": f["login"].login,
        "resume": f["resume"].resume,
        "chat": f["chat"].chat,
        "joinRoom": f["rooms"].join_room,
        "leaveRoom": f["rooms"].leave_room,
        "listRooms": f["rooms"].list_rooms,
        "createRoom": f["rooms"].create_room,
        "invite": f["moderation"].invite,
        "kick": f["moderation"].kick,
        "ban": f["moderation"].ban,
        "mute": f["moderation"].mute,
        "setRole": f["moderation"].set_role,
        "userInfo": f["queries"].user_info,
        "popular": f["queries"].popular,
    }
    if live is not None:
        families["live"] = f["live"] = LiveActions(
            config=config, clock=clock, redis=live.redis, mongo=live.mongo, live=live.state,
            scrollback=live.scrollback, revisions=live.revisions, notices=live.notices, rooms=rooms,
            directory=directory, profanity=live.profanity, access=access, typing_gate=TypingGate(clock),
            background=posting.background, emit=emit)
        families["liveRooms"] = live_rooms
        actions.update(history=f["live"].history, edit=f["live"].edit, delete=f["live"].delete,
                       typing=f["live"].typing, read=f["live"].read)
        # after the base action, if it succeeded
        for name, step in (("invite", live_rooms.invited), ("joinRoom", live_rooms.joined),
                           ("createRoom", live_rooms.created), ("leaveRoom", live_rooms.members_changed),
                           ("kick", live_rooms.members_changed), ("ban", live_rooms.members_changed)):
            actions[name] = then(actions[name], step)
    return ClientActions(actions, budget, families)

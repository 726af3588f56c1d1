"""The ``eventlog`` event plugin: every event of the node to the log."""
from twisted.logger import Logger
from zope.interface import implementer

from chatnet.ops.events import IChatEventListener


@implementer(IChatEventListener)
class EventLog:
    """The ``eventlog`` plugin: one structured log line per event. No options."""

    def __init__(self, node, options):
        if options:
            raise ValueError(f"eventlog takes no options, got {', '.join(options)}")
        self.log = Logger(namespace="chatnet.ops.events")

    def user_online(self, username, nodeId):
        self.log.info("event user_online {username} on {nodeId}", chat_event="user_online",
                      username=username, nodeId=nodeId)

    def user_offline(self, username, nodeId):
        self.log.info("event user_offline {username} on {nodeId}", chat_event="user_offline",
                      username=username, nodeId=nodeId)

    def message_accepted(self, message):
        self.log.info("event message_accepted {msgId} from {sender} on {channel!r}", chat_event="message_accepted",
                      msgId=message.msgId, sender=message.sender, channel=message.channel, seq=message.seq)

    def message_edited(self, revision):
        self.log.info("event message_edited {msgId} by {by} on {channel!r}", chat_event="message_edited",
                      msgId=revision.msgId, by=revision.by, channel=revision.channel, seq=revision.seq)

    def message_deleted(self, revision):
        self.log.info("event message_deleted {msgId} by {by} on {channel!r}", chat_event="message_deleted",
                      msgId=revision.msgId, by=revision.by, channel=revision.channel, seq=revision.seq)

    def message_delivered(self, msgId, count):
        self.log.info("event message_delivered {msgId} to {count}", chat_event="message_delivered",
                      msgId=msgId, count=count)

    def room_joined(self, room, username):
        self.log.info("event room_joined {room} by {username}", chat_event="room_joined", room=room, username=username)

    def room_left(self, room, username):
        self.log.info("event room_left {room} by {username}", chat_event="room_left", room=room, username=username)

    def node_became_leader(self, nodeId):
        self.log.info("event node_became_leader {nodeId}", chat_event="node_became_leader", nodeId=nodeId)

"""The event plugins shipped with chatnet; kept to declarations so that finding
plugins stays fast."""
from chatnet.ops.events import ChatEventPlugin

export = ChatEventPlugin(
    "export",
    "chatnet.ops.export.AmqpExport",
    "Publish every accepted chat message as JSON to a RabbitMQ (AMQP 0-9-1) exchange.",
)

eventlog = ChatEventPlugin(
    "eventlog",
    "chatnet.ops.eventlog.EventLog",
    "Log every event of the node (one structured log line each).",
)

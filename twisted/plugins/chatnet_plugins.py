"""twistd plugins: ``twistd chatnode`` and ``twistd chatgateway``.

Kept to a few lines: the service modules are named as strings so that
``twistd --help`` does not import the whole application.
"""
from twisted.application.service import ServiceMaker

chatnode = ServiceMaker(
    "chatnet chat node",
    "chatnet.tap_node",
    "A chat node: WebSocket clients, ZooKeeper membership, AMP between nodes.",
    "chatnode",
)

chatgateway = ServiceMaker(
    "chatnet gateway",
    "chatnet.gateway.tap",
    "The HTTP gateway that hands each client a live chat node.",
    "chatgateway",
)

"""What a node carries for operating it: its metrics, its event bus with the
plugins of ``--plugin``, and the ``--metrics`` listener. Called once from
L{chatnet.node.ChatNode.__init__}."""
from chatnet import events, metrics


def attach(node, gauges):
    """Give C{node} C{.metrics} (L{metrics.NodeMetrics} reading C{gauges},
    also the first event listener) and C{.events} (L{events.EventBus}); make
    the listeners of C{node.config.plugins} (a plugin is given the node:
    its C{config}, C{reactor}, C{node_id}, C{metrics}); serve
    C{node.config.metrics} if set."""
    config = node.config
    node.events = events.EventBus(
        node.reactor, max_pending=getattr(config, "plugin_max_pending", 1000),
        timeout=getattr(config, "plugin_timeout", 30.0))
    node.metrics = metrics.NodeMetrics(gauges, node.redis, node.mongo, node.message_log, node.events, node.reactor)
    node.events.add(node.metrics, "metrics")
    events.load(node, getattr(config, "plugins", ()), node.events)
    if getattr(config, "metrics", ""):
        metrics.service(config.metrics, node.metrics).setServiceParent(node)


def check_options(options):
    """The checks of the node's operating options (plugins, TLS, log format);
    raises UsageError."""
    from twisted.python import usage

    from chatnet import logs, tls

    if options["log-format"] not in logs.FORMATS:
        raise usage.UsageError(f"--log-format must be one of {', '.join(logs.FORMATS)}")
    if tls.is_tls_endpoint(options["internal"]) and not options["internal-ca"]:
        raise usage.UsageError("an ssl: --internal endpoint needs --internal-ca (the peers' trust root)")
    if options["internal-ca"]:
        try:
            tls.load_trust_root(options["internal-ca"])
        except (OSError, ValueError) as e:
            raise usage.UsageError(f"--internal-ca: {e}")
    try:
        events.check_specs(options["plugin"])
    except ValueError as e:
        raise usage.UsageError(str(e))

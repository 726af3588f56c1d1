"""The checks of a node's operating options (plugins, TLS, log format),
made before anything starts (L{chatnet.tap_node})."""
from chatnet.ops import events


def check_options(options, plugins):
    """The checks of the node's operating options (plugins, found in the
    plugin package C{plugins}; TLS; log format); raises UsageError."""
    from twisted.python import usage

    from chatnet.ops import logs, tls

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
        events.check_specs(options["plugin"], plugins)
    except ValueError as e:
        raise usage.UsageError(str(e))

"""Event-listener plugins of the chat node (see chatnet.ops.events).

Twisted's plugin system looks for modules here, and in every ``chatnet/plugins``
directory without an ``__init__.py`` found on ``sys.path``: a third party can
ship its plugin as such a drop-in module without touching chatnet.
"""
from twisted.plugin import pluginPackagePaths

__path__.extend(pluginPackagePaths(__name__))  # noqa: F821
__all__ = []

"""A library's private parts are used only in chatnet/adapters (one module or
package per library, pinned, with its differential test): read from the
source, every attribute chatnet reads or sets and every method it overrides
outside the adapters is checked against the private names the libraries
define; and each of these libraries is pinned to the releases the
adapter's tests cover."""
import ast
import configparser
import importlib
import importlib.util
import inspect
import pkgutil
import sys
from functools import lru_cache
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.requirements import Requirement

import chatnet
from chatnet.adapters import autobahn as autobahn_adapter, twisted as twisted_adapters, txredisapi as txredisapi_adapter

ROOT = Path(chatnet.__file__).resolve().parent
LIBRARIES = ("twisted", "autobahn", "txredisapi", "txmongo", "kazoo", "pika", "txaio")

#: names without a leading underscore that are internal state of a library
#: object all the same (undocumented attributes of autobahn's protocol, of
#: Twisted's TCP transport, of txredisapi's pool)
UNDOCUMENTED = frozenset({
    "current_frame", "inside_message", "message_data", "message_is_binary", "send_queue", "failedByMe",
    "autoPingTimeoutCall", "autoPingPendingCall", "payloadHybi", "processData", "onFrameBegin",
    "onFrameData", "onFrameEnd", "dataBuffer", "connectionQueue", "script_hashes", "tryConvertData",
})
#: the modules of the library objects chatnet is handed without importing
#: their module (transports, the HTTP channel's request)
HANDLED = ("twisted.internet.abstract", "twisted.internet.tcp", "twisted.protocols.tls", "twisted.web.http",
           "twisted.web.server", "twisted.protocols.amp", "autobahn.websocket.protocol", "txredisapi")
#: private names a library's metaclass sets on chatnet's classes (AMP's
#: table of a locator's responders)
SET_BY_THE_LIBRARY = frozenset({"_commandDispatch"})


def private(name):
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def defined(tree):
    """The private names a module defines: functions, classes, attributes
    and variables it assigns, arguments."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
    return {name for name in names if private(name)}


def chatnet_modules():
    """Every chatnet module outside the adapters, imported (but those of the
    terminal client's screen: urwid asks the system its processor name at
    import, with a child process; they use none of these libraries)."""
    for info in pkgutil.walk_packages(chatnet.__path__, "chatnet."):
        if info.name.startswith("chatnet.adapters") or info.name.endswith("__main__"):
            continue
        spec = importlib.util.find_spec(info.name)
        if spec.origin and "import urwid" in Path(spec.origin).read_text(encoding="utf-8"):
            continue
        yield importlib.import_module(info.name)


@lru_cache(maxsize=None)
def library_private_names():
    """The private names defined by the library modules chatnet imports and
    by those of the library classes its classes derive from."""
    names = set()
    wanted = set(HANDLED)
    for name in HANDLED:
        importlib.import_module(name)
    for module in chatnet_modules():
        for value in vars(module).values():
            owner = getattr(value, "__module__", None) if not inspect.ismodule(value) else value.__name__
            if owner and owner.split(".")[0] in LIBRARIES:
                wanted.add(owner)
            if inspect.isclass(value):
                wanted.update(base.__module__ for base in value.__mro__ if base.__module__.split(".")[0] in LIBRARIES)
    for name in wanted:
        path = getattr(sys.modules.get(name), "__file__", None)
        if not path or not path.endswith(".py"):
            continue
        names |= defined(ast.parse(Path(path).read_text("utf-8", "replace")))
    return names


def modules():
    """(path, tree) of every chatnet module outside the adapters."""
    for path in sorted(ROOT.rglob("*.py")):
        if path.relative_to(ROOT).parts[0] == "adapters":
            continue
        yield path, ast.parse(path.read_text(encoding="utf-8"))


def test_no_library_private_attribute_is_used_outside_the_adapters():
    theirs = library_private_names()
    ours = set()
    trees = list(modules())
    for _, tree in trees:
        ours |= defined(tree)
    uses = []
    for path, tree in trees:
        for node in ast.walk(tree):
            if not isinstance(node, ast.Attribute):
                continue
            name = node.attr
            if (private(name) and name in theirs and name not in ours) or name in UNDOCUMENTED:
                uses.append(f"{path.relative_to(ROOT.parent)}:{node.lineno} .{name}")
            elif name == "socket" and isinstance(node.value, ast.Attribute) and node.value.attr == "transport":
                uses.append(f"{path.relative_to(ROOT.parent)}:{node.lineno} transport.socket")
    assert not uses, "\n".join(uses)


def test_no_class_outside_the_adapters_overrides_a_library_private_method():
    overrides = []
    for module in chatnet_modules():
        for cls in vars(module).values():
            if not inspect.isclass(cls) or cls.__module__ != module.__name__:
                continue
            library_bases = [base for base in cls.__mro__[1:] if base.__module__.split(".")[0] in LIBRARIES]
            for name in vars(cls):
                if name in SET_BY_THE_LIBRARY:
                    continue
                if (private(name) or name in UNDOCUMENTED) and any(name in vars(base) for base in library_bases):
                    overrides.append(f"{cls.__module__}.{cls.__qualname__}.{name}")
    assert not overrides, "\n".join(overrides)


@pytest.mark.parametrize("adapter", [autobahn_adapter, twisted_adapters, txredisapi_adapter],
                         ids=lambda module: module.__name__)
def test_each_library_with_private_parts_used_is_pinned_to_a_release_its_tests_cover(adapter):
    requirement = Requirement(adapter.PIN)
    assert requirement.name == adapter.__name__.rsplit(".", 1)[1]
    assert version(requirement.name) in requirement.specifier
    setup = configparser.ConfigParser()
    setup.read(ROOT.parent / "setup.cfg")
    assert adapter.PIN in setup["options"]["install_requires"].split()


def test_the_checks_read_something():
    theirs = library_private_names()
    assert {"_perMessageCompress", "_sendBoxCommand", "_tempDataBuffer", "_handlingRequest"} <= theirs

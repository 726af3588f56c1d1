"""The shape of the package: the `chatnet/` root holds a few modules, and
no package imports one that imports it back (docs/design.md, "Modules: who
calls whom"), read from the imports of the source."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "chatnet"


def package_of(module):
    """``chatnet.service.posting`` -> ``service``; a root module is its own."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "chatnet"


def imports():
    """(importing package, imported package, file) for every chatnet import."""
    for path in ROOT.rglob("*.py"):
        module = ".".join(path.relative_to(ROOT.parent).with_suffix("").parts).removesuffix(".__init__")
        source = package_of(module)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("chatnet"):
                names = ["chatnet." + a.name for a in node.names] if node.module == "chatnet" else [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names if a.name.startswith("chatnet")]
            else:
                continue
            for name in names:
                target = package_of(name)
                if target != source:
                    yield source, target, path.name


def test_the_root_keeps_at_most_a_dozen_modules():
    modules = sorted(p.name for p in ROOT.glob("*.py"))
    assert len(modules) <= 12, modules


def test_no_package_imports_one_that_imports_it_back():
    edges = {}
    for source, target, _ in imports():
        edges.setdefault(source, set()).add(target)

    def reaches(start, goal):
        seen, todo = set(), [start]
        while todo:
            package = todo.pop()
            for nxt in edges.get(package, ()):
                if nxt == goal:
                    return True
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return False

    cycles = sorted((a, b) for a in edges for b in edges[a] if reaches(b, a))
    assert not cycles, cycles


def test_the_reader_sees_the_imports():
    # the check above reads something: the node imports the packages it wires
    assert {"actions", "cluster", "service", "stores"} <= {t for s, t, _ in imports() if s == "node"}


def test_amp_commands_stay_in_the_cluster_layer():
    # docs/design.md: AMP commands are used only by cluster/, protocols/internal
    # and the gateway's link module; the others speak domain values
    allowed = {"cluster", "protocols", "adapters"}
    users = set()
    for path in ROOT.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        if "amp_commands" in text or "twisted.protocols.amp" in text or "from twisted.protocols import amp" in text:
            users.add(path.relative_to(ROOT).as_posix())
    outside = {p for p in users if p.split("/")[0] not in allowed} - {"gateway/cluster.py"}
    assert not outside, sorted(outside)
    assert "protocols/internal.py" in users  # the check reads something

"""CPU time of the chat node processes during a run, from ``/proc/<pid>/stat``
(utime + stime), and what it comes to per message and per delivery.

The pids come from ``--node-pids`` (``node1=PID,node2=PID`` or bare PIDs),
from a run-cluster directory (``--cluster-dir``: its ``pids.json``, read as
plain JSON), or, for nodes on this host, from the process listening on each
node's port. No I/O but reading /proc and that one file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, Optional

try:
    _TICKS = os.sysconf("SC_CLK_TCK")
except (AttributeError, ValueError, OSError):  # pragma: no cover - not Linux
    _TICKS = 100

#: the name of the process list a run-cluster directory keeps
CLUSTER_FILE = "pids.json"
#: the stores of a run-cluster directory whose CPU a run reports too
STORES = ("redis", "mongo")


def proc_cpu_seconds(pid: int) -> Optional[float]:
    """utime + stime of ``pid`` in seconds, or ``None`` when it cannot be read."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    # the command name (field 2) is in parentheses and may hold spaces
    fields = stat[stat.rfind(")") + 2:].split()
    try:
        return (int(fields[11]) + int(fields[12])) / _TICKS
    except (IndexError, ValueError):
        return None


def parse_node_pids(text: str) -> Dict[str, int]:
    """``node1=123,node2=456`` (or ``123,456``, named ``pid123``...) as a dict."""
    pids: Dict[str, int] = {}
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        name, sep, pid = part.rpartition("=")
        if not sep:
            name, pid = "", part
        try:
            value = int(pid)
        except ValueError:
            raise ValueError(f"not a pid: {part!r} (use NAME=PID or PID)") from None
        if value <= 0:
            raise ValueError(f"not a pid: {part!r}")
        pids[name.strip() or f"pid{value}"] = value
    return pids


def read_cluster_dir(directory: str) -> Dict[str, Any]:
    """What a run-cluster directory tells: ``gateway``, ``mongo`` (URLs, or
    ``None``), ``node_pids`` (``{nodeId: pid}`` of the chat nodes, or of the
    entries with ``"role": "node"``), ``store_pids`` (``{"redis": pid,
    "mongo": pid}``), and for a peer's directory (``python -m bench.peer``)
    ``nodes`` (the servers' WebSocket URLs; ``[]`` if none), ``target``
    (``"socketio"``; ``None`` if not said) and ``ca`` (the certificate of a
    cluster started with ``--tls``; ``None`` if none)."""
    path = Path(directory) / CLUSTER_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"no cluster in {directory} (no {CLUSTER_FILE}): is it running?") from None
    except ValueError as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from None
    node_pids, store_pids = {}, {}
    for entry in data.get("processes") or ():
        if not isinstance(entry, dict) or not isinstance(entry.get("pid"), int):
            continue
        cmd = entry.get("cmdline") or []
        name = str(entry.get("name") or "")
        if (any(str(a) == "chatnode" for a in cmd) or name.startswith("node")
                or entry.get("role") == "node"):
            node_pids[name or f"pid{entry['pid']}"] = entry["pid"]
        elif name in STORES:
            store_pids[name] = entry["pid"]
    nodes = data.get("nodes")
    nodes = [str(u) for u in nodes] if isinstance(nodes, list) else []
    target = data.get("target") if data.get("target") in ("chatnet", "socketio") else None
    return {"gateway": data.get("gateway"), "mongo": data.get("mongo"), "node_pids": node_pids,
            "store_pids": store_pids, "nodes": nodes, "target": target, "ca": data.get("ca")}


class NodeCpu:
    """The CPU seconds of named processes between `start` and `stop`.

    @param pids: ``{name: pid}``; empty means nothing is measured.
    @param read: reads one pid's CPU seconds (``proc_cpu_seconds``; a test
        passes its own).
    """

    def __init__(self, pids: Dict[str, int], read=proc_cpu_seconds):
        self.pids = dict(pids)
        self._read = read
        self._before: Dict[str, Optional[float]] = {}
        self._after: Dict[str, Optional[float]] = {}

    def _snapshot(self) -> Dict[str, Optional[float]]:
        return {name: self._read(pid) for name, pid in self.pids.items()}

    def start(self) -> None:
        self._before = self._snapshot()
        self._after = {}

    def stop(self) -> None:
        if self._before and not self._after:
            self._after = self._snapshot()

    def seconds(self) -> Dict[str, float]:
        """``{name: CPU seconds}`` of the processes readable at both ends."""
        out = {}
        for name, before in self._before.items():
            after = self._after.get(name)
            if before is not None and after is not None:
                out[name] = round(after - before, 3)
        return out

    def figures(self, messages: int, deliveries: int) -> Dict[str, Any]:
        """The result fields: per-node seconds, their total, busiest/mean, and
        microseconds per message and per delivery (``None`` when unmeasured)."""
        secs = self.seconds()
        r: Dict[str, Any] = {
            "node_cpu_s": dict(sorted(secs.items())) if secs else None,
            "node_cpu_total_s": None,
            "node_cpu_busiest_over_mean": None,
            "node_cpu_us_per_msg": None,
            "node_cpu_us_per_delivery": None,
        }
        if not secs:
            return r
        total = sum(secs.values())
        r["node_cpu_total_s"] = round(total, 3)
        mean = total / len(secs)
        if mean > 0:
            r["node_cpu_busiest_over_mean"] = round(max(secs.values()) / mean, 3)
        if messages > 0:
            r["node_cpu_us_per_msg"] = round(total * 1e6 / messages, 1)
        if deliveries > 0:
            r["node_cpu_us_per_delivery"] = round(total * 1e6 / deliveries, 1)
        return r


def store_figures(cpu: NodeCpu, messages: int) -> Dict[str, Any]:
    """The stores' CPU during the run (``store_cpu_s``) and per message
    sent (``store_cpu_us_per_msg``), from a `NodeCpu` of the store pids."""
    secs = cpu.seconds()
    if not secs:
        return {}
    per_msg = {name: round(s * 1e6 / messages, 1) for name, s in secs.items()} if messages > 0 else None
    return {"store_cpu_s": dict(sorted(secs.items())), "store_cpu_us_per_msg": per_msg}

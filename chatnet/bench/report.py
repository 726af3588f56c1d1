"""What a run prints: the result dict (one JSON line) and its short human
form."""

from __future__ import annotations

from typing import Any, Dict

#: keys every result line carries (``None`` where a scenario has no value)
RESULT_KEYS = (
    "scenario",
    "sent",
    "delivered",
    "lost",
    "duplicated",
    "msgs_per_s",
    "p50_ms",
    "p99_ms",
    "seconds",
)


def empty_result(scenario: str) -> Dict[str, Any]:
    """A result with every key of `RESULT_KEYS`, all ``None`` but the scenario."""
    r: Dict[str, Any] = {k: None for k in RESULT_KEYS}
    r["scenario"] = scenario
    return r


def human_summary(r: Dict[str, Any]) -> str:
    lines = [f"scenario     {r.get('scenario')}"]
    if r.get("target") and r["target"] != "chatnet":
        lines.append(f"target       {r['target']}")
    for k in ("sent", "delivered", "lost", "duplicated", "reordered", "msgs_per_s",
              "room_msgs_per_s", "deliveries_per_s", "p50_ms", "p99_ms", "seconds",
              "rss_per_conn_kb", "node_cpu_s", "node_cpu_busiest_over_mean",
              "node_cpu_us_per_msg", "node_cpu_us_per_delivery", "store_cpu_us_per_msg",
              "bench_cpu_s", "error"):
        if r.get(k) is not None:
            lines.append(f"{k:<12} {r[k]}")
    if r.get("rooms_with_loss"):
        lines.append(f"{'rooms_with_loss':<12} {r['rooms_with_loss']} of {r.get('rooms')}")
    if r.get("worst"):
        lines.append(f"worst shapes of {r.get('chars')}-character messages ({r.get('shapes_tried')} tried), "
                     "CPU ms per message (mask and word cutting, cold caches):")
        for entry in (*r["worst"], *(r.get("known") or ())):
            lines.append(f"  {entry['cpu_ms']:>8.3f} ms {entry['steps']:>7} steps  {entry['shape']}")
    for n in r.get("notes") or ():
        lines.append(f"note         {n}")
    return "\n".join(lines)

"""The load generator for a chatnet cluster (console script ``chatnet-bench``,
or ``python -m chatnet.bench``; install the ``bench`` extra).

It speaks the client wire protocol (docs/protocol.md) to any cluster, given
either the gateway URL (``--gateway``) or the chat nodes' WebSocket URLs
(``--nodes``), and runs one scenario (:mod:`chatnet.bench.scenarios`):

``direct``
    ``--pairs`` sender/receiver pairs, sender and receiver of a pair on
    different nodes, each sender keeping ``--window`` messages in flight (a
    message is in flight until its receiver has it).
``room``
    ``--members`` members of one room spread over the nodes, the first
    ``--senders`` of them sending; a room sender keeps ``--window`` messages in
    flight, measured by its own echo.
``rooms``
    ``--rooms`` rooms of ``--room-size`` members, all spread over the nodes,
    one sender per room; loss, duplicates and the order of each room's seqs
    per member, per room and overall.
``connections``
    ``--clients`` idle logged-in clients on one node; reports the node's
    resident memory per connection.
``filter``
    the profanity filter alone (:mod:`chatnet.bench.filter_bench`), no cluster
    needed.

Every run prints one JSON line on stdout with at least ``sent``,
``delivered``, ``lost``, ``duplicated``, ``msgs_per_s``, ``p50_ms``,
``p99_ms``, ``seconds`` and ``command``.

Latency is send-to-receive, both ends read from ``time.perf_counter()`` in this
process (:mod:`chatnet.bench.tracker` keeps the accounts).

The server's per-connection rate limit must be off for the traffic scenarios
(start the nodes with ``--rate-limit 0``); an error 429 is reported with a hint.

Python use (:mod:`chatnet.bench.cli`): ``run(argv) -> dict`` (starts and stops
the reactor, or falls back to a subprocess when the reactor cannot be started
again), or ``run_async(argv) -> Deferred[dict]`` inside a running reactor.

Traffic scenarios report the CPU seconds of each node process during the
run (:mod:`chatnet.bench.cpu`; pids from ``--node-pids``, ``--cluster-dir``
or the local listeners of the nodes' ports) and the CPU per message.

``--target socketio`` drives the Socket.IO peer (bench/peers/socketio/)
with the same scenarios and client; ``chatnet-bench compare`` runs both
systems, alternating (:mod:`chatnet.bench.compare`).

The modules: ``options`` (command line), ``targets`` (nodes, local processes,
bench users), ``cpu`` (node CPU time), ``client`` (one WebSocket user), ``run`` (a run's clients,
notes and result), ``traffic`` (senders and their windows), ``progress``,
``tracker``, ``report``, ``scenarios``, ``cli``, ``socketio`` (the Socket.IO
framing), ``sioclient`` (one Socket.IO user), ``compare``.
"""

"""What storing a message costs the MongoDB server, and how many messages a
second it can store at all: the ceiling of any chatnet run that stores every
message, whatever the nodes do.

    python -m bench.store_ceiling --mongo mongodb://HOST:PORT/ --pid PID [--seconds 8]

``--pid`` is the MongoDB server's process (SecantusDB's Python process, or
``mongod``), whose CPU (user + system, ``/proc/PID/stat``) is read before
and after each measure. Every measure writes chat messages as the nodes'
write-behind log does (``insert_many``, unordered, ``j: true``; the
documents of ``chatnet.domain.messages.ChatMessage.document``) into a
collection of its own in the database ``chatnet_store_ceiling``, which it
drops at the end:

* ``batch``: one writer, batches of 1 to 400 documents, into a collection
  with the indexes of ``messages`` (``(channel, seq)``, ``(channel, ts)``):
  the server's CPU per batch and per document;
* ``indexes``: batches of 20 with only the ``_id`` index, and with both
  indexes but ``j: false``: what the indexes and the journal cost;
* ``ceiling``: three writers at once (as three nodes), batches of 50 and
  200, for ``--seconds``: documents stored per second and the server's CPU
  meanwhile (1.0 = one core).

Prints one JSON line per measure. The server must be otherwise idle.
"""
import argparse
import json
import threading
import time

import pymongo
from bson import ObjectId
from pymongo.write_concern import WriteConcern

from chatnet.domain.messages import ChatMessage, new_message_id

DATABASE = "chatnet_store_ceiling"
TICKS = 100  # clock ticks a second (/proc/PID/stat)


def server_cpu(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def documents(writer, start, count):
    return [
        ChatMessage(new_message_id(), f"user{writer}", f"bench:1:{writer}:{n}", int(time.time() * 1000),
                    to=f"user{writer + 1}", seq=n).document()
        for n in range(start, start + count)
    ]


def fresh(db, name, indexes=True):
    db[name].drop()
    if indexes:
        db[name].create_index([("channel", 1), ("seq", 1)])
        db[name].create_index([("channel", 1), ("ts", 1)])
    return db[name]


def one_writer(coll, pid, batches, size, journal=True):
    coll = coll.with_options(write_concern=WriteConcern(w=1, j=journal))
    time.sleep(0.3)
    before = server_cpu(pid)
    for b in range(batches):
        coll.insert_many(documents(0, b * size, size), ordered=False)
    time.sleep(0.3)  # what the server finishes after its answer
    used = server_cpu(pid) - before
    return {"batch": size, "batches": batches, "journal": journal,
            "server_ms_per_batch": round(used / batches * 1e3, 2),
            "server_us_per_document": round(used / (batches * size) * 1e6, 1)}


def ceiling(coll, pid, size, seconds, writers=3):
    coll = coll.with_options(write_concern=WriteConcern(w=1, j=True))
    stored = [0] * writers

    def write(k):
        end, n = time.monotonic() + seconds, 0
        while time.monotonic() < end:
            coll.insert_many(documents(k, n, size), ordered=False)
            n += size
            stored[k] = n

    before, t0 = server_cpu(pid), time.monotonic()
    threads = [threading.Thread(target=write, args=(k,)) for k in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    used = server_cpu(pid) - before
    total = sum(stored)
    return {"writers": writers, "batch": size, "seconds": round(elapsed, 2),
            "documents_per_s": round(total / elapsed), "server_cores": round(used / elapsed, 2),
            "server_us_per_document": round(used / total * 1e6, 1)}


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.store_ceiling", description=__doc__.split("\n\n")[0])
    p.add_argument("--mongo", required=True, help="the server's URL")
    p.add_argument("--pid", type=int, required=True, help="the server's process id")
    p.add_argument("--seconds", type=float, default=8.0, help="length of each ceiling measure")
    opts = p.parse_args(argv)
    db = pymongo.MongoClient(opts.mongo)[DATABASE]
    try:
        for size, batches in ((1, 400), (5, 200), (20, 100), (100, 30), (400, 8)):
            print(json.dumps({"measure": "batch", **one_writer(fresh(db, "batch"), opts.pid, batches, size)}),
                  flush=True)
        print(json.dumps({"measure": "indexes", "indexes": "_id only",
                          **one_writer(fresh(db, "bare", indexes=False), opts.pid, 100, 20)}), flush=True)
        print(json.dumps({"measure": "indexes", "indexes": "both",
                          **one_writer(fresh(db, "nojournal"), opts.pid, 100, 20, journal=False)}), flush=True)
        for size in (50, 200):
            print(json.dumps({"measure": "ceiling", **ceiling(fresh(db, "ceiling"), opts.pid, size, opts.seconds)}),
                  flush=True)
    finally:
        db.client.drop_database(DATABASE)


if __name__ == "__main__":
    main()

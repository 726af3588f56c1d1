"""``chatnet-seed``: demo users, rooms and indexes, idempotently.

Creates users ``user1..userN`` (no password; a few alliances), rooms
``room1..roomN`` and the indexes chatnet relies on. ``--password-for
NAME=PW`` sets (argon2-hashed) passwords; the clear text is never stored.
Running it again changes nothing but the passwords it is given.
"""
import argparse
import socket
import sys
from urllib.parse import urlparse

import pymongo
from argon2 import PasswordHasher

from chatnet.stores.mongo import parse_mongo_url
from chatnet.stores.redis_url import check_redis_url, is_sentinel_url, parse_redis_url, parse_sentinel_url

ALLIANCES = ("red", "blue", "green")


def alliance_of(i):
    """Demo users: three in four belong to an alliance."""
    return ALLIANCES[i % len(ALLIANCES)] if i % 4 else ""


def seed(mongo_url, users=99, rooms=9, passwords=(), timeout_ms=10000):
    client = pymongo.MongoClient(mongo_url, serverSelectionTimeoutMS=timeout_ms)
    db = client[parse_mongo_url(mongo_url)]
    db.users.create_index([("username", 1)], unique=True)
    db.rooms.create_index([("roomName", 1)], unique=True)
    db.messages.create_index([("channel", 1), ("seq", 1)])
    db.messages.create_index([("channel", 1), ("ts", 1)])
    db.offline.create_index([("to", 1), ("_id", 1)])
    for i in range(1, users + 1):
        doc = {"username": f"user{i}"}
        alliance = alliance_of(i)
        if alliance:
            doc["alliance"] = alliance
        db.users.update_one({"username": doc["username"]}, {"$setOnInsert": doc}, upsert=True)
    for i in range(1, rooms + 1):
        db.rooms.update_one(
            {"roomName": f"room{i}"}, {"$setOnInsert": {"roomName": f"room{i}", "members": []}}, upsert=True
        )
    hasher = PasswordHasher()
    for name, password in passwords:
        db.users.update_one(
            {"username": name},
            {"$set": {"passwordHash": hasher.hash(password)}, "$setOnInsert": {"username": name}},
            upsert=True,
        )
    client.close()


def check_redis(url, timeout=5.0):
    """Check that the Redis of C{url} answers PING; for a C{redis+sentinel://}
    URL, the master that the first answering sentinel names."""
    if is_sentinel_url(url):
        host, port = master_address(url, timeout)
    else:
        host, port, _ = parse_redis_url(url)
    if _command((host, port), timeout, "PING") != "PONG":
        raise RuntimeError(f"redis at {host}:{port} ({url}) did not answer PING")


def master_address(url, timeout=5.0):
    """(host, port) of the master of a C{redis+sentinel://} URL."""
    sentinels, name, _ = parse_sentinel_url(url)
    why = []
    for address in sentinels:
        try:
            reply = _command(address, timeout, "SENTINEL", "get-master-addr-by-name", name)
        except (OSError, RuntimeError) as e:
            why.append(f"{address[0]}:{address[1]}: {e}")
            continue
        if reply:
            return reply[0].decode(), int(reply[1])
        why.append(f"{address[0]}:{address[1]}: does not know {name}")
    raise RuntimeError(f"no sentinel names the master {name}: {'; '.join(why)}")


def _command(address, timeout, *args):
    """Send one command, return its reply (a blocking client, used at start-up only)."""
    request = b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a.encode()), a.encode()) for a in args)
    with socket.create_connection(address, timeout=timeout) as s:
        s.sendall(request)
        return _reply(s.makefile("rb"))


def _reply(f):
    line = f.readline()
    if not line.endswith(b"\r\n"):
        raise RuntimeError("the connection closed before a whole reply")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RuntimeError(rest.decode(errors="replace"))
    if kind == b":":
        return int(rest)
    if kind == b"$":
        return None if int(rest) < 0 else f.read(int(rest) + 2)[:-2]
    if kind == b"*":
        return None if int(rest) < 0 else [_reply(f) for _ in range(int(rest))]
    raise RuntimeError(f"not a Redis reply: {line[:40]!r}")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="chatnet-seed", description=__doc__.splitlines()[0])
    parser.add_argument("--mongo", default="mongodb://127.0.0.1:27017/chat")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0",
                        help="checked to answer first: redis://host:port/db or "
                        "redis+sentinel://host:port,host:port/mastername/db")
    parser.add_argument("--users", type=int, default=99)
    parser.add_argument("--rooms", type=int, default=9)
    parser.add_argument("--password-for", action="append", default=[], metavar="NAME=PW")
    args = parser.parse_args(argv)
    passwords = []
    for item in args.password_for:
        name, sep, password = item.partition("=")
        if not sep or not name or not password:
            parser.error(f"--password-for wants NAME=PW, not {item!r}")
        passwords.append((name, password))
    if urlparse(args.redis).scheme:
        try:
            check_redis_url(args.redis)
        except ValueError as e:
            parser.error(str(e))
        try:
            check_redis(args.redis)
        except (OSError, RuntimeError) as e:
            parser.exit(1, f"chatnet-seed: redis at {args.redis} does not answer: {e}\n")
    seed(args.mongo, args.users, args.rooms, passwords)
    print(f"seeded {args.users} users, {args.rooms} rooms in {args.mongo}", file=sys.stderr)


if __name__ == "__main__":
    main()

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
from chatnet.stores.redis import parse_redis_url

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
    host, port, _ = parse_redis_url(url)
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(b"PING\r\n")
        if not s.recv(64).startswith(b"+PONG"):
            raise RuntimeError(f"redis at {url} did not answer PING")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="chatnet-seed", description=__doc__.splitlines()[0])
    parser.add_argument("--mongo", default="mongodb://127.0.0.1:27017/chat")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
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
        check_redis(args.redis)
    seed(args.mongo, args.users, args.rooms, passwords)
    print(f"seeded {args.users} users, {args.rooms} rooms in {args.mongo}", file=sys.stderr)


if __name__ == "__main__":
    main()

"""ZooKeeper digest authentication and the ACL of chatnet's znodes.

With credentials (``--zookeeper-auth USER:PASSWORD``) the node's kazoo
client authenticates with the ``digest`` scheme, and every znode chatnet
creates gets the ACL of L{acl}: that identity may do everything, anybody
else may only read (membership is no secret: node ids and addresses; what
matters is that nobody else can register, delete or rewrite a member, or
join the election). The parent of chatnet's znodes (a chroot the operator
created) may keep an open ACL. chatnet's own paths that already exist with
another ACL (made before credentials were set) are given this one, where
ZooKeeper lets us.
"""
from kazoo.exceptions import NoAuthError
from kazoo.security import ACL, Id, Permissions, make_digest_acl
from twisted.logger import Logger

log = Logger()

WORLD_READ = ACL(Permissions.READ, Id("world", "anyone"))


def acl(user, password):
    return [make_digest_acl(user, password, all=True), WORLD_READ]


def client_options(auth):
    """Keyword arguments of C{KazooClient} for credentials C{auth}
    (C{"USER:PASSWORD"}; none for C{""})."""
    if not auth:
        return {}
    user, _, password = auth.partition(":")
    return {"auth_data": [("digest", f"{user}:{password}")], "default_acl": acl(user, password)}


def ensure_paths(zk, paths):
    """Create C{paths} and their parents (blocking: run in a thread) with the
    client's default ACL, and give that ACL to those of C{paths} and their
    parents below the root of chatnet (the first component) that exist with
    another one."""
    for path in paths:
        zk.ensure_path(path)
    wanted = zk.default_acl
    if not wanted:
        return
    owned = set()
    for path in paths:
        parts = path.strip("/").split("/")
        owned.update("/" + "/".join(parts[:i]) for i in range(1, len(parts) + 1))
    for path in sorted(owned):
        current, _ = zk.get_acls(path)
        if set(current) != set(wanted):
            try:
                zk.set_acls(path, wanted)
                log.info("znode {path} now has chatnet's ACL", path=path)
            except NoAuthError:
                log.warn("znode {path} has an ACL chatnet may not change: {acl}", path=path, acl=current)

"""Token login: JSON Web Tokens that an application mints for its users
(docs/protocol.md, "Token login").

A node started with ``--jwt-secret`` takes HS256 tokens signed with that
secret, one started with ``--jwt-public-key`` RS256 (an RSA key) or ES256 (an
EC P-256 key) tokens signed with the matching private key; with both, both.
A token is good for user U when its signature verifies with the key of the
algorithm its header names (no other algorithm, never ``none``), it has an
``exp`` still in the future by the node's clock and its ``sub`` is U. An
optional ``alliance`` claim, a non-empty string, names the user's alliance.
A token issued (``iat``) no later than the second its user was deleted, or
without ``iat`` for a user deleted once, is refused by the login
(L{chatnet.actions.login}): deleting a user ends every token issued before.

Verification is done on the reactor: it takes about 0.03 ms (HS256), 0.05 ms
(RS256, 2048 bits) and 0.12 ms (ES256) on a 2-core test machine, far less
than an argon2 password check (which goes to a thread).
"""
from dataclasses import dataclass

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from chatnet.domain.names import name_problem

#: the shortest HS256 secret taken (RFC 7518 3.2: at least the hash's size)
MIN_SECRET_BYTES = 32
#: the longest alliance name a token may carry
MAX_ALLIANCE = 64


@dataclass(frozen=True)
class TokenClaims:
    """What a good token says about its user."""

    username: str
    alliance: str | None  # None: the token names none
    issued_at: float | None = None  # "iat" (s), None: the token has none

    def issued_after(self, ms):
        """Whether the token was issued after C{ms} (epoch ms): its C{iat}
        is in a later second (a token without C{iat} never is)."""
        return self.issued_at is not None and self.issued_at * 1000 >= (ms // 1000 + 1) * 1000


def load_public_key(path):
    """The public key of the PEM file C{path} and its algorithm: C{("RS256",
    key)} for an RSA key, C{("ES256", key)} for an EC P-256 key.

    @raise ValueError: the file cannot be read or holds no such key.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ValueError(f"cannot read {path}: {e.strerror}")
    try:
        key = load_pem_public_key(data)
    except ValueError:
        raise ValueError(f"{path} holds no PEM public key")
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < 2048:
            raise ValueError(f"{path}: an RSA key of at least 2048 bits is needed")
        return "RS256", key
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return "ES256", key
    raise ValueError(f"{path}: only RSA (RS256) and EC P-256 (ES256) keys are taken")


def check_secret(secret):
    """@raise ValueError: C{secret} is too short for HS256."""
    if len(secret.encode()) < MIN_SECRET_BYTES:
        raise ValueError(f"an HS256 secret must have at least {MIN_SECRET_BYTES} bytes")


class TokenVerifier:
    """Checks login tokens.

    @param keys: algorithm name -> the key that verifies it (C{"HS256"}: the
        secret as bytes; C{"RS256"}/C{"ES256"}: a public key).
    @param clock: an C{IReactorTime}: C{exp} is checked against its time.
    """

    def __init__(self, keys, clock):
        self.keys = dict(keys)
        self.clock = clock

    @classmethod
    def from_config(cls, config, clock):
        """The verifier of a L{chatnet.config.NodeConfig}, or None if it
        takes no tokens."""
        keys = {}
        if config.jwt_secret:
            keys["HS256"] = config.jwt_secret.encode()
        if config.jwt_public_key:
            algorithm, key = load_public_key(config.jwt_public_key)
            keys[algorithm] = key
        return cls(keys, clock) if keys else None

    def verify(self, token, username):
        """The L{TokenClaims} of C{token} if it is good for C{username},
        else None (whatever is wrong with it)."""
        if not isinstance(token, str):
            return None
        try:
            algorithm = jwt.get_unverified_header(token).get("alg")
            key = self.keys.get(algorithm) if isinstance(algorithm, str) else None
            if key is None:
                return None
            claims = jwt.decode(
                token, key, algorithms=[algorithm],
                # exp is checked below, against the node's clock
                options={"require": ["exp", "sub"], "verify_exp": False},
            )
        except (jwt.PyJWTError, ValueError, TypeError):
            return None
        exp, sub, alliance, iat = claims.get("exp"), claims.get("sub"), claims.get("alliance"), claims.get("iat")
        if isinstance(exp, bool) or not isinstance(exp, (int, float)) or exp <= self.clock.seconds():
            return None
        if sub != username:
            return None
        if alliance is not None and not (isinstance(alliance, str) and 0 < len(alliance) <= MAX_ALLIANCE
                                         and name_problem(alliance) is None):
            return None
        if isinstance(iat, bool) or not isinstance(iat, (int, float, type(None))):
            return None
        return TokenClaims(username, alliance, iat)

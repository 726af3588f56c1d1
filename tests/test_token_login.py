"""Token login (chatnet.service.tokens, docs/protocol.md "Token login"): the verifier
on its own, the options of twistd chatnode, and the login in-process on
the real stores (the node of tests/test_handlers_inprocess.py)."""
import pytest
import pytest_twisted
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from twisted.internet.task import Clock

from chatnet.actions import build
from tests.inprocess import error_code, request
from tests.test_handlers_inprocess import mongo_url, node  # noqa: F401  (fixtures)

jwt = pytest.importorskip("jwt")

from chatnet.service.tokens import TokenVerifier, load_public_key  # noqa: E402  (needs PyJWT)

NOW = 1_700_000_000
SECRET = "s" * 32
RSA_KEY = rsa.generate_private_key(65537, 2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def pem(public_key):
    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def mint(sub="user1", exp=NOW + 60, key=SECRET, algorithm="HS256", **claims):
    payload = {"sub": sub, **claims}
    if exp is not None:
        payload["exp"] = exp
    return jwt.encode(payload, key, algorithm=algorithm)


def verifier(**keys):
    clock = Clock()
    clock.advance(NOW)
    return TokenVerifier(keys or {"HS256": SECRET.encode()}, clock)


# -- the verifier --------------------------------------------------------------


def test_good_tokens_of_each_algorithm():
    v = verifier(HS256=SECRET.encode(), RS256=RSA_KEY.public_key())
    assert v.verify(mint(), "user1").username == "user1"
    assert v.verify(mint(key=RSA_KEY, algorithm="RS256", alliance="red"), "user1").alliance == "red"
    v = verifier(ES256=EC_KEY.public_key())
    claims = v.verify(mint(key=EC_KEY, algorithm="ES256"), "user1")
    assert claims.username == "user1" and claims.alliance is None


@pytest.mark.parametrize("token", [
    mint(exp=NOW - 1),  # expired
    mint(exp=NOW),
    mint(exp=None),  # no exp
    mint(exp="tomorrow"),
    mint(sub="user2"),  # another user's
    mint(sub=None),
    mint(key="t" * 32),  # another secret
    mint(alliance=""),
    mint(alliance=["red"]),
    mint(key=EC_KEY, algorithm="ES256"),  # an algorithm this node does not take
    jwt.encode({"sub": "user1", "exp": NOW + 60}, None, algorithm="none"),
    "garbage",
    "a.b.c",
    "",
])
def test_bad_tokens(token):
    assert verifier().verify(token, "user1") is None


def test_a_public_key_is_no_hmac_secret():
    """An HS256 token signed with the RSA public key (key confusion) is refused."""
    import base64
    import hashlib
    import hmac

    def part(data):
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    signed = part(b'{"alg":"HS256","typ":"JWT"}') + b"." + part(b'{"sub":"user1","exp":%d}' % (NOW + 60))
    signature = hmac.new(pem(RSA_KEY.public_key()), signed, hashlib.sha256).digest()
    forged = (signed + b"." + part(signature)).decode()
    assert verifier(RS256=RSA_KEY.public_key()).verify(forged, "user1") is None
    assert verifier(HS256=pem(RSA_KEY.public_key())).verify(forged, "user1") is None


def test_key_files(tmp_path):
    path = tmp_path / "ec.pem"
    path.write_bytes(pem(EC_KEY.public_key()))
    assert load_public_key(str(path))[0] == "ES256"
    path.write_bytes(pem(RSA_KEY.public_key()))
    assert load_public_key(str(path))[0] == "RS256"
    for content in (b"nonsense", pem(ec.generate_private_key(ec.SECP384R1()).public_key())):
        path.write_bytes(content)
        with pytest.raises(ValueError):
            load_public_key(str(path))
    with pytest.raises(ValueError):
        load_public_key(str(tmp_path / "missing.pem"))


# -- login, in-process ---------------------------------------------------------


@pytest.fixture
def tokens(node):  # noqa: F811
    verifier = TokenVerifier({"HS256": SECRET.encode(), "RS256": RSA_KEY.public_key()}, node.clock)
    node.handlers = build(**node.parts, tokens=verifier)
    return node


@pytest_twisted.ensureDeferred
async def test_token_login_of_a_known_user(tokens):
    client = tokens.connect()
    frames = await request(tokens.handlers, client, "login", username="user1", token=mint())
    assert [f["action"] for f in frames] == ["login"], frames
    assert tokens.sessions.get("user1") is client
    other = tokens.connect()
    token = mint(sub="user2", key=RSA_KEY, algorithm="RS256")
    assert [f["action"] for f in await request(tokens.handlers, other, "login", username="user2", token=token)] \
        == ["login"]


@pytest_twisted.ensureDeferred
async def test_a_new_user_is_made_with_the_alliance_of_the_token(tokens):
    client = tokens.connect()
    frames = await request(tokens.handlers, client, "login", username="newcomer", token=mint("newcomer", alliance="red"))
    assert [f["action"] for f in frames] == ["login"], frames
    assert client.record.alliance == "red"
    user = await tokens.mongo.find_user("newcomer")
    assert user["alliance"] == "red" and "passwordHash" not in user and user["tokenOnly"] is True
    # no login as them without a token, even where open login is on
    tokens.config.open_login = True
    assert error_code(await request(tokens.handlers, tokens.connect(), "login", username="newcomer")) == 401
    frames = await request(tokens.handlers, client, "chat", roomName="alliance:red", isGroup=True, message="hi")
    assert error_code(frames) is None, frames
    # a later token moves them to another alliance
    again = tokens.connect()
    await request(tokens.handlers, again, "login", username="newcomer", token=mint("newcomer", alliance="blue"))
    assert again.record.alliance == "blue" and (await tokens.mongo.find_user("newcomer"))["alliance"] == "blue"


@pytest_twisted.ensureDeferred
async def test_bad_tokens_are_401_with_the_usual_message_and_counted(tokens):
    client = tokens.connect()
    bad = [mint(exp=NOW - 1), mint(exp=None), mint(sub="user2"), mint(key="t" * 32), "garbage"]
    messages = set()
    for token in bad:
        frames = await request(tokens.handlers, client, "login", username="user1", token=token)
        assert error_code(frames) == 401, frames
        messages.add(frames[0]["data"]["message"])
    assert messages == {"unknown user or wrong password"}
    assert client.record is None and await tokens.mongo.find_user("garbage") is None
    # the fifth failure locked the name out: even a good token waits
    frames = await request(tokens.handlers, client, "login", username="user1", token=mint())
    assert error_code(frames) == 429, frames


@pytest_twisted.ensureDeferred
async def test_no_token_login_on_a_node_without_keys(node):  # noqa: F811
    client = node.connect()
    frames = await request(node.handlers, client, "login", username="user1", token=mint())
    assert error_code(frames) == 401 and await node.mongo.find_user("user1") is not None


@pytest_twisted.ensureDeferred
async def test_password_login_still_works(tokens):
    from tests.test_handlers_inprocess import logged_in

    client = await logged_in(tokens, "user3")
    assert client.record.username == "user3"

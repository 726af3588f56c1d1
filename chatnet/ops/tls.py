"""TLS for clients (``wss://``) and for the internal port between nodes.

Both server sides are plain Twisted endpoint strings, nothing else::

    --listen   ssl:port=9000:interface=0.0.0.0:privateKey=/etc/chatnet/node.key:certKey=/etc/chatnet/node.crt
    --internal ssl:port=9100:interface=10.0.0.5:privateKey=/etc/chatnet/node.key:certKey=/etc/chatnet/node.crt

A node whose ``--listen`` is an ``ssl:`` endpoint publishes ``wss://`` URLs
(the gateway hands them out). The client side of the internal port needs a
trust root: ``--internal-ca PATH`` (PEM, one or more certificates); with it a
node connects to its peers over TLS and checks that each peer's certificate
is signed by that CA and names the peer's internal host (DNS name or IP
address, in subjectAltName). The cluster's HMAC handshake still runs inside.

``python -m chatnet.ops.tls DIR HOST...`` writes a self-signed ``key.pem`` and
``cert.pem`` for the given host names and IP addresses (for tests and trials;
the certificate is its own CA).
"""
import datetime
import ipaddress
import sys
from pathlib import Path

from twisted.internet import ssl


def load_trust_root(path):
    """The certificates of the PEM file C{path} as a Twisted trust root."""
    data = Path(path).read_bytes()
    marker = b"-----END CERTIFICATE-----"
    pems = [chunk + marker for chunk in data.split(marker) if b"-----BEGIN CERTIFICATE-----" in chunk]
    if not pems:
        raise ValueError(f"{path}: no PEM certificate found")
    return ssl.trustRootFromCertificates([ssl.Certificate.loadPEM(pem) for pem in pems])


def client_options(config):
    """C{host -> IOpenSSLClientConnectionCreator} for connections to peers, or
    None for plain TCP (no C{internal_tls["ca"]} in C{config})."""
    ca = (getattr(config, "internal_tls", None) or {}).get("ca")
    if not ca:
        return None
    root = load_trust_root(ca)

    def options(host):
        return ssl.optionsForClientTLS(host, trustRoot=root)

    return options


def is_tls_endpoint(description):
    """True for a Twisted server endpoint string that serves TLS."""
    return description.strip().lower().startswith("ssl:")


def scheme(listen):
    """The WebSocket URL scheme of a node listening on C{listen}."""
    return "wss" if is_tls_endpoint(listen) else "ws"


def make_self_signed(directory, hosts=("localhost", "127.0.0.1"), days=365):
    """Write C{key.pem} and C{cert.pem} (self-signed, valid for C{hosts}: DNS
    names and IP addresses) in C{directory}; returns their two paths."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    names = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, str(hosts[0]))])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_path, cert_path = directory / "key.pem", directory / "cert.pem"
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    key_path.chmod(0o600)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m chatnet.ops.tls DIR [HOST...]  (writes DIR/key.pem, DIR/cert.pem)")
        return 0 if argv else 2
    key, cert = make_self_signed(argv[0], argv[1:] or ("localhost", "127.0.0.1"))
    print(f"{key}\n{cert}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

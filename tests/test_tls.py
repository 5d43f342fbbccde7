"""
TLS from a plain install: the daemon on C{ssl:} endpoints (lines, and the
web site's HTTPS and C{wss:}), with a certificate made by the test; a game
over TLS between an independent client (Python's C{ssl}) and
C{soukets-client --tls}.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import socket
import ssl
from pathlib import Path

import websocket
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from twisted.trial.unittest import SynchronousTestCase

from tests.daemon import TIMEOUT, Client, Daemon
from tests.test_client_e2e import ScriptClient


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """
    A self-signed certificate for 127.0.0.1 and localhost, and its key.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "soukets test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class TLSClient(Client):
    """
    A line client over TLS that checks the server's certificate.
    """

    def __init__(self, port: int, ca: Path) -> None:
        context = ssl.create_default_context(cafile=str(ca))
        raw = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.sock = context.wrap_socket(raw, server_hostname="127.0.0.1")
        self.buffer = b""


class TLSTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.cert, self.key = make_certificate(Path(self.mktemp()).resolve())
        tls = f"privateKey={self.key}:certKey={self.cert}:interface=127.0.0.1"
        self.daemon = Daemon(
            self.mktemp(), "--listen", f"ssl:0:{tls}", "--web", f"ssl:0:{tls}"
        )
        self.addCleanup(self.daemon.stop)
        found = self.daemon.wait_for(r"listening on 127\.0\.0\.1:(\d+) \(TLS\)")
        self.port = int(found.group(1))

    def test_game_over_tls(self) -> None:
        """
        A game between a Python ssl client and soukets-client --tls --ca.
        """
        alice = TLSClient(self.port, self.cert)
        self.addCleanup(alice.close)
        [(_, welcome)] = alice.expect("welcome")
        alice.expect("queued")
        bob = ScriptClient("--tls", "--ca", str(self.cert), "--name", "bob", f"127.0.0.1:{self.port}")
        self.addCleanup(bob.process.kill)
        [(_, matched)] = alice.expect("matched")
        alice.expect("round")
        bob.wait_for("round 1")
        bob.type("s")
        alice.send(matched["channel"] + ';{"type":"move","move":"rock"}')
        frames = alice.expect("message", "moved", "moved", "result", "game_over", "closed")
        self.assertEqual(frames[0][1]["data"], {"name": "bob"})
        self.assertEqual(frames[3][1]["winners"], [welcome["client"]])
        bob.wait_for("game over")

    def test_certificate_checked(self) -> None:
        """
        Without --ca the client refuses the self-signed certificate; with
        --insecure it goes on.
        """
        refused = ScriptClient("--tls", f"127.0.0.1:{self.port}")
        code, lines = refused.finish()
        self.assertEqual(code, 1)
        self.assertIn("certificate is not trusted", "\n".join(lines))
        trusting = ScriptClient("--tls", "--insecure", f"127.0.0.1:{self.port}")
        self.addCleanup(trusting.process.kill)
        trusting.wait_for("connected to soukets")

    def test_https_and_wss(self) -> None:
        found = self.daemon.wait_for(r"web site on https://127\.0\.0\.1:(\d+)/")
        web = int(found.group(1))
        import urllib.request

        context = ssl.create_default_context(cafile=str(self.cert))
        with urllib.request.urlopen(f"https://127.0.0.1:{web}/healthz", context=context, timeout=TIMEOUT) as r:
            self.assertEqual(r.read(), b"ok")
        ws = websocket.create_connection(
            f"wss://127.0.0.1:{web}/ws", timeout=TIMEOUT,
            sslopt={"ca_certs": str(self.cert)},
            origin=f"https://127.0.0.1:{web}",
        )
        self.addCleanup(ws.close)
        channel, _, document = ws.recv().partition(";")
        self.assertEqual(json.loads(document)["type"], "welcome")

"""Local stand-ins for what the tests cannot reach: servers on 127.0.0.1 that speak the real
protocols (HTTP, TLS, Redis, DigitalOcean's API), so the real clients talk to them."""

import contextlib
import datetime
import json
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ControlledServer(ThreadingHTTPServer):
    """An HTTP server told how to answer: mode "ok" (200 JSON), "error" (500), "slow" (answers
    after ``delay`` seconds) or "hang" (reads the request and never answers). Paths under /v2/
    answer like DigitalOcean's API from ``apps`` (app id -> app dict); a wrong token gets 401."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", free_port()), _Handler)
        self.mode = "ok"
        self.delay = 0.0
        self.body = {"status": "ok"}
        self.apps: dict[str, dict] = {}
        self.token = "do-test-token"
        self.release = threading.Event()
        self.requests = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}"

    def stop(self) -> None:
        self.release.set()
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: ControlledServer

    def log_message(self, *args):
        pass

    def _json(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.server.requests += 1
        if self.path.startswith("/v2/apps/"):
            return self._digitalocean()
        mode = self.server.mode
        if mode == "hang":
            self.server.release.wait(30)
            return None
        if mode == "slow":
            time.sleep(self.server.delay)
        if mode == "error":
            return self._json(500, {"status": "error"})
        return self._json(200, self.server.body)

    def _digitalocean(self):
        if self.headers.get("Authorization") != f"Bearer {self.server.token}":
            return self._json(401, {"id": "unauthorized", "message": "Unable to authenticate you"})
        app_id = self.path.split("/")[3].split("?")[0]
        app = self.server.apps.get(app_id)
        if app is None:
            message = "The resource you requested could not be found."
            return self._json(404, {"id": "not_found", "message": message})
        return self._json(200, {"app": app})


@contextlib.contextmanager
def controlled_server():
    server = ControlledServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stop()


def self_signed_certificate(directory: Path, *, days: int) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 valid for ``days`` more days, and its key."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(tz=datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@contextlib.contextmanager
def tls_server(*, days: int):
    """A TLS server on 127.0.0.1 with a self-signed certificate; yields (port, cert path)."""
    with tempfile.TemporaryDirectory() as folder:
        cert, key = self_signed_certificate(Path(folder), days=days)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        listener = socket.create_server(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        stop = threading.Event()

        def serve():
            listener.settimeout(0.2)
            while not stop.is_set():
                try:
                    conn, _ = listener.accept()
                except TimeoutError:
                    continue
                except OSError:
                    return
                with (
                    contextlib.suppress(OSError, ssl.SSLError),
                    context.wrap_socket(conn, server_side=True) as tls,
                ):
                    tls.recv(1)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        try:
            yield port, cert
        finally:
            stop.set()
            listener.close()
            thread.join(2)


@contextlib.contextmanager
def private_redis():
    """A redis-server of the test's own on a free port (so stopping it harms nobody else);
    yields an object with ``url``, ``stop()`` and ``start()`` (again, on the same port, empty:
    as a Redis without persistence comes back after an outage)."""
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    server = [binary, "--save", "", "--appendonly", "no"]
    port = free_port()
    processes: list[subprocess.Popen] = []

    def wait_until_answering() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                return
            time.sleep(0.05)
        raise RuntimeError(f"redis-server did not answer on port {port}")

    class Handle:
        url = f"redis://127.0.0.1:{port}/0"

        @staticmethod
        def start():
            processes.append(
                subprocess.Popen(
                    [*server, "--port", str(port), "--bind", "127.0.0.1"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            wait_until_answering()

        @staticmethod
        def stop():
            process = processes[-1]
            process.terminate()
            process.wait(10)

    Handle.start()
    try:
        yield Handle
    finally:
        if processes[-1].poll() is None:
            Handle.stop()

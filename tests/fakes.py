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

from ops.digitalocean_simulator import SimulatorServer
from tests.local_servers import POLL_SECONDS


@contextlib.contextmanager
def closed_port():
    """A port on 127.0.0.1 that refuses connections for as long as the block runs: bound by
    this process (so nobody else can take it) and never listening."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        yield holder.getsockname()[1]


def _unused_port() -> int:
    """For a server in another process, which must bind the port itself; private_redis retries
    when another process took it meanwhile."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ControlledServer(ThreadingHTTPServer):
    """An HTTP server told how to answer: mode "ok" (200 JSON), "error" (500), "slow" (answers
    after ``delay`` seconds) or "hang" (reads the request and never answers). Paths under /v2/
    answer like DigitalOcean's API from ``apps`` (app id -> app dict); a wrong token gets 401."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
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
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": POLL_SECONDS}, daemon=True
    )
    thread.start()
    try:
        yield server
    finally:
        server.stop()


def simulator_in_thread(**options) -> SimulatorServer:
    """The simulated DigitalOcean (ops.digitalocean_simulator.start_in_thread, but polling for
    its shutdown every POLL_SECONDS, so a test's ``server.stop()`` returns at once)."""
    server = SimulatorServer(**options)
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": POLL_SECONDS}, daemon=True
    ).start()
    return server


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


def _redis_pid(port: int) -> int | None:
    """The process id of the redis-server answering on ``port``, or None if none answers."""
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5) as conn:
        conn.sendall(b"INFO server\r\n")
        conn.settimeout(2)
        answer = b""
        while b"process_id:" not in answer or not answer.endswith(b"\r\n"):
            chunk = conn.recv(65536)
            if not chunk:
                break
            answer += chunk
        for line in answer.decode(errors="replace").splitlines():
            if line.startswith("process_id:"):
                return int(line.split(":", 1)[1])
    return None


@contextlib.contextmanager
def private_redis():
    """A redis-server of the test's own on a free port (so stopping it harms nobody else);
    yields an object with ``url``, ``stop()`` and ``start()`` (again, on the same port, empty:
    as a Redis without persistence comes back after an outage). The port is proven the
    server's own by its pid: it is chosen again when another process took it between the
    choice and redis-server's bind."""
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    server = [binary, "--save", "", "--appendonly", "no", "--bind", "127.0.0.1"]
    processes: list[subprocess.Popen] = []
    port = 0

    def launch() -> bool:
        process = subprocess.Popen(
            [*server, "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        processes.append(process)
        deadline = time.monotonic() + 10
        while process.poll() is None and time.monotonic() < deadline:
            if _redis_pid(port) == process.pid:
                return True
            time.sleep(0.05)
        process.kill()
        process.wait(10)
        return False

    for _attempt in range(5):
        port = _unused_port()
        if launch():
            break
    else:
        raise RuntimeError("could not start a private redis-server")

    class Handle:
        url = f"redis://127.0.0.1:{port}/0"

        @staticmethod
        def start():
            if not launch():
                raise RuntimeError(f"redis-server did not come back on port {port}")

        @staticmethod
        def stop():
            process = processes[-1]
            process.terminate()
            process.wait(10)

    try:
        yield Handle
    finally:
        if processes[-1].poll() is None:
            Handle.stop()

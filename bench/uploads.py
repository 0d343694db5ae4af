"""Memory of the web process while it takes a large upload on the upload page.

    python bench/uploads.py [--megabytes 150]

In a throw-away test database, a logged-in Image staff user posts one file of the given size to
/images/new/ through Django's WSGI handler, exactly as gunicorn would hand it the request: the
multipart body is read from a file on disk, so the bench itself holds nothing of it. Two files:
one that is not an image (a PDF header and then bytes; refused), and a JPEG followed by bytes
after its end (accepted, hashed and stored). For each, the process's resident set before the
request and its peak during it (VmHWM, reset before each request through
/proc/self/clear_refs). Linux only.

Target: the peak grows by less than 20 MB whatever the file's size (the upload is a temporary
file; its header is read from its first bytes, its hash and its copy to storage go in chunks).
"""

import argparse
import io
import os
import sys
import tempfile
from pathlib import Path

from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler
from django.middleware.csrf import _get_new_csrf_string
from harness import client_for, throwaway_database, user_in
from PIL import Image

from images.models import Batch, Preset

TARGET_MB = 20
BOUNDARY = "benchboundary7MA4YWxkTrZu0gW"


def _status(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")


def _jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (640, 480), (90, 140, 200)).save(out, "JPEG", quality=85)
    return out.getvalue()


def _body(folder: Path, name: str, head: bytes, size: int, csrf: str, preset_id: int) -> Path:
    """The multipart body of the upload form, written to disk in chunks."""
    path = folder / f"{name}.body"
    block = bytes(range(256)) * 4096
    with path.open("wb") as out:
        fields = {"csrfmiddlewaretoken": csrf, "name": f"Bench {name}", "preset": str(preset_id)}
        for key, value in fields.items():
            out.write(
                f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n'
                f"{value}\r\n".encode()
            )
        out.write(
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="files"; '
            f'filename="{name}.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'.encode()
        )
        out.write(head)
        left = size - len(head)
        while left > 0:
            out.write(block[:left])
            left -= min(left, len(block))
        out.write(f"\r\n--{BOUNDARY}--\r\n".encode())
    return path


def _post(handler: WSGIHandler, body: Path, cookies: str) -> tuple[int, float, float]:
    with body.open("rb") as stream:
        environ = {
            "REQUEST_METHOD": "POST",
            "PATH_INFO": "/images/new/",
            "SCRIPT_NAME": "",
            "QUERY_STRING": "",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8000",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1",
            "HTTP_HOST": "127.0.0.1",
            "HTTP_COOKIE": cookies,
            "CONTENT_TYPE": f"multipart/form-data; boundary={BOUNDARY}",
            "CONTENT_LENGTH": str(body.stat().st_size),
            "wsgi.input": stream,
            "wsgi.url_scheme": "http",
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": False,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
            "wsgi.version": (1, 0),
        }
        status = []
        before = _status("VmRSS")
        _reset_peak()
        response = handler(environ, lambda code, headers, *_: status.append(code))
        for _chunk in response:
            pass
        response.close()
        peak = _status("VmHWM")
    return int(status[0].split()[0]), before, peak


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--megabytes", type=int, default=150)
    args = parser.parse_args()
    size = args.megabytes * 1024 * 1024
    settings.IMAGE_MAX_UPLOAD_BYTES = max(settings.IMAGE_MAX_UPLOAD_BYTES, size + 1024)
    settings.ALLOWED_HOSTS = ["127.0.0.1"]
    with throwaway_database(), tempfile.TemporaryDirectory() as folder:
        settings.MEDIA_ROOT = Path(folder) / "media"
        preset = Preset.objects.get(is_default=True)
        client = client_for(user_in("bench-images", "Image staff"))
        csrf = _get_new_csrf_string()
        session = client.cookies[settings.SESSION_COOKIE_NAME].value
        cookies = f"{settings.SESSION_COOKIE_NAME}={session}; {settings.CSRF_COOKIE_NAME}={csrf}"
        handler = WSGIHandler()
        results = []
        for name, head, expected in (
            ("not-an-image", b"%PDF-1.7\n", 400),
            ("padded-jpeg", _jpeg(), 302),
        ):
            body = _body(Path(folder), name, head, size, csrf, preset.pk)
            status, before, peak = _post(handler, body, cookies)
            os.unlink(body)
            results.append((name, status, expected, before, peak))
        made = Batch.objects.count()
    print(f"Upload of {args.megabytes} MB to /images/new/ (web process, resident MB)")
    print(f"{'file':<14} {'status':>6} {'before':>8} {'peak':>8} {'growth':>8}")
    passed = made == 1
    for name, status, expected, before, peak in results:
        growth = peak - before
        ok = status == expected and growth < TARGET_MB
        passed &= ok
        verdict = "PASS" if ok else "FAIL"
        print(f"{name:<14} {status:>6} {before:>8.0f} {peak:>8.0f} {growth:>8.0f}  {verdict}")
    print(f"Target: growth under {TARGET_MB} MB; batches made: {made} (expected 1).")
    print("PASS" if passed else "FAIL")
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())

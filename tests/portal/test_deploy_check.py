"""`manage.py check --deploy` is clean with the production settings the README documents."""

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def documented_settings() -> dict[str, str]:
    """The variables of the README's "Production settings" block, placeholders filled."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Production settings", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    values = {}
    for line in block.splitlines():
        name, _, value = line.partition("=")
        values[name.strip()] = value.strip()
    values["SECRET_KEY"] = secrets.token_urlsafe(60)
    # Never contacted by the check; pointed at this machine all the same.
    for name in ("DATABASE_URL", "REDIS_URL"):
        value = values[name].replace("<password>", "pw")
        values[name] = re.sub(r"@[^:/]+", "@127.0.0.1", value)
    return values


def run_check(environment: dict[str, str], tmp_path) -> subprocess.CompletedProcess:
    keep = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(
            (
                "DJANGO_",
                "PORTAL_",
                "SECRET_KEY",
                "DATABASE_URL",
                "REDIS_URL",
                "ALLOWED_HOSTS",
                "CSRF_",
            )
        )
    }
    keep |= {"PORTAL_VAR_DIR": str(tmp_path), **environment}
    keep.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=keep,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_with_the_documented_production_settings(tmp_path):
    result = run_check(documented_settings(), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_check_deploy_complains_without_them(tmp_path):
    """The check is not vacuous: without HTTPS it names what is missing."""
    settings = documented_settings()
    del settings["PORTAL_HTTPS"]
    result = run_check(settings, tmp_path)
    assert result.returncode != 0
    assert "SESSION_COOKIE_SECURE" in result.stderr + result.stdout

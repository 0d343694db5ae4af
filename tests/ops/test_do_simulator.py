"""The simulated DigitalOcean speaks the API's shapes to pydo and to plain HTTP, and its
command refuses bad options clearly."""

import json
import urllib.error
import urllib.request

import pytest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from azure.core.pipeline.policies import HeadersPolicy
from django.core.management import CommandError, call_command
from pydo import Client

from ops.digitalocean_simulator import SIM_TOKEN, start_in_thread


@pytest.fixture
def simulator():
    server, _thread = start_in_thread(step_seconds=0.05)
    server.add_app("app-1", "web")
    yield server
    server.stop()


def _client(server, token=SIM_TOKEN) -> Client:
    policy = HeadersPolicy({"Authorization": f"Bearer {token}"})
    return Client(token=token, endpoint=server.url, retry_total=0, authentication_policy=policy)


def test_pydo_reads_apps_deployments_health_and_404_bodies(simulator):
    client = _client(simulator)
    app = client.apps.get("app-1")["app"]
    assert app["active_deployment"]["phase"] == "ACTIVE"
    created = client.apps.create_deployment("app-1", {"force_build": True})["deployment"]
    assert created["phase"] == "PENDING_BUILD"
    listed = client.apps.list_deployments("app-1")
    assert listed["meta"]["total"] == 2 and listed["deployments"][0]["id"] == created["id"]
    assert client.apps.get("nope") == {
        "id": "not_found",
        "message": "The resource you requested could not be found.",
    }
    health = client.apps.get_health("app-1")["app_health"]["components"][0]
    assert health["state"] == "HEALTHY"
    validation = client.apps.validate_rollback("app-1", {"deployment_id": "missing"})
    assert validation["valid"] is False and validation["error"]["code"] == "deployment_not_found"


def test_switches_refuse_the_token_and_rate_limit_with_headers(simulator):
    with pytest.raises(ClientAuthenticationError):
        _client(simulator, token="revoked").apps.get("app-1")
    simulator.set_switches({"rate_limited": 1})
    with pytest.raises(HttpResponseError) as limited:
        _client(simulator).apps.get("app-1")
    assert limited.value.status_code == 429
    assert limited.value.response.headers["ratelimit-remaining"].isdigit()
    request = urllib.request.Request(
        f"{simulator.url}/_sim/switches",
        data=json.dumps({"fail_next": True}).encode(),
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert json.load(response)["fail_next"] is True
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"{simulator.url}/_sim/apps/nope/health", timeout=5)
    assert missing.value.code == 404


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"port": 0}, "--port must be between 1 and 65535"),
        ({"port": 70000}, "--port must be between 1 and 65535"),
        ({"step_seconds": 0}, "--step-seconds must be more than 0"),
        ({"app": ["no-colon"]}, "--app takes ID:NAME, not 'no-colon'"),
        ({"app": [":name"]}, "--app takes ID:NAME"),
    ],
)
def test_the_command_refuses_bad_options(options, message):
    with pytest.raises(CommandError, match=message):
        call_command("do_simulator", **options)


def test_the_command_says_when_its_port_is_taken(simulator):
    with pytest.raises(CommandError, match=f"Cannot serve on 127.0.0.1:{simulator.server_port}"):
        call_command("do_simulator", port=simulator.server_port)

"""Tokens: missing, wrong and right; every endpoint but liveness guarded; refusing to listen off loopback
without a token (exit code 2, one line), before anything is loaded or bound."""

import subprocess
import sys

import httpx
import pytest
from helpers import TOKEN, FullRM

from rewardgauge.rewards.remote import RemoteError, RemoteRewardModel
from rewardgauge.serve.server import check_bind, is_loopback, read_token

BODY = {"prompts": ["p"], "responses": ["a b"]}


def test_token_required_on_every_endpoint_but_liveness(serve):
    url = serve(FullRM(), token=TOKEN)
    assert httpx.get(url + "/health").status_code == 200
    for method, path in [("POST", "/v1/score"), ("POST", "/get_reward"), ("GET", "/ready"), ("GET", "/metrics"),
                         ("GET", "/openapi.json"), ("GET", "/nowhere")]:
        for headers in [{}, {"authorization": "Bearer wrong-token-0123456789"}, {"authorization": TOKEN},
                        {"authorization": f"Basic {TOKEN}"}, {"authorization": f"Bearer {TOKEN}x"}]:
            r = httpx.request(method, url + path, json=BODY if method == "POST" else None, headers=headers)
            assert r.status_code == 401, (path, headers)
            assert r.headers["www-authenticate"] == "Bearer" and "missing or wrong token" in r.json()["error"]
    ok = {"authorization": f"Bearer {TOKEN}"}
    assert httpx.post(url + "/v1/score", json=BODY, headers=ok).json() == FullRM().score(["p"], ["a b"]).to_dict()
    assert httpx.get(url + "/metrics", headers=ok).status_code == 200
    schema = httpx.get(url + "/openapi.json", headers=ok).json()
    assert schema["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer"}
    assert "security" not in schema["paths"]["/health"]["get"]
    assert schema["paths"]["/v1/score"]["post"]["security"] == [{"bearer": []}]


def test_unauthenticated_body_is_never_parsed(serve):
    url = serve(FullRM(), token=TOKEN)
    assert httpx.post(url + "/v1/score", content=b"{broken").status_code == 401  # not 422


def test_client_sends_the_token_from_the_environment(serve, monkeypatch):
    url = serve(FullRM(), token=TOKEN)
    with pytest.raises(RemoteError, match="401"):
        RemoteRewardModel(url, token="").score(["p"], ["a"])
    monkeypatch.setenv("REWARDGAUGE_TOKEN", TOKEN)
    assert RemoteRewardModel(url).score(["p"], ["a b"]).reward.tolist() == FullRM().score(["p"], ["a b"]).reward.tolist()


def test_binding_rules(tmp_path, monkeypatch):
    from rewardgauge.errors import InputError

    monkeypatch.delenv("REWARDGAUGE_TOKEN", raising=False)
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost") and is_loopback("127.8.9.1")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.1.2.3") and not is_loopback("example.org")
    check_bind("127.0.0.1", None)
    check_bind("0.0.0.0", TOKEN)
    with pytest.raises(InputError, match="refusing to listen on 0.0.0.0 without a token"):
        check_bind("0.0.0.0", None)
    assert read_token(None) is None
    monkeypatch.setenv("REWARDGAUGE_TOKEN", TOKEN)
    assert read_token(None) == TOKEN
    f = tmp_path / "token"
    f.write_text(" file-token-0123456789abcdef \n")
    assert read_token(str(f)) == "file-token-0123456789abcdef"  # the file wins over the environment
    f.write_text("short")
    with pytest.raises(InputError, match="at least 16 characters"):
        read_token(str(f))
    f.write_text("")
    with pytest.raises(InputError, match="token file is empty"):
        read_token(str(f))


def test_cli_refuses_all_interfaces_without_a_token(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}  # no REWARDGAUGE_TOKEN
    r = subprocess.run([sys.executable, "-m", "rewardgauge.cli", "serve", "--rm", str(tmp_path / "missing"),
                        "--host", "0.0.0.0", "--port", "0"], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "rewardgauge: error: field 'host': refusing to listen on 0.0.0.0 without a token: give --token-file FILE "
        "or set REWARDGAUGE_TOKEN (or listen on 127.0.0.1)"]


def test_the_loopback_guard_refuses_any_other_address(loopback_only):
    """The guard every serving test runs under (tests/conftest.py) stops a connection off loopback before it
    leaves the machine (192.0.2.1 is TEST-NET-1, reserved for documentation)."""
    import socket

    with pytest.raises(AssertionError, match="only loopback"):
        socket.create_connection(("192.0.2.1", 80), timeout=0.1)
    assert loopback_only == [("192.0.2.1", 80)]
    loopback_only.clear()  # refused as it should be: not a failure of this test
    with pytest.raises(AssertionError, match="only loopback"):
        httpx.get("http://192.0.2.1:80/health", timeout=0.1)
    loopback_only.clear()

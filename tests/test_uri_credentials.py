"""Credentials in tracking URIs: hidden in every message that names the server."""

from __future__ import annotations

import pytest

from components.common.uri_credentials import credential_parts, redact, scrub


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        ("https://host/?token=s3cret", "https://host/?token=***"),
        ("https://user:s3cret@host:5000/mlflow", "https://user:***@host:5000/mlflow"),
        ("https://s3cret@host/", "https://***@host/"),
        ("https://host/#s3cret", "https://host/#***"),
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("sqlite:///mlflow.db", "sqlite:///mlflow.db"),
    ],
)
def test_redact_hides_passwords_query_values_and_fragments(uri, shown):
    assert redact(uri) == shown
    assert bool(credential_parts(uri)) == (uri != shown)


def test_scrub_removes_the_secrets_of_a_uri_from_an_error_message():
    uri = "https://user:pw123@host/?token=s3cret&x=1"
    text = scrub(f"HTTPSConnectionPool: url {uri} refused, token s3cret", uri)
    assert "s3cret" not in text and "pw123" not in text
    assert "host" in text


def test_unreachable_server_messages_never_show_the_token():
    from components.common.tracking.outage import OutageWindow
    from components.common.tracking.runs import check_reachable

    uri = "http://127.0.0.1:9/?token=s3cret"  # nothing listens on the discard port
    with pytest.raises(RuntimeError) as refused:
        check_reachable(uri, timeout_s=1)
    assert "s3cret" not in str(refused.value) and "token=***" in str(refused.value)
    import requests

    def refused_call():
        raise requests.ConnectionError(f"cannot reach {uri}")

    outage = OutageWindow(60, uri)
    assert not outage.attempt("logging", refused_call)
    assert "s3cret" not in outage.message("training")

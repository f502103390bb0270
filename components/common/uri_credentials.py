"""Credentials in URIs: refuse them where a URI would be written down, hide them in messages."""

from __future__ import annotations

import urllib.parse

SECRET_HINT = (
    "keep credentials out of the URI: on Kubeflow the MLflow Secret (pipeline setting "
    "mlflow_secret; keys username, password, token) carries them; on Vertex AI reach the server "
    "without one in the URI (a private network or IAP)"
)


def credential_parts(uri: str) -> list[str]:
    """What in `uri` may carry a credential: its user info, query string or fragment."""
    parsed = urllib.parse.urlsplit(uri)
    found = []
    if parsed.username or parsed.password:
        found.append("user info (user:password@)")
    if parsed.query:
        found.append("a query string (?...)")
    if parsed.fragment:
        found.append("a fragment (#...)")
    return found


def refuse_credentials(uri: str, what: str, written_to: str) -> None:
    """ValueError when `uri` holds a possible credential, naming where it would be written.

    The error shows the URI with those parts hidden.
    """
    found = credential_parts(uri)
    if found:
        raise ValueError(
            f"{what} {redact(uri)} must not hold credentials ({', '.join(found)}): they would "
            f"be written into {written_to}; {SECRET_HINT}"
        )


def redact(uri: str) -> str:
    """`uri` with its password, query values and fragment replaced by `***`, for logs."""
    try:
        parsed = urllib.parse.urlsplit(uri)
    except ValueError:
        return "<unparseable URI>"
    if not credential_parts(uri):
        return uri
    netloc = parsed.netloc
    if parsed.username or parsed.password:
        host = netloc.rpartition("@")[2]
        netloc = f"{parsed.username}:***@{host}" if parsed.password else f"***@{host}"
    query = "&".join(
        f"{key}=***" for key, _ in urllib.parse.parse_qsl(parsed.query, keep_blank_values=True)
    )
    if parsed.query and not query:  # not key=value pairs: hide it whole
        query = "***"
    fragment = "***" if parsed.fragment else ""
    return urllib.parse.urlunsplit((parsed.scheme, netloc, parsed.path, query, fragment))


def scrub(text: str, uri: str) -> str:
    """`text` (an error message, say) with every secret part of `uri` replaced by `***`."""
    parsed = urllib.parse.urlsplit(uri)
    secrets = [parsed.password or "", parsed.fragment]
    secrets += [value for _, value in urllib.parse.parse_qsl(parsed.query) if value]
    for secret in sorted(filter(None, secrets), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text

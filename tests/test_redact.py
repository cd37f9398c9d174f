"""The scrubber (muxtrio/redact.py): configured secrets and key-shaped tokens go, the useful rest of a message stays."""

from __future__ import annotations

import pytest

from muxtrio.config import Config, Credential, ProviderConfig, ProviderType, config_secrets
from muxtrio.errors import ErrorKind, UpstreamError
from muxtrio.redact import REDACTED, Scrubber, scrub, scrub_error


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Incorrect API key provided: sk-proj-abcDEF0123456789xyz. You can find your API key at "
         "https://platform.openai.com/account/api-keys.",
         "Incorrect API key provided: sk-[redacted]. You can find your API key at "
         "https://platform.openai.com/account/api-keys."),
        ("invalid x-api-key sk-ant-api03-AbC_dEf-0123456789", "invalid x-api-key sk-ant-[redacted]"),
        ("API key not valid: AIzaSyD-0123456789abcdefghijklmnopqrs", "API key not valid: AIza[redacted]"),
        ("header Authorization: Bearer eyJhbGciOi.J9.x failed", "header Authorization: Bearer [redacted] failed"),
        ("GET /v1beta/models?key=abc.def. Retry", "GET /v1beta/models?key=[redacted]. Retry"),
        ("digest 0123456789abcdef0123456789ABCDEF0123 mismatched", "digest [redacted] mismatched"),
        ("token Zm9vYmFyYmF6cXV4cXV1eDEyMzQ1Njc4OTBhYmNk end", "token [redacted] end"),
        # what must survive: model names, hyphenated words, request ids, short numbers, URLs
        ("model claude-3-5-sonnet-20241022-extended-thinking-preview not found",
         "model claude-3-5-sonnet-20241022-extended-thinking-preview not found"),
        ("projects/my-project-123/locations/us-central1/publishers/google/models/gemini-2.0-flash",
         "projects/my-project-123/locations/us-central1/publishers/google/models/gemini-2.0-flash"),
        ("request id 5f2b9c0e1a3d4e6f7a8b9c0d, retry in 2m0s", "request id 5f2b9c0e1a3d4e6f7a8b9c0d, retry in 2m0s"),
        ("Rate limit reached for gpt-4o in organization org-abc on tokens per min (TPM): Limit 30000",
         "Rate limit reached for gpt-4o in organization org-abc on tokens per min (TPM): Limit 30000"),
    ],
)
def test_key_shapes_are_removed_and_the_rest_stays(text: str, expected: str) -> None:
    assert scrub(text) == expected
    assert scrub(expected) == expected  # idempotent


def test_configured_secrets_go_even_when_not_key_shaped() -> None:
    scrubber = Scrubber(["local-token-plain", "local-token-plain-longer", None, "", "abc"])
    assert scrubber("refused local-token-plain-longer and local-token-plain") == f"refused {REDACTED} and {REDACTED}"
    assert scrubber("abc is too short to be a secret") == "abc is too short to be a secret"


def test_scrub_error_cleans_message_and_args() -> None:
    err = UpstreamError(ErrorKind.AUTHENTICATION, "bad key sk-live-0123456789abcdef", provider_status=401)
    assert scrub_error(err, Scrubber()) is err
    assert err.message == "bad key sk-[redacted]" and err.args == ("bad key sk-[redacted]",)
    assert "sk-live" not in repr(err) and "sk-live" not in str(err)


def test_config_secrets_lists_every_secret_value() -> None:
    provider = ProviderConfig(
        type=ProviderType.OPENAI, name="p", base_url="http://127.0.0.1:9/v1",
        credentials=(Credential("key-one", proxy_url="http://user:pw-cred@127.0.0.1:8"), Credential("key-two")),
        headers={"X-Custom-Token": "hdr-secret", "User-Agent": "not-secret"},
        proxy_url="http://puser:pw-provider@127.0.0.1:8",
    )
    config = Config(api_keys=("gateway-key",), providers=(provider,), proxy_url="http://g:pw-global@127.0.0.1:8",
                    echo_model=False)
    secrets = set(config_secrets(config))
    assert {"key-one", "key-two", "hdr-secret", "gateway-key", "pw-cred", "pw-provider", "pw-global"} <= secrets
    assert "not-secret" not in secrets

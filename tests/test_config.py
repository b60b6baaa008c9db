"""``_config.Settings``: stack config, then the environment, then defaults; a bad setting is named by its key and
never quoted whole; and the token (issue 11, item 5): a token no header can carry is refused at configure without
being shown, and ``Settings`` never pickles it.
"""

from __future__ import annotations

import pickle

import pytest
from oppie_pulumi_testing import HostError, ProviderHost

from oppie_pulumi import ConfigError, Settings
from oppie_pulumi.sandbox import SandboxServer

from .support import TOKEN, agents_program


def test_settings_prefer_stack_config_then_environment_then_defaults() -> None:
    config = {"oppie:apiToken": "from-config"}
    env = {"OPPIE_API_TOKEN": "from-env", "OPPIE_BASE_URL": "http://127.0.0.1:1/"}
    settings = Settings.resolve(config.get, env)
    assert settings.api_token == "from-config"
    assert settings.base_url == "http://127.0.0.1:1"
    assert Settings.resolve({}.get, {}).base_url == "https://api.open.cx"


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("oppie:baseUrl", "api.open.cx", "must be an http(s) URL"),
        ("oppie:timeoutSeconds", "soon", "oppie:timeoutSeconds / OPPIE_TIMEOUT_SECONDS must be a number"),
        ("oppie:maxRetries", "-1", "must be at least 0"),
        ("oppie:timeoutSeconds", "nan", "oppie:timeoutSeconds / OPPIE_TIMEOUT_SECONDS must be a number"),
        ("oppie:baseUrl", "http://[abc", "must be an http(s) URL"),
        ("oppie:baseUrl", "http://api.example.com:http", "must be an http(s) URL"),
        ("oppie:baseUrl", "http://api.exa mple.com", "must be an http(s) URL"),
    ],
)
def test_bad_settings_name_the_key(key: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Settings.resolve({key: value}.get, {})


def test_token_is_not_in_settings_repr() -> None:
    assert "s3cret" not in repr(Settings(api_token="s3cret"))


def test_a_bad_setting_is_quoted_capped_and_a_base_url_without_its_credentials() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.resolve({"oppie:baseUrl": "ftp://user:s3cr3t-pw@example.com/x?token=s3cr3t-tok"}.get, {})
    assert "s3cr3t" not in str(caught.value) and "'ftp://example.com/x'" in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        Settings.resolve({"oppie:timeoutSeconds": "9" * 10_000 + "x"}.get, {})
    assert len(str(caught.value)) < 200


# -- a token no header can carry, and a token never pickled (issue 11, item 5) ---------------------------------

BAD_TOKENS = {
    "newline": "tok_TEST\n9f8e7d6c5b4a",
    "carriage return": "tok_TEST\r9f8e7d6c5b4a",
    "tab": "tok_TEST\t9f8e7d6c5b4a",
    "NUL": "tok_TEST\x009f8e7d6c5b4a",
    "DEL": "tok_TEST\x7f9f8e7d6c5b4a",
    "non-ASCII": "tok_T\u00c9ST_9f8e7d6c5b4a",
    "zero-width space": "tok_TEST\u200b9f8e7d6c5b4a",
}


@pytest.mark.parametrize("token", BAD_TOKENS.values(), ids=BAD_TOKENS.keys())
def test_a_token_no_header_can_carry_is_refused_at_configure_without_showing_it(token: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.resolve({"oppie:apiToken": token}.get, {})
    message = str(caught.value)
    assert "oppie:apiToken" in message and "OPPIE_API_TOKEN" in message
    assert "9f8e7d6c5b4a" not in message and "tok_T" not in message


def test_a_bad_token_from_the_environment_is_refused_too() -> None:
    with pytest.raises(ConfigError, match="OPPIE_API_TOKEN"):
        Settings.resolve({}.get, {"OPPIE_API_TOKEN": BAD_TOKENS["newline"]})


def test_the_provider_host_refuses_a_bad_token_at_configure_without_showing_it(sandbox: SandboxServer) -> None:
    """The host configures a dynamic provider when its first operation arrives: that operation fails."""
    token = BAD_TOKENS["newline"]
    [registration] = agents_program({"resource": "support", "name": "Support"})
    with ProviderHost() as host:
        host.configure({"oppie:apiToken": token, "oppie:baseUrl": sandbox.url})
        with pytest.raises(HostError) as caught:
            host.check(registration.urn, {}, registration.inputs)
    assert "ConfigError: oppie:apiToken / OPPIE_API_TOKEN holds a character no HTTP header can carry" in (
        caught.value.message
    )
    assert "9f8e7d6c5b4a" not in caught.value.details and "9f8e7d6c5b4a" not in host.stderr
    assert sandbox.stats()["requests"] == 0


def test_settings_never_pickle_the_token() -> None:
    settings = Settings(api_token=TOKEN, base_url="http://127.0.0.1:1", timeout_seconds=3.0, max_retries=2)
    data = pickle.dumps(settings)
    assert TOKEN.encode() not in data
    restored = pickle.loads(data)
    assert restored.api_token is None
    assert (restored.base_url, restored.timeout_seconds, restored.max_retries) == ("http://127.0.0.1:1", 3.0, 2)

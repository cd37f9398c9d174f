"""Router rules that need no server: the model-name check, and forcing against a provider's model list."""

from __future__ import annotations

import pytest
import trio

from muxtrio.config import Config, Credential, ModelConfig, ProviderConfig, ProviderType
from muxtrio.engine.pool import CredentialPool, OutageReason
from muxtrio.engine.routing import Candidates, Router, check_model_name
from muxtrio.errors import ClientError, ErrorKind


@pytest.mark.parametrize(
    "model",
    ["gpt-4o", "llama3:8b", "ft:gpt-4o-mini:org::abc", "models/gemini-2.5-pro", "tunedModels/x-1",
     "accounts/fireworks/models/llama-v3p1-405b", "qwen2.5-coder:7b", "a/.hidden", "name with space", "x@y+z"],
)
def test_real_model_names_pass(model: str) -> None:
    check_model_name(model)


@pytest.mark.parametrize(
    "model",
    ["..", ".", "a/../b", "a/./b", "x?alt=evil", "x#f", "a\\b", "a\x00b", "a\r\nb", "a\x7fb", "a\x85b",
     "a%2F..%2Fb", "%2e%2e", "%252e%252e", "x%3Fy", "x%23y", "x%0Ay", "%25" * 6 + "3F", "m" * 257],
)
def test_names_that_could_steer_a_url_are_400s_naming_the_model(model: str) -> None:
    with pytest.raises(ClientError) as caught:
        check_model_name(model)
    assert (caught.value.kind, caught.value.status, caught.value.param) == (ErrorKind.INVALID_REQUEST, 400, "model")
    assert "\n" not in caught.value.message and "\r" not in caught.value.message


def _router() -> Router:
    listed = ProviderConfig(type=ProviderType.OPENAI, name="restricted", base_url="http://127.0.0.1:9/v1",
                            credentials=(Credential("k"),),
                            models=(ModelConfig(name="gpt-4o-mini", alias="allowed-model"),),
                            excluded_models=())
    listless = ProviderConfig(type=ProviderType.OPENAI, name="open", base_url="http://127.0.0.1:9/v1",
                              credentials=(Credential("k"),), excluded_models=("*-preview",))
    official = ProviderConfig(type=ProviderType.OPENAI, name="openai", credentials=(Credential("k"),))
    return Router(Config(providers=(listed, listless, official), echo_model=False))


@pytest.mark.parametrize("name", ["restricted/allowed-model", "restricted://allowed-model", "restricted/gpt-4o-mini"])
def test_forcing_a_listed_provider_picks_from_its_list(name: str) -> None:
    [deployment] = _router().resolve(name)
    assert (deployment.provider.name, deployment.upstream_model) == ("restricted", "gpt-4o-mini")


@pytest.mark.parametrize("name", ["restricted/gpt-4-unlisted-expensive", "restricted://o1-pro"])
def test_forcing_never_widens_a_list(name: str) -> None:
    router = _router()
    assert router.resolve(name) == []
    with pytest.raises(ClientError) as caught:
        router.require(name)
    assert caught.value.status == 404 and "serves only the models in its list" in caught.value.message


def test_forcing_a_listless_provider_passes_any_name_but_its_exclusions() -> None:
    router = _router()
    assert [d.upstream_model for d in router.resolve("open/anything-at-all")] == ["anything-at-all"]
    assert [d.upstream_model for d in router.resolve("openai/llama3")] == ["llama3"]
    assert router.resolve("open/x-preview") == []


def test_official_endpoint_without_a_list_serves_its_family_and_the_404_says_how_to_force() -> None:
    router = Router(Config(providers=(ProviderConfig(type=ProviderType.OPENAI, name="openai",
                                                     credentials=(Credential("k"),)),), echo_model=False))
    assert [d.upstream_model for d in router.resolve("gpt-4o")] == ["gpt-4o"]
    assert [d.upstream_model for d in router.resolve("ft:gpt-4o-mini:org::x")] == ["ft:gpt-4o-mini:org::x"]
    with pytest.raises(ClientError) as caught:
        router.require("llama3")
    assert caught.value.status == 404
    assert "openai (gpt-*" in caught.value.message and "'openai/llama3'" in caught.value.message



def test_the_cli_and_the_models_endpoint_read_one_listing() -> None:
    """``muxtrio models`` prints the router's listing; ``/v1/models`` is it without patterns and repeats."""
    from muxtrio.cli import model_names

    second = ProviderConfig(type=ProviderType.OPENAI, name="second", base_url="http://127.0.0.1:9/v1",
                            credentials=(Credential("k"),),
                            models=(ModelConfig(name="gpt-4o-mini", alias="allowed-model"), ModelConfig(name="old-1")),
                            excluded_models=("old-*",))  # fmt: skip
    config = Config(providers=(*_router().config.providers, second), echo_model=False,
                    aliases={"mini": "allowed-model"})  # fmt: skip
    printed = model_names(config)
    assert printed[:2] == [("allowed-model", "restricted"), ("*", "open")]
    assert ("gpt-*", "openai") in printed
    assert ("allowed-model", "second") in printed and ("old-1", "second") not in printed
    assert printed[-1] == ("mini", "-> allowed-model")
    assert [entry.id for entry in Router(config).models()] == ["allowed-model", "mini"]


def _candidates(keys: int, max_retries: int, max_wait: float) -> tuple[Candidates, CredentialPool]:
    provider = ProviderConfig(type=ProviderType.OPENAI, name="p", base_url="http://127.0.0.1:9/v1",
                              credentials=tuple(Credential(f"k{i}") for i in range(keys)), models=(ModelConfig("m"),))
    router = Router(Config(providers=(provider,), echo_model=False))
    pool = CredentialPool("p", [(f"k{i}", None) for i in range(keys)])
    return Candidates(router.resolve("m"), {"p": pool}, max_retries, max_wait), pool  # fmt: skip


async def test_candidates_give_each_credential_once_then_say_none_is_left() -> None:
    candidates, _ = _candidates(keys=2, max_retries=3, max_wait=10.0)
    names = []
    async for candidate in candidates:
        names.append(candidate.credential.index)
        candidates.failed(candidate)
    assert sorted(names) == [0, 1]
    assert candidates.outage is None and candidates.retries == 0


async def test_candidates_wait_out_a_short_cooldown_within_the_retry_budget(autojump_clock: trio.abc.Clock) -> None:
    candidates, pool = _candidates(keys=1, max_retries=1, max_wait=10.0)
    seen: list[float] = []
    async for candidate in candidates:
        seen.append(trio.current_time())
        pool.on_rate_limit(candidate.credential, "m", trio.current_time(), 5.0)
        candidates.failed(candidate)
    assert seen == [0.0, 5.0]  # waited for the cooldown once, then the budget was spent
    assert candidates.retries == 1
    assert candidates.outage is not None and candidates.outage[0].reason is OutageReason.RATE_LIMITED


async def test_candidates_do_not_wait_for_a_cooldown_longer_than_max_wait(autojump_clock: trio.abc.Clock) -> None:
    candidates, pool = _candidates(keys=1, max_retries=3, max_wait=2.0)
    async for candidate in candidates:
        pool.on_rate_limit(candidate.credential, "m", trio.current_time(), 5.0)
        candidates.failed(candidate)
    assert trio.current_time() == 0.0 and candidates.retries == 0
    assert candidates.outage is not None and candidates.outage[0].until == 5.0

"""The response cache's pure half: keys, plans, entries, a cached answer streamed again, the headers."""

from __future__ import annotations

from typing import Any

from schemas.config import GatewayConfig
from schemas.governance import KeyCache, VirtualKey
from stages.cache import (
    Entry,
    cache_key,
    pieces,
    plan_for,
    question_of,
    scope_of,
    semantic_configured,
    stream_chunks,
    streamed_answer,
)

BODY: dict[str, Any] = {"model": "fast", "messages": [{"role": "user", "content": "mail <EMAIL_ADDRESS_1> today"}],
                        "temperature": 0.2}


def config(**cache: Any) -> GatewayConfig:
    return GatewayConfig.model_validate({
        "providers": {"p": {"type": "openai", "base_url": "http://127.0.0.1:1/v1"}},
        "models": {"fast": {"targets": [{"provider": "p", "model": "m"}]},
                   "slow": {"targets": [{"provider": "p", "model": "m"}], "cache": {"mode": "off"}}},
        "cache": cache})


def key(cache: KeyCache | None = None) -> VirtualKey:
    return VirtualKey(id="k", tenant="acme", cache=cache)


def test_the_key_ignores_what_does_not_shape_the_answer_and_keeps_what_does() -> None:
    base = cache_key("acme", "fast", BODY)
    assert cache_key("acme", "fast", {**BODY, "user": "u1", "metadata": {"a": "b"}, "stream": True,
                                      "stream_options": {"include_usage": True}}) == base
    assert cache_key("acme", "fast", dict(reversed(list(BODY.items())))) == base  # key order
    for changed in ({**BODY, "temperature": 0.3}, {**BODY, "seed": 1}, {**BODY, "max_tokens": 5},
                    {**BODY, "tools": [{"type": "function", "function": {"name": "f"}}]},
                    {**BODY, "messages": [{"role": "user", "content": "mail <EMAIL_ADDRESS_2> today"}]}):
        assert cache_key("acme", "fast", changed) != base
    assert cache_key("globex", "fast", BODY) != base and cache_key("acme", "slow", BODY) != base


def test_the_keys_settings_win_over_the_aliases_which_win_over_the_configs() -> None:
    on = config(mode="exact", ttl_s=60)
    plan = plan_for(on, key(), "fast", BODY, "acme", "")
    assert (plan.status, plan.ttl_s, plan.key) == ("miss", 60, cache_key("acme", "fast", BODY))
    assert plan.looks_up and plan.stores
    assert plan_for(on, key(), "slow", BODY, "acme", "").status == ""  # the alias turns it off
    assert plan_for(on, key(KeyCache(mode="off")), "fast", BODY, "acme", "").status == ""
    assert plan_for(config(), key(KeyCache(mode="exact", ttl_s=5)), "slow", BODY, "acme", "").ttl_s == 5
    assert plan_for(config(), key(), "fast", BODY, "acme", "").status == ""  # off by default


def test_directives_in_the_plan() -> None:
    on = config(mode="exact")
    bypass = plan_for(on, key(), "fast", BODY, "acme", "no-cache")
    assert bypass.status == "bypass" and not bypass.looks_up and not bypass.stores
    refresh = plan_for(on, key(), "fast", BODY, "acme", "refresh")
    assert refresh.status == "refresh" and not refresh.looks_up and refresh.stores
    no_store = plan_for(on, key(), "fast", BODY, "acme", "no-store")
    assert no_store.looks_up and no_store.max_entry_bytes == 0  # looked up, never stored


def test_an_unquoted_yaml_off_is_off() -> None:
    assert config(mode=False).cache.mode == "off"


def test_semantic_mode_plans_a_scope_and_the_threshold() -> None:
    plan = plan_for(config(mode="semantic", similarity=0.85), None, "fast", BODY, "acme", "")
    assert plan.status == "miss" and plan.key == cache_key("acme", "fast", BODY)
    assert plan.scope and plan.similarity == 0.85


def test_the_scope_ignores_the_question_and_nothing_else() -> None:
    other_question = {**BODY, "messages": [{"role": "user", "content": "something else entirely"}]}
    other_system = {**BODY, "messages": [{"role": "system", "content": "be terse"}, *BODY["messages"]]}
    assert scope_of("acme", "fast", BODY) == scope_of("acme", "fast", other_question)
    assert scope_of("acme", "fast", BODY) != scope_of("acme", "fast", other_system)
    assert scope_of("acme", "fast", BODY) != scope_of("acme", "fast", {**BODY, "temperature": 0.9})
    assert scope_of("acme", "fast", BODY) != scope_of("globex", "fast", BODY)
    assert scope_of("acme", "fast", BODY) != scope_of("acme", "slow", BODY)
    assert scope_of("acme", "fast", BODY) == scope_of("acme", "fast", {**BODY, "user": "u1", "stream": True})


def test_only_a_plain_text_user_question_is_compared() -> None:
    assert question_of(BODY) == "mail <EMAIL_ADDRESS_1> today"
    parts = {"messages": [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]}
    assert question_of(parts) == "a\nb"
    image = {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}
    assert question_of(image) is None
    assert question_of({"messages": [{"role": "assistant", "content": "hi"}]}) is None
    semantic_image = plan_for(config(mode="semantic"), None, "fast", {**BODY, **image}, "acme", "")
    assert semantic_image.status == "miss" and not semantic_image.scope  # exact only


def test_semantic_is_configured_anywhere() -> None:
    assert not semantic_configured(config(mode="exact"))
    assert semantic_configured(config(mode="semantic"))


def test_entries_round_trip_and_age() -> None:
    entry = Entry({"choices": []}, "p", "m", 3, 4, "0.000001", stored_at=1000.0)
    again = Entry.decode(entry.encode())
    assert again == entry and again.age_s(1010.0) == 10.0 and again.fresh(11, 1010.0) and not again.fresh(10, 1010.0)
    assert Entry.decode(b"not json") is None and Entry.decode(b'{"v": 2}') is None


def test_a_cached_answer_streams_again_in_pieces() -> None:
    text = "The quarterly report is attached and the numbers look fine overall."
    response = streamed_answer({0: text}, {0: "stop"}, "m")
    chunks = stream_chunks(response, "chatcmpl-1", 7)
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert deltas[0] == {"role": "assistant", "content": ""} and chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert "".join(d.get("content") or "" for d in deltas) == text and len(deltas) >= 5
    assert all(c["id"] == "chatcmpl-1" and c["object"] == "chat.completion.chunk" for c in chunks)
    assert "".join(pieces(text)) == text and all(len(p) <= 24 for p in pieces(text))
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    message = {"content": None, "tool_calls": [call]}
    calls = stream_chunks({"choices": [{"index": 0, "finish_reason": "tool_calls", "message": message}]}, "x", 1)
    assert calls[1]["choices"][0]["delta"]["tool_calls"][0]["index"] == 0
    assert calls[-1]["choices"][0]["finish_reason"] == "tool_calls"

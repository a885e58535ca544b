from __future__ import annotations

from typing import Any, ClassVar

import pytest

from schemas.errors import InvalidRequest
from stages.providers.openai_compat import OpenAICompatAdapter

from .contract_base import ProviderContract


class TestGroqContract(ProviderContract):
    provider_type = "groq"
    adapter_class = OpenAICompatAdapter
    config: ClassVar[dict[str, Any]] = {"type": "groq"}
    auth_header = "Authorization"

    def test_more_than_one_choice_is_refused_before_sending(self) -> None:
        body = {"messages": [{"role": "user", "content": "x"}], "n": 3}
        with pytest.raises(InvalidRequest) as raised:
            self.adapter.to_provider_request(self.provider(), "llama-3.1-8b-instant", body, stream=False, api_key="k")
        assert raised.value.param == "n" and not raised.value.retryable

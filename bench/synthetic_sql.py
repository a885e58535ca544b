"""The SQL that generates synthetic traffic inside ClickHouse: ``INSERT ... SELECT ... FROM numbers()``.

Why SQL and not Python: building 10 million ``RequestCompleted`` events in Python and passing them
through ``Store.write`` runs at tens of thousands of rows a second (the sink's cost, measured elsewhere),
so 10M rows would take the better part of an hour; the engine generates them at hundreds of
thousands a second and the rows land through the same tables, materialized views and column defaults.

Determinism: every random value is ``intHash64(sipHash64(seed, number) + crc32('<what>'))`` scaled to
[0, 1) (normals by Box-Muller from two of them), so a row depends only on (seed, its number, the total, the time range):
the same arguments give byte-identical tables. Row ``n`` of ``total`` falls at time fraction
``n / total`` warped by a daily cycle (busiest at 15:00 UTC, quietest at 03:00), so consecutive
batches cover consecutive time ranges, as a sink's inserts do.

``requests_select`` is one SELECT producing every generated column of a request; the three INSERTs
(``requests``, ``guardrail_verdicts``, ``events``) read from it for the same number range, and
ClickHouse prunes the columns each one does not use (the bodies are only built for ``requests``).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from bench.traffic_mix import PricedModel
from schemas.events import SCHEMA_VERSION

TENANTS = 40
"""Tenant ``t00`` gets ~23 % of the traffic, ``t39`` ~0.1 %: ``floor(40 * u^2.5)``."""

SENTENCES = (
    "Summarise the following support ticket from <PERSON_1> in three bullet points.",
    "The customer at <EMAIL_ADDRESS_1> reports that invoices since March show the wrong VAT rate.",
    "Translate the paragraph below into German, keeping the product names unchanged.",
    "Write a polite reply that explains the refund will take five to seven business days.",
    "Extract every date, amount and account reference from this statement as JSON.",
    "Our deployment pipeline fails at the integration step with a timeout after 900 seconds.",
    "Classify the sentiment of each review as positive, negative or mixed and give a reason.",
    "Here is the stack trace: KeyError: 'region' in handler.py line 212, called from main.py.",
    "Draft a release note for version 4.2 covering the new export API and the bug fixes.",
    "Call <PERSON_2> back at <PHONE_NUMBER_1> about the delivery that arrived damaged.",
    "Rewrite this SQL so it uses a window function instead of the correlated subquery.",
    "List the risks of migrating the billing database during the quarter-end close.",
    "Answer only from the context below; if the answer is not there, say you do not know.",
    "The contract renews on the first of the month unless either party gives notice.",
    "Generate five test cases for a function that parses ISO-8601 durations.",
    "Explain the difference between a mutex and a semaphore to a new team member.",
    "Context: the warehouse in Rotterdam ships on weekdays, the one in Lyon on Saturdays too.",
    "Propose three subject lines for the newsletter about the spring product launch.",
    "Check this paragraph for grammar and tone; keep it under one hundred and twenty words.",
    "Given the table of monthly active users, describe the trend and any anomaly.",
    "The patient record of <PERSON_3> was moved to the archive on request of the clinic.",
    "Convert the following YAML configuration into the equivalent TOML.",
    "What are the tax implications of paying a contractor in another EU member state?",
    "Return the answer as a JSON object with the keys title, summary and tags.",
)
ANSWERS = (
    "Here is a summary of the main points.",
    "The invoice shows a VAT rate of 19 percent where 7 percent applies to these items.",
    "I could not find that information in the provided context.",
    "1. Check the timeout setting of the integration job. 2. Look at the database locks.",
    "Sehr geehrte Damen und Herren, vielen Dank für Ihre Nachricht.",
    "{\\\"title\\\": \\\"Release 4.2\\\", \\\"summary\\\": \\\"New export API\\\", \\\"tags\\\": [\\\"api\\\"]}",
    "The refund has been approved and will reach <PERSON_1> within five to seven business days.",
    "A mutex has an owner and guards one resource; a semaphore counts available slots.",
    "Overall sentiment: mixed. The reviewers like the price but not the battery life.",
    "SELECT user_id, sum(amount) OVER (PARTITION BY user_id ORDER BY ts) FROM payments",
    "The anomaly in week 32 coincides with the outage reported on the status page.",
    "Risk 1: locking during the close. Risk 2: rollback time. Risk 3: reporting gaps.",
)


@dataclass(frozen=True, slots=True)
class Window:
    """Which rows and when: rows ``[lo, hi)`` of ``total`` spread over ``[start_s, start_s + span_s)``."""

    seed: int
    lo: int
    hi: int
    total: int
    start_s: int
    span_s: int


def _str_array(values: list[str] | tuple[str, ...]) -> str:
    return "[" + ", ".join("'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'" for v in values) + "]"


def _num_array(values: list[float]) -> str:
    return "[" + ", ".join(repr(float(v)) for v in values) + "]"


def requests_select(w: Window, mix: list[PricedModel]) -> str:
    """One SELECT with every generated column of the requests numbered ``[w.lo, w.hi)``."""
    seed = int(w.seed)

    def u(what: str, *keys: str) -> str:
        """A uniform in [0, 1): ``intHash64`` of the row's hash plus a salt named ``what`` (cheap: one
        sipHash64 per row, ``row_hash``), or ``sipHash64`` of the given key expressions."""
        if keys:
            return f"(sipHash64({seed}, {', '.join(keys)}, '{what}') / 18446744073709551616.0)"
        return f"(intHash64(row_hash + {zlib.crc32(what.encode())}) / 18446744073709551616.0)"

    def normal(what: str) -> str:
        return (f"(sqrt(-2 * log(greatest({u(what + '.a')}, 1e-12))) * cos(2 * pi() * {u(what + '.b')}))")

    weights = [m.profile.weight for m in mix]
    total_weight = sum(weights)
    cumulative: list[float] = []
    running = 0.0
    for weight in weights:
        running += weight / total_weight
        cumulative.append(running)
    cumulative[-1] = 1.0
    days = max(1, round(w.span_s / 86400))  # whole days: the warp then maps [0, 1] onto [0, 1]
    phase = -2 * 3.141592653589793 * 0.625  # the cycle's densest point at 15:00 UTC
    amplitude = 0.5
    providers = _str_array([m.profile.provider for m in mix])
    models = _str_array([m.profile.model for m in mix])
    return f"""
SELECT
    number,
    greatest(0., least(1., x - {amplitude} * (sin(2 * pi() * {days} * x + {phase}) - sin({phase}))
                                / (2 * pi() * {days}))) AS t,
    toDateTime64({w.start_s} + {w.span_s} * t, 3, 'UTC') AS ts,
    toUInt32(floor({TENANTS} * pow({u('tenant')}, 2.5))) AS tenant_idx,
    concat('t', leftPad(toString(tenant_idx), 2, '0')) AS tenant,
    1 + sipHash64({seed}, tenant_idx, 'keys') % 24 AS key_count,
    toUInt32(floor(key_count * pow({u('key')}, 1.8))) AS key_idx,
    concat('key_', toString(tenant_idx), '_', toString(key_idx)) AS api_key_id,
    concat('team_', toString(key_idx % 5)) AS team,
    concat('user_', toString(tenant_idx), '_', toString(toUInt32(floor(300 * pow({u('user')}, 3))))) AS user,
    {_num_array(cumulative)} AS cum_weights,
    if({u('preferred')} < 0.75, {u('key_model', 'tenant_idx', 'key_idx')}, {u('model')}) AS model_u,
    greatest(1, arrayFirstIndex(c -> c > model_u, cum_weights)) AS m,
    {providers}[m] AS provider_name,
    {models}[m] AS model_requested,
    {_num_array([m.profile.error_rate for m in mix])}[m] AS error_rate,
    {_num_array([m.profile.ttft_ms for m in mix])}[m] AS ttft_median,
    {_num_array([m.profile.ms_per_token for m in mix])}[m] AS ms_per_token,
    {_num_array([m.profile.completion_tokens for m in mix])}[m] AS completion_median,
    {_num_array([-1.0 if m.input_per_mtok is None else m.input_per_mtok for m in mix])}[m] AS in_price,
    {_num_array([0.0 if m.output_per_mtok is None else m.output_per_mtok for m in mix])}[m] AS out_price,
    {_num_array([-1.0 if m.cached_per_mtok is None else m.cached_per_mtok for m in mix])}[m] AS cached_price,
    completion_median = 0 AS embedding,
    {u('limit')} < 0.003 AS refused,
    if({u('profile')} < 0.7, 'default', '') AS guardrail_profile,
    multiIf(guardrail_profile = '', '', {u('inj')} < 0.004, 'block', {u('inj')} < 0.024, 'flag', 'pass') AS inj,
    multiIf(guardrail_profile = '', '', {u('sec')} < 0.015, 'redact', {u('sec')} < 0.02, 'flag', 'pass') AS sec,
    inj = 'block' AS blocked,
    NOT refused AND NOT blocked AS called,
    called AND {u('fail')} < error_rate AS failed,
    called AND NOT failed AS ok,
    multiIf(NOT failed, 0, {u('etype')} < 0.4, 429, {u('etype')} < 0.65, 502, {u('etype')} < 0.75, 503,
            {u('etype')} < 0.85, 504, 400) AS provider_status,
    multiIf(refused, 429, blocked, 400, failed, provider_status, 200) AS status_code,
    multiIf(refused, 'insufficient_quota', blocked, 'invalid_request_error', status_code = 429, 'rate_limit_error',
            status_code = 504, 'timeout_error', status_code >= 500, 'upstream_error',
            status_code = 400, 'invalid_request_error', '') AS error_type,
    multiIf(refused, 'budget_exceeded', blocked, 'content_blocked', status_code = 429, 'rate_limit_exceeded',
            status_code = 504, 'provider_timeout', status_code = 503, 'provider_unavailable',
            status_code = 502, 'provider_error', status_code = 400, 'invalid_request', '') AS error_code,
    multiIf(error_code = '', '', blocked, 'the request was blocked by guardrail injection',
            refused, concat('budget of key ', api_key_id, ' exhausted'),
            concat(provider_name, ' answered ', toString(status_code))) AS error_message,
    if(guardrail_profile != '' AND ok, if({u('pii_out')} < 0.03, 'redact', 'pass'), '') AS out_guard,
    if(guardrail_profile = '', map(),
       mapFromArrays(if(out_guard = '', ['injection', 'secrets'], ['injection', 'secrets', 'pii_output']),
                     if(out_guard = '', [inj, sec], [inj, sec, out_guard]))) AS guardrail_outcomes,
    NOT embedding AND {u('batch')} < 0.05 AS batch_line,
    NOT embedding AND NOT batch_line AND {u('stream')} < 0.55 AS stream,
    if(called, toUInt32(least(120000, greatest(8, exp(log(550) + 0.9 * {normal('prompt')})))), 0) AS prompt_tokens,
    if(ok AND NOT embedding,
       toUInt32(least(16000, greatest(1, exp(log(completion_median) + 0.7 * {normal('completion')})))), 0)
        AS completion_tokens,
    if(ok AND cached_price >= 0 AND {u('cache')} < 0.25,
       toUInt32(prompt_tokens * (0.3 + 0.6 * {u('cache_share')})), 0) AS cached_tokens,
    if(in_price < 0, NULL,
       toDecimal64(((prompt_tokens - cached_tokens) * in_price + cached_tokens * cached_price
                    + completion_tokens * out_price) / 1e6, 9)) AS cost,
    ttft_median * exp(0.45 * {normal('ttft')}) * if({u('slow')} < 0.01, 4, 1) AS ttft,
    completion_tokens * ms_per_token * exp(0.25 * {normal('decode')}) AS decode,
    4 + 5 * exp(0.5 * {normal('overhead')}) AS overhead,
    multiIf(NOT called, 0, NOT failed, ttft + decode, status_code = 504, 30000 + 100 * {u('late')},
            status_code = 429, 40 + 60 * {u('quick')}, ttft * 0.6) AS provider_ms,
    called AND {u('retry')} < 0.04 AS retried,
    provider_ms * if(retried, 1.8, 1) + overhead AS latency_ms,
    if(stream AND ok, ttft + overhead * 0.5, NULL) AS ttfb_ms,
    multiIf(NOT called, 0, retried, 2, 1) AS attempts,
    multiIf({u('pii')} < 0.18, map('PERSON', toUInt16(1 + sipHash64({seed}, number, 'pn') % 3)),
            {u('pii')} < 0.26, map('EMAIL_ADDRESS', toUInt16(1), 'PHONE_NUMBER', toUInt16(1)),
            map()) AS redaction_counts,
    arrayConcat(['redaction', 'policy'], if(called, ['routing', 'provider'], []), if(ok, ['output_filter'], []))
        AS stages,
    arrayMap(s -> toFloat32(multiIf(s = 'provider', provider_ms, s = 'redaction', overhead * 0.45,
                                    s = 'policy', overhead * 0.15, s = 'routing', overhead * 0.1, overhead * 0.3)),
             stages) AS stage_durations,
    multiIf(refused, 'policy', blocked, 'redaction', failed, 'provider', 'output_filter') AS final_stage,
    toUInt32(least(80, greatest(1, exp(log(10) + 0.8 * {normal('request_body')})))) AS request_sentences,
    toUInt32(least(40, greatest(1, completion_tokens / 12))) AS answer_sentences,
    if(batch_line, concat('batch_', lower(hex(sipHash64({seed}, tenant_idx, intDiv(toUInt32(ts), 3600))))), '')
        AS batch_id
FROM (SELECT number, row_hash, (number + {u('jitter')}) / {w.total} AS x
      FROM (SELECT number, sipHash64({seed}, number) AS row_hash FROM numbers({w.lo}, {w.hi - w.lo})))
"""


def _uuid7(ts_ms: str, key: str) -> str:
    """A UUIDv7-shaped id: the row's epoch milliseconds, then 74 bits of ``sipHash64(key)``."""
    return (
        f"toUUID(concat(substring(lower(leftPad(hex(toUInt64({ts_ms})), 12, '0')), 1, 8), '-', "
        f"substring(lower(leftPad(hex(toUInt64({ts_ms})), 12, '0')), 9, 4), '-7', "
        f"substring(lower(leftPad(hex(sipHash64({key}, 'a')), 16, '0')), 1, 3), '-8', "
        f"substring(lower(leftPad(hex(sipHash64({key}, 'a')), 16, '0')), 4, 3), '-', "
        f"substring(lower(leftPad(hex(sipHash64({key}, 'b')), 16, '0')), 1, 12)))"
    )


def _request_columns(w: Window) -> dict[str, str]:
    """Each ``requests`` column the generator writes -> its expression over ``requests_select``."""
    seed = int(w.seed)
    ts_ms = "toUnixTimestamp64Milli(ts)"
    sentences, answers = _str_array(SENTENCES), _str_array(ANSWERS)
    columns = {
        "request_id": _uuid7(ts_ms, f"{seed}, number, 'request_id'"),
        "event_id": _uuid7(ts_ms, f"{seed}, number, 'completed'"),
        "ts": "ts",
        "finished_at": "ts + toIntervalMillisecond(toUInt64(latency_ms))",
        "tenant": "tenant",
        "api_key_id": "api_key_id",
        "team": "team",
        "user": "user",
        "tags": f"map('team', team, 'env', "
                f"if(sipHash64({seed}, tenant_idx, key_idx, 'env') % 4 = 0, 'staging', 'prod'))",
        "endpoint": "multiIf(embedding, 'embeddings', provider_name = 'anthropic' AND number % 2 = 0, 'messages', "
                    "'chat.completions')",
        "model_requested": "model_requested",
        "model_served": "if(called, model_requested, '')",
        "provider": "if(called, provider_name, '')",
        "route_path": "if(called, concat(model_requested, '/', provider_name), '')",
        "stream": "stream",
        "status_code": "status_code",
        "error_type": "error_type",
        "error_code": "error_code",
        "error_message": "error_message",
        "prompt_tokens": "prompt_tokens",
        "completion_tokens": "completion_tokens",
        "cached_tokens": "cached_tokens",
        "usage_source": "if(ok, 'provider', 'none')",
        "cost_usd": "CAST(cost AS Nullable(Decimal(18, 9)))",
        "latency_ms": "latency_ms",
        "ttfb_ms": "ttfb_ms",
        "provider_ms": "provider_ms",
        "gateway_overhead_ms": "overhead",
        "attempts": "attempts",
        "redactions": "toUInt16(arraySum(mapValues(redaction_counts)))",
        "redaction_counts": "redaction_counts",
        "delivery": "1",
        "stage_ms": "CAST(mapFromArrays(stages, stage_durations) AS Map(LowCardinality(String), Float32))",
        "request_body": (
            "concat('{\"model\":\"', model_requested, '\",\"messages\":[{\"role\":\"system\",\"content\":"
            "\"You are the assistant of ', tenant, '.\"},{\"role\":\"user\",\"content\":\"', "
            f"arrayStringConcat(arrayMap(i -> {sentences}[1 + sipHash64({seed}, number, i) % {len(SENTENCES)}], "
            "range(request_sentences)), ' '), '\"}]}')"
        ),
        "response_body": (
            "if(ok AND NOT embedding, concat('{\"role\":\"assistant\",\"content\":\"', "
            f"arrayStringConcat(arrayMap(i -> {answers}[1 + sipHash64({seed}, number, i, 'r') % {len(ANSWERS)}], "
            "range(answer_sentences)), ' '), '\"}'), '')"
        ),
        "stage": "final_stage",
        "schema_version": str(SCHEMA_VERSION),
        "guardrail_profile": "guardrail_profile",
        "guardrail_outcomes": "guardrail_outcomes",
        "limit_scopes": "if(refused, [concat('key.', api_key_id)], [])",
        "limit_refused": "if(refused, concat('key.', api_key_id, ' budget'), '')",
        "config_version": "concat('cfg-', toString(intDiv(toUInt32(ts), 7 * 86400)))",
        "batch_id": "batch_id",
        "custom_id": "if(batch_line, concat('line-', toString(number % 100000)), '')",
        "inserted_at": "ts + toIntervalMillisecond(toUInt64(latency_ms) + 300)",
    }
    return columns


def request_rows(w: Window, mix: list[PricedModel]) -> str:
    """The ``requests`` rows of the window: a SELECT whose columns are named as the table's."""
    listed = ",\n    ".join(f"{expression} AS {name}" for name, expression in _request_columns(w).items())
    return f"SELECT\n    {listed}\nFROM ({requests_select(w, mix)})"


def insert_requests(w: Window, mix: list[PricedModel]) -> str:
    return f"INSERT INTO requests ({', '.join(_request_columns(w))})\n{request_rows(w, mix)}"


def insert_verdicts(w: Window, mix: list[PricedModel]) -> str:
    """One ``guardrail_verdicts`` row per entry of each request's ``guardrail_outcomes``."""
    seed = int(w.seed)
    return f"""
INSERT INTO guardrail_verdicts (request_id, seq, ts, tenant, api_key_id, user, model_requested, route_path,
    provider, profile, guardrail, kind, phase, outcome, score, findings, duration_ms, status_code, delivery,
    schema_version, inserted_at)
SELECT
    {_uuid7("toUnixTimestamp64Milli(ts)", f"{seed}, number, 'request_id'")},
    toUInt16(i - 1), ts, tenant, api_key_id, user, model_requested,
    if(called, concat(model_requested, '/', provider_name), ''), if(called, provider_name, ''),
    guardrail_profile, guardrail, transform(guardrail, ['injection', 'secrets', 'pii_output'],
                                            ['prompt_injection', 'secrets', 'presidio'], ''),
    if(guardrail = 'pii_output', 'output', 'input'), outcome,
    toFloat32(multiIf(outcome = 'block', 0.97, outcome = 'flag', 0.7, outcome = 'redact', 0.9, 0.02)),
    if(outcome = 'pass', map(),
       map(transform(guardrail, ['injection', 'secrets', 'pii_output'], ['INJECTION', 'API_KEY', 'EMAIL_ADDRESS'],
                     'OTHER'), toUInt16(1))),
    toFloat32(if(guardrail = 'injection', 2 + 4 * (sipHash64({seed}, number, i) % 1000) / 1000., 0.3)),
    status_code, 1, {SCHEMA_VERSION}, ts + toIntervalMillisecond(toUInt64(latency_ms) + 300)
FROM ({requests_select(w, mix)})
ARRAY JOIN arrayEnumerate(mapKeys(guardrail_outcomes)) AS i,
           mapKeys(guardrail_outcomes) AS guardrail, mapValues(guardrail_outcomes) AS outcome
"""


def insert_events(w: Window, mix: list[PricedModel]) -> str:
    """One ``events`` row per stage the request passed, plus its ``request.completed`` row."""
    seed = int(w.seed)
    event_ms = "toUnixTimestamp64Milli(ts) + toUInt64(offset_ms)"
    return f"""
INSERT INTO events (event_id, request_id, ts, stage, type, status, tenant, api_key_id, duration_ms, delivery,
    attrs, schema_version, inserted_at)
SELECT
    {_uuid7(event_ms, f"{seed}, number, stage")},
    {_uuid7("toUnixTimestamp64Milli(ts)", f"{seed}, number, 'request_id'")},
    fromUnixTimestamp64Milli(toInt64({event_ms}), 'UTC'),
    stage,
    multiIf(stage = 'request.completed', 'request.completed', stage = 'redaction', 'request.redacted',
            stage = 'policy', if(refused, 'policy.failed', 'request.authorized'), stage = 'routing', 'route.planned',
            stage = 'provider', if(failed, 'provider.failed', 'provider.called'), 'response.passed'),
    if((stage = 'provider' AND failed) OR (stage = 'policy' AND refused)
       OR (stage = 'request.completed' AND status_code >= 400), 'error', 'ok'),
    tenant, api_key_id, duration, 1,
    if(stage = 'request.completed',
       concat('{{"status_code":', toString(status_code), ',"model_requested":"', model_requested,
              '","provider":"', if(called, provider_name, ''), '","prompt_tokens":', toString(prompt_tokens),
              ',"completion_tokens":', toString(completion_tokens), '}}'),
       if(stage = 'redaction' AND notEmpty(redaction_counts), '{{"counts":{{"PERSON":1}}}}', '{{}}')),
    {SCHEMA_VERSION}, ts + toIntervalMillisecond(toUInt64(latency_ms) + 300)
FROM ({requests_select(w, mix)})
ARRAY JOIN
    arrayPushBack(stages, 'request.completed') AS stage,
    arrayPushBack(stage_durations, toFloat32(latency_ms)) AS duration,
    arrayPushBack(arrayCumSum(stage_durations) - stage_durations, toFloat32(latency_ms)) AS offset_ms
"""

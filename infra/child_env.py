"""The environment each of ``gateway up``'s children starts with: what it needs, nothing more.

No child inherits the supervisor's environment. Every one gets the basics a process needs to run
(``BASE``: ``PATH``, ``HOME``, the locale, the time zone, the temporary directory, the loader path,
the CA certificates to trust);
Python children also ``PYTHON*`` and ``OTEL_*``; the gateway's own processes the settings variables
``infra/settings.py`` reads (derived from ``Settings``, not guessed), except those that belong to one
role only (``RESTRICTED``: the envelope key to ingress, redaction and the output filter, the admin key's hash to
ingress, ``CLICKHOUSE_URL`` to the sink) or to no child (``GATEWAY_NATS_CREDS``: one process's NATS
identity); nats-server the Go runtime's (``GO_RUNTIME``).

Secrets: a process gets the variables that the config's ``env:NAME`` references name only for the stages
it runs (``schemas.secret_refs.referenced_secrets``: a provider credential to the provider stage, the
hash salt to redaction). In the hosted layout each ``workers.host`` process runs every stage, provider
included; in the split layout only the provider processes get provider credentials. Ingress, the sink,
nats-server and the mock provider get none, and a name referenced as a secret is taken out of every
other process's environment even where the lists above would pass it.

The environment is fixed when a process starts: a config change (hot reload) that references a new
variable reaches no running process. Restart ``gateway up`` with the variable set.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import AliasChoices

from infra.settings import Settings
from schemas.config import GatewayConfig
from schemas.secret_refs import referenced_secrets

STAGES = ("redaction", "policy", "routing", "provider", "output_filter")
LANE_STAGES = tuple(f"{stage}_lane" for stage in STAGES)
"""The batch lane's process per stage in the split layout (``provider_lane`` ...): least privilege holds there too."""
KINDS = ("nats-server", "mock_provider", "sink", "ingress", "stages", "lane", "batch", *STAGES, *LANE_STAGES)
"""What a child is: nats-server, the mock provider, the sink, ingress, a ``workers.host`` (``stages``,
every stage), the batch lane's ``workers.host`` (``lane``), the batch driver, or one stage's process
(split layout), in the interactive lane (``policy``) or the batch lane (``policy_lane``)."""


def lane_of(kind: str) -> str:
    """The lane a child of this kind serves: ``batch`` for the batch lane's processes."""
    return "batch" if kind == "lane" or kind in LANE_STAGES else "interactive"

BASE = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TMP", "TEMP", "LD_LIBRARY_PATH",
        "SSL_CERT_FILE", "SSL_CERT_DIR")
"""``SSL_CERT_FILE``/``SSL_CERT_DIR``: a private CA for TLS to NATS and ClickHouse servers (Python's
default SSL context, which nats-py uses for ``tls://``, reads them; so does nats-server's Go runtime)."""
BASE_PREFIXES = ("LC_",)
PYTHON_PREFIXES = ("PYTHON", "OTEL_")
GO_RUNTIME = ("GOMAXPROCS", "GOMEMLIMIT", "GOGC", "GODEBUG", "GOTRACEBACK")
PRESIDIO = {"TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS": ""}
"""Set for the stages that load presidio (never go online for the public suffix list), default given."""
RESTRICTED: dict[str, frozenset[str]] = {
    "GATEWAY_ENVELOPE_KEY": frozenset({"ingress", "redaction", "output_filter", "batch"}),
    "GATEWAY_ADMIN_KEY_SHA256": frozenset({"ingress"}),
    "CLICKHOUSE_URL": frozenset({"sink"}),
    "GATEWAY_CLICKHOUSE_URL": frozenset({"sink"}),
    "GATEWAY_NATS_CREDS": frozenset(),
    "GATEWAY_LANE": frozenset(),
}
"""Settings variables that only these roles (a stage, ``ingress`` or ``sink``) read. ``GATEWAY_NATS_CREDS``
and ``GATEWAY_LANE`` reach no child from the environment: ``gateway up`` sets each child's NATS seed to
its own identity's and the lane to the one its kind serves (``batch`` for ``lane``)."""


def identity_for(kind: str) -> str | None:
    """The NATS identity (``infra/nats_permissions.py``) a child of this kind connects as; None for the
    children that do not connect (nats-server itself, the mock provider)."""
    roles = roles_of(kind)
    if kind == "lane":  # the batch lane's stage host: a workers.host like the hosted layout's
        return "stages"
    if kind in LANE_STAGES:  # one stage of the batch lane: that stage's identity
        return next(iter(roles))
    return None if kind in ("nats-server", "mock_provider") else kind


def roles_of(kind: str) -> frozenset[str]:
    """The roles a child of this kind plays: the stages it runs, or ``ingress``, ``sink``, ..."""
    if kind not in KINDS:
        raise ValueError(f"unknown child kind {kind!r}; one of {KINDS}")
    if kind in ("stages", "lane"):
        return frozenset(STAGES)
    return frozenset({kind.removesuffix("_lane")})


def settings_variables() -> frozenset[str]:
    """Every variable ``Settings`` reads (upper case: pydantic-settings matches names case-insensitively)."""
    prefix = str(Settings.model_config.get("env_prefix", ""))
    names: set[str] = set()
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names.update(str(choice) for choice in alias.choices)
        elif isinstance(alias, str):
            names.add(alias)
        else:
            names.add(prefix + name)
    return frozenset(n.upper() for n in names)


def child_env(kind: str, config: GatewayConfig, environ: Mapping[str, str]) -> dict[str, str]:
    """The environment a child of ``kind`` starts with, taken from ``environ`` (see the module doc)."""
    roles = roles_of(kind)
    python = kind != "nats-server"
    gateway = kind not in ("nats-server", "mock_provider")
    settings = settings_variables() if gateway else frozenset()
    secrets = referenced_secrets(config)
    own = {name for role in roles for name in secrets.get(role, frozenset())}
    others = {name for names in secrets.values() for name in names} - own

    def wanted(name: str) -> bool:
        upper = name.upper()
        if name in BASE or name.startswith(BASE_PREFIXES):
            return True
        if python and name.startswith(PYTHON_PREFIXES):
            return True
        if kind == "nats-server" and name in GO_RUNTIME:
            return True
        if upper in settings:
            return bool(RESTRICTED.get(upper, roles) & roles)
        return name in own

    env = {name: value for name, value in environ.items() if wanted(name) and name not in others}
    if roles & {"redaction", "output_filter"}:
        for name, default in PRESIDIO.items():
            env[name] = environ.get(name, default)
    return env


def secrets_not_given(config: GatewayConfig, started: GatewayConfig,
                      environ: Mapping[str, str]) -> dict[str, list[str]]:
    """Per stage, the variables ``config`` references that the processes started with ``started`` (their
    environment built from ``environ``) do not have: missing from ``environ``, or referenced only since."""
    lacking: dict[str, list[str]] = {}
    for stage, names in sorted(referenced_secrets(config).items()):
        given = child_env(stage, started, environ)
        missing = sorted(name for name in names if not given.get(name))
        if missing:
            lacking[stage] = missing
    return lacking

"""`gateway batch`: every command against a small fake of the OpenAI Files and Batch APIs
(``httpx.MockTransport``), with a fake clock and sleep; plus the pure parts (bar, rate, ETA, table, file check)."""

from __future__ import annotations

import argparse
import email.parser
import email.policy
import io
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from infra.operator import cli
from infra.operator.batch_cli import Runtime, add_parsers, parse_metadata
from infra.operator.batch_client import BatchClient, resolve_api_key, resolve_base_url
from infra.operator.batch_file import check_lines, with_model
from infra.operator.batch_view import (
    Batch,
    RateWindow,
    bar,
    eta_seconds,
    format_duration,
    list_table,
    progress_line,
    redraw,
)

KEY = "sk-test-key"
CHAT = "/v1/chat/completions"
# What each GET of a batch shows, one step per poll: (status, completed, failed); the last step stays.
STEPS = [("validating", 0, 0), ("in_progress", 0, 0), ("in_progress", 1, 0), ("in_progress", 2, 1),
         ("completed", 2, 1)]


def request_line(custom_id: str, url: str = CHAT, model: str = "gpt-4o-mini") -> str:
    return json.dumps({"custom_id": custom_id, "method": "POST", "url": url,
                       "body": {"model": model, "messages": [{"role": "user", "content": "hi"}]}})


class FakeGateway:
    """The Files and Batch APIs as OpenAI shapes them, in memory; a batch moves one ``STEPS`` step per GET."""

    def __init__(self, steps: list[tuple[str, int, int]] | None = None) -> None:
        self.steps = steps or STEPS
        self.files: dict[str, tuple[str, bytes]] = {}  # id -> (filename, content)
        self.batches: dict[str, dict[str, Any]] = {}
        self.polls: dict[str, int] = {}
        self.seen: list[httpx.Request] = []
        self.fail_with: tuple[int, dict[str, Any]] | None = None

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        if self.fail_with is not None:
            return httpx.Response(self.fail_with[0], json=self.fail_with[1])
        if request.headers.get("authorization") != f"Bearer {KEY}":
            return self.error(401, "Incorrect API key provided.", "invalid_api_key")
        path, method = request.url.path, request.method
        if method == "POST" and path == "/v1/files":
            return self.upload(request)
        if method == "GET" and path.startswith("/v1/files/") and path.endswith("/content"):
            found = self.files.get(path.split("/")[3])
            return httpx.Response(200, content=found[1]) if found else self.error(404, "No such File object.")
        if method == "POST" and path == "/v1/batches":
            return self.create(json.loads(request.content))
        if method == "GET" and path == "/v1/batches":
            limit = int(request.url.params.get("limit", "20"))
            newest = list(reversed(self.batches.values()))
            return httpx.Response(200, json={"object": "list", "data": newest[:limit], "has_more": len(newest) > limit,
                                             "first_id": None, "last_id": None})
        parts = path.split("/")
        batch = self.batches.get(parts[3]) if len(parts) > 3 and path.startswith("/v1/batches/") else None
        if batch is None:
            return self.error(404, f"No batch found with id '{parts[-1]}'.")
        if method == "POST" and path.endswith("/cancel"):
            batch.update(status="cancelling", cancelling_at=1_796_000_100)
            return httpx.Response(200, json=batch)
        return httpx.Response(200, json=self.advance(batch))

    @staticmethod
    def error(status: int, message: str, code: str | None = None) -> httpx.Response:
        return httpx.Response(status, json={"error": {"message": message, "type": "invalid_request_error",
                                                      "param": None, "code": code}})

    def upload(self, request: httpx.Request) -> httpx.Response:
        head = f"Content-Type: {request.headers['content-type']}\r\n\r\n".encode()
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + request.read())
        fields = {part.get_param("name", header="content-disposition"): part for part in message.iter_parts()}
        assert fields["purpose"].get_content().strip() == "batch"
        file_id = f"file-{len(self.files) + 1:032x}"
        content = fields["file"].get_payload(decode=True)
        assert isinstance(content, bytes)
        self.files[file_id] = (str(fields["file"].get_filename()), content)
        return httpx.Response(200, json={"id": file_id, "object": "file", "bytes": len(self.files[file_id][1]),
                                         "created_at": 1_796_000_000, "filename": self.files[file_id][0],
                                         "purpose": "batch", "status": "processed"})

    def create(self, body: dict[str, Any]) -> httpx.Response:
        if body["input_file_id"] not in self.files:
            return self.error(400, f"Invalid input_file_id '{body['input_file_id']}'.")
        batch_id = f"batch_{len(self.batches) + 1:04d}"
        self.batches[batch_id] = {
            "id": batch_id, "object": "batch", "endpoint": body["endpoint"], "errors": None,
            "input_file_id": body["input_file_id"], "completion_window": body["completion_window"],
            "status": "validating", "output_file_id": None, "error_file_id": None, "created_at": 1_796_000_000,
            "in_progress_at": None, "expires_at": 1_796_086_400, "finalizing_at": None, "completed_at": None,
            "failed_at": None, "expired_at": None, "cancelling_at": None, "cancelled_at": None,
            "request_counts": {"total": 0, "completed": 0, "failed": 0}, "metadata": body.get("metadata")}
        self.polls[batch_id] = 0
        return httpx.Response(200, json=self.batches[batch_id])

    def advance(self, batch: dict[str, Any]) -> dict[str, Any]:
        if batch["status"] in ("cancelling", "completed", "failed"):
            return batch
        step = self.steps[min(self.polls[batch["id"]], len(self.steps) - 1)]
        self.polls[batch["id"]] += 1
        status, completed, failed = step
        batch.update(status=status, request_counts={"total": 0 if status in ("validating", "failed") else 3,
                                                    "completed": completed, "failed": failed})
        if status == "in_progress":
            batch["in_progress_at"] = batch["in_progress_at"] or 1_796_000_005
        if status == "completed":
            self.files["file-out"] = ("output.jsonl", b'{"custom_id":"a"}\n{"custom_id":"b"}\n')
            self.files["file-err"] = ("errors.jsonl", b'{"custom_id":"c","error":{"message":"boom"}}\n')
            batch.update(completed_at=1_796_000_130, output_file_id="file-out", error_file_id="file-err")
        if status == "failed":
            batch.update(failed_at=1_796_000_010, errors={"object": "list", "data": [
                {"code": "invalid_model", "message": "Model 'nope' is not served by this gateway.", "line": 2,
                 "param": "body.model"}]})
        return batch

    def calls(self) -> list[str]:
        return [f"{r.method} {r.url.path}" for r in self.seen]


class Clock:
    """A fake monotonic clock that ``sleep`` moves forward; ``interrupt_at`` raises Ctrl-C on that sleep."""

    def __init__(self, interrupt_at: int | None = None) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []
        self.interrupt_at = interrupt_at

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if self.interrupt_at is not None and len(self.sleeps) == self.interrupt_at:
            raise KeyboardInterrupt
        self.now += seconds


class Cli:
    """``gateway batch ...`` run against a fake gateway, its output captured."""

    def __init__(self, gateway: FakeGateway | None = None, *, tty: bool = False, clock: Clock | None = None,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.gateway = gateway or FakeGateway()
        self.clock = clock or Clock()
        self.out, self.err, self.out_bytes = io.StringIO(), io.StringIO(), io.BytesIO()
        self.connected: list[tuple[str, str | None]] = []
        chosen = transport or httpx.MockTransport(self.gateway.handle)

        def connect(url: str, key: str | None) -> BatchClient:
            self.connected.append((url, key))
            return BatchClient(url, key, transport=chosen)

        self.runtime = Runtime(out=self.out, err=self.err, out_bytes=self.out_bytes, tty=tty, sleep=self.clock.sleep,
                               clock=lambda: self.clock.now, connect=connect)
        parser = argparse.ArgumentParser(prog="gateway")
        add_parsers(parser.add_subparsers(dest="command", required=True), self.runtime)
        self.parser = parser

    def __call__(self, *argv: str) -> int:
        args = self.parser.parse_args(["batch", *argv])
        code: int = args.func(args)
        return code


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GATEWAY_URL", "GATEWAY_API_KEY", "OPENAI_API_KEY", "GATEWAY_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GATEWAY_API_KEY", KEY)


@pytest.fixture
def jsonl(tmp_path: Path) -> Path:
    path = tmp_path / "requests.jsonl"
    path.write_text("\n".join(request_line(c) for c in ("a", "b", "c")) + "\n")
    return path


def created_batch(cli_run: Cli) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(next(r.content for r in cli_run.gateway.seen if r.url.path == "/v1/batches"))
    return body


# --- submit ---------------------------------------------------------------------------------------------

def test_submit_uploads_a_copy_with_the_model_and_creates_the_batch(jsonl: Path) -> None:
    original = jsonl.read_bytes()
    run = Cli()
    assert run("submit", str(jsonl), "--model", "claude-3-5-haiku", "--metadata", "team=search",
               "--metadata", "run=7") == 0
    assert run.gateway.calls() == ["POST /v1/files", "POST /v1/batches"]
    filename, uploaded = run.gateway.files["file-" + f"{1:032x}"]
    assert filename == "requests.jsonl"
    lines = [json.loads(line) for line in uploaded.splitlines()]
    assert [line["custom_id"] for line in lines] == ["a", "b", "c"]
    assert {line["body"]["model"] for line in lines} == {"claude-3-5-haiku"}
    assert lines[0]["body"]["messages"] == [{"role": "user", "content": "hi"}]
    assert jsonl.read_bytes() == original  # the user's file untouched
    assert created_batch(run) == {"input_file_id": "file-" + f"{1:032x}", "endpoint": CHAT,
                                  "completion_window": "24h", "metadata": {"team": "search", "run": "7"}}
    assert run.out.getvalue() == "batch_0001\n"
    assert "3 requests to /v1/chat/completions" in run.err.getvalue()
    assert "gateway batch status batch_0001 --watch" in run.err.getvalue()
    assert run.gateway.seen[0].headers["authorization"] == f"Bearer {KEY}"


def test_submit_without_model_uploads_the_file_as_it_is(jsonl: Path) -> None:
    run = Cli()
    assert run("submit", str(jsonl)) == 0
    assert run.gateway.files["file-" + f"{1:032x}"][1] == jsonl.read_bytes()
    assert "metadata" not in created_batch(run)


def test_a_bad_file_lists_its_errors_by_line_and_uploads_nothing(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join([
        request_line("a"),
        "{not json",
        json.dumps({"method": "POST", "url": CHAT, "body": {}}),
        request_line("d", url="/v1/embeddings"),
        request_line("a"),
        json.dumps({"custom_id": "f", "method": "GET", "url": CHAT, "body": {}}),
    ]) + "\n")
    run = Cli()
    assert run("submit", str(path)) == 2
    assert run.gateway.seen == []
    err = run.err.getvalue()
    assert "bad.jsonl: 5 error(s), nothing was uploaded" in err
    assert "line 2: not valid JSON" in err
    assert "line 3: missing custom_id" in err
    assert "line 4: url '/v1/embeddings' differs from the batch's endpoint '/v1/chat/completions'" in err
    assert "line 5: duplicate custom_id 'a' (first on line 1)" in err
    assert "line 6: method must be \"POST\", got 'GET'" in err


def test_an_endpoint_flag_other_than_the_lines_url_is_a_file_error(jsonl: Path) -> None:
    run = Cli()
    assert run("submit", str(jsonl), "--endpoint", "/v1/embeddings") == 2
    assert run.err.getvalue().count("differs from the batch's endpoint '/v1/embeddings'") == 3
    assert run.gateway.seen == []


def test_a_missing_file_or_bad_metadata_is_a_usage_error(tmp_path: Path, jsonl: Path) -> None:
    run = Cli()
    assert run("submit", str(tmp_path / "nope.jsonl")) == 2
    assert "cannot read" in run.err.getvalue() and "nope.jsonl" in run.err.getvalue()
    assert run("submit", str(jsonl), "--metadata", "novalue") == 2
    assert "--metadata expects KEY=VALUE, got 'novalue'" in run.err.getvalue()
    assert run.gateway.seen == []


# --- watch ----------------------------------------------------------------------------------------------

def test_submit_watch_on_a_terminal_redraws_one_line_and_ends_with_a_summary(jsonl: Path) -> None:
    run = Cli(tty=True)
    assert run("submit", str(jsonl), "--watch") == 0
    out = run.out.getvalue()
    first, progress, summary = out.split("\n", 2)
    assert first == "batch_0001"
    frames = progress.split("\r")[1:]
    assert len(frames) == len(STEPS)
    assert frames[0].startswith("validating  [------------------------] 0/0")
    assert frames[2].rstrip() == "in_progress [########----------------] 1/3  failed 0  0.5 lines/s  ETA 4s"
    assert frames[3].rstrip() == "in_progress [########################] 3/3  failed 1  1.0 lines/s  ETA 0s"
    assert frames[-1].startswith("completed   [########################] 3/3  failed 1")
    assert summary.splitlines() == [
        "batch batch_0001 completed in 2m05s: 2 of 3 requests succeeded, 1 failed",
        "output file: file-out  ->  gateway batch results batch_0001 -o output.jsonl",
        "error file:  file-err  ->  gateway batch results batch_0001 --errors -o errors.jsonl",
    ]
    assert run.clock.sleeps == [1.0] * (len(STEPS) - 1)


def test_watching_without_a_terminal_prints_plain_lines(jsonl: Path) -> None:
    run = Cli()
    assert run("submit", str(jsonl)) == 0
    run.out.truncate(0)
    run.out.seek(0)
    assert run("status", "batch_0001", "--watch") == 0
    out = run.out.getvalue()
    assert "\r" not in out
    lines = out.splitlines()
    # one line per status change (validating, in_progress, completed), not one per poll
    assert [line.split()[0] for line in lines[:3]] == ["validating", "in_progress", "completed"]
    assert lines[3] == "batch batch_0001 completed in 2m05s: 2 of 3 requests succeeded, 1 failed"


def test_without_a_terminal_a_long_wait_still_prints_periodically(jsonl: Path) -> None:
    steps = [("in_progress", 0, 0)] * 25 + [("completed", 3, 0)]
    run = Cli(FakeGateway(steps))
    run("submit", str(jsonl))
    run.out.truncate(0)
    run.out.seek(0)
    assert run("status", "batch_0001", "--watch") == 0
    progress = [line for line in run.out.getvalue().splitlines() if line.startswith("in_progress")]
    assert len(progress) == 3  # at 0 s, 10 s and 20 s of 25 polls


def test_a_failed_batch_exits_1_with_its_errors(jsonl: Path) -> None:
    run = Cli(FakeGateway([("validating", 0, 0), ("failed", 0, 0)]))
    assert run("submit", str(jsonl), "--watch") == 1
    out = run.out.getvalue()
    assert "batch batch_0001 failed in 10s: no request ran\n" in out
    assert "  error: line 2: Model 'nope' is not served by this gateway. (invalid_model)" in out
    assert "gateway batch results" not in out


def test_ctrl_c_while_watching_stops_quietly_and_leaves_the_batch_running(jsonl: Path) -> None:
    run = Cli(tty=True, clock=Clock(interrupt_at=2))
    assert run("submit", str(jsonl), "--watch") == 130
    assert run.out.getvalue().endswith("\n")  # the progress line is ended, the prompt starts clean
    err = run.err.getvalue()
    assert "stopped watching; batch batch_0001 keeps running on the gateway." in err
    assert "gateway batch cancel batch_0001" in err
    assert "Traceback" not in err + run.out.getvalue()
    assert not any(r.url.path.endswith("/cancel") for r in run.gateway.seen)
    assert run.gateway.batches["batch_0001"]["status"] == "in_progress"


# --- status, list, results, cancel ---------------------------------------------------------------------

def test_status_prints_the_batch_once(jsonl: Path) -> None:
    run = Cli()
    run("submit", str(jsonl))
    run.out.truncate(0)
    run.out.seek(0)
    assert run("status", "batch_0001") == 0
    assert run.out.getvalue().splitlines() == [
        "batch_0001  validating  /v1/chat/completions  created 2026-11-30 00:53:20 UTC",
        "batch batch_0001 validating: no request has run yet",
        "follow it: gateway batch status batch_0001 --watch; cancel it: gateway batch cancel batch_0001",
    ]


def test_list_prints_a_table_newest_first(jsonl: Path) -> None:
    run = Cli()
    run("submit", str(jsonl))
    run("submit", str(jsonl))
    for _ in STEPS:
        run.gateway.advance(run.gateway.batches["batch_0001"])
    run.out.truncate(0)
    run.out.seek(0)
    assert run("list", "--limit", "5") == 0
    assert run.gateway.seen[-1].url.params["limit"] == "5"
    assert run.out.getvalue().splitlines() == [
        "id          status      endpoint              done/total  failed  created (UTC)",
        "batch_0002  validating  /v1/chat/completions  0/0         0       2026-11-30 00:53:20",
        "batch_0001  completed   /v1/chat/completions  3/3         1       2026-11-30 00:53:20",
    ]


def test_list_refuses_a_limit_out_of_range_without_calling() -> None:
    run = Cli()
    assert run("list", "--limit", "0") == 2
    assert run.gateway.seen == []


def finished(run: Cli, jsonl: Path) -> None:
    run("submit", str(jsonl))
    for _ in STEPS:
        run.gateway.advance(run.gateway.batches["batch_0001"])


def test_results_download_the_output_file_to_a_file(jsonl: Path, tmp_path: Path) -> None:
    run = Cli()
    finished(run, jsonl)
    target = tmp_path / "out.jsonl"
    assert run("results", "batch_0001", "-o", str(target)) == 0
    assert target.read_bytes() == b'{"custom_id":"a"}\n{"custom_id":"b"}\n'
    assert not (tmp_path / "out.jsonl.part").exists()
    assert f"wrote 36 bytes (file-out) to {target}" in run.err.getvalue()
    assert run.gateway.calls()[-1] == "GET /v1/files/file-out/content"


def test_results_errors_go_to_stdout(jsonl: Path) -> None:
    run = Cli()
    finished(run, jsonl)
    assert run("results", "batch_0001", "--errors") == 0
    assert run.out_bytes.getvalue() == b'{"custom_id":"c","error":{"message":"boom"}}\n'


def test_results_errors_of_a_batch_where_nothing_failed_is_no_error(jsonl: Path) -> None:
    run = Cli(FakeGateway([("in_progress", 1, 0), ("completed", 3, 0)]))
    finished(run, jsonl)
    run.gateway.batches["batch_0001"]["error_file_id"] = None
    assert run("results", "batch_0001", "--errors") == 0
    assert run.err.getvalue().endswith("\nbatch batch_0001 has no error file: none of its requests failed\n")
    assert run.out_bytes.getvalue() == b""


def test_results_of_an_unfinished_batch_say_to_wait(jsonl: Path, tmp_path: Path) -> None:
    run = Cli()
    run("submit", str(jsonl))
    assert run("results", "batch_0001", "-o", str(tmp_path / "out.jsonl")) == 1
    assert "batch batch_0001 is not finished yet (validating, 0/0 done)" in run.err.getvalue()
    assert "gateway batch status batch_0001 --watch" in run.err.getvalue()
    assert not any("/content" in call for call in run.gateway.calls())
    assert not (tmp_path / "out.jsonl").exists()


def test_cancel_posts_and_prints_the_new_status(jsonl: Path) -> None:
    run = Cli()
    run("submit", str(jsonl))
    run.out.truncate(0)
    run.out.seek(0)
    assert run("cancel", "batch_0001") == 0
    assert run.gateway.calls()[-1] == "POST /v1/batches/batch_0001/cancel"
    assert run.out.getvalue() == "batch batch_0001: cancelling\n"
    assert run.gateway.batches["batch_0001"]["status"] == "cancelling"


# --- errors ---------------------------------------------------------------------------------------------

def test_the_servers_openai_error_message_is_printed() -> None:
    run = Cli()
    assert run("status", "batch_nope") == 1
    assert run.err.getvalue() == "gateway batch status: No batch found with id 'batch_nope'.\n"


def test_a_refused_key_names_the_variable_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_API_KEY", "sk-wrong")
    run = Cli()
    assert run("list") == 1
    assert "refused the API key (Incorrect API key provided.): set GATEWAY_API_KEY" in run.err.getvalue()
    monkeypatch.delenv("GATEWAY_API_KEY")
    assert run("list") == 1
    assert "no API key given" in run.err.getvalue()
    assert "authorization" not in run.gateway.seen[-1].headers


def test_a_server_error_without_json_shows_its_status() -> None:
    run = Cli(transport=httpx.MockTransport(lambda request: httpx.Response(502, text="Bad Gateway")))
    assert run("cancel", "batch_1") == 1
    assert run.err.getvalue() == "gateway batch cancel: HTTP 502: Bad Gateway\n"


def test_a_gateway_that_is_not_running_says_to_start_it(jsonl: Path) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    run = Cli(transport=httpx.MockTransport(refuse))
    assert run("submit", str(jsonl), "--url", "http://127.0.0.1:9/v1/") == 1
    assert run.connected == [("http://127.0.0.1:9", KEY)]
    assert run.err.getvalue() == ("gateway batch submit: cannot reach the gateway at http://127.0.0.1:9: start it "
                                  "with `make run`, or point GATEWAY_URL (or --url) at a running one\n")


def test_the_gateway_and_key_come_from_flags_then_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_base_url(None, {}) == "http://127.0.0.1:8080"
    monkeypatch.setenv("GATEWAY_PORT", "9123")
    assert resolve_base_url(None, {}) == "http://127.0.0.1:9123"
    assert resolve_base_url(None, {"GATEWAY_URL": "http://gw:80/"}) == "http://gw:80"
    assert resolve_base_url("https://x/v1", {"GATEWAY_URL": "http://gw:80"}) == "https://x"
    assert resolve_api_key(None, {"OPENAI_API_KEY": "o", "GATEWAY_API_KEY": "g"}) == "g"
    assert resolve_api_key(None, {"OPENAI_API_KEY": "o"}) == "o"
    assert resolve_api_key("f", {"GATEWAY_API_KEY": "g"}) == "f"
    assert resolve_api_key(None, {}) is None


def test_batch_is_a_command_of_gateway() -> None:
    args = cli.build_parser().parse_args(["batch", "results", "batch_1", "--errors", "-o", "e.jsonl"])
    assert (args.command, args.batch_command, args.batch_id, args.errors, args.output) == (
        "batch", "results", "batch_1", True, "e.jsonl")
    assert callable(args.func)


# --- the pure parts -------------------------------------------------------------------------------------

def test_bar_fills_in_proportion() -> None:
    assert bar(0, 10, width=10) == "[----------]"
    assert bar(5, 10, width=10) == "[#####-----]"
    assert bar(10, 10, width=10) == "[##########]"
    assert bar(3, 0, width=4) == "[----]"  # total not known yet


def test_the_rate_follows_the_recent_pace_not_the_average() -> None:
    window = RateWindow(span_s=10)
    assert window.rate() is None
    for second in range(0, 31):  # 10 lines/s for 20 s, then 1 line/s
        window.add(float(second), 10 * min(second, 20) + max(second - 20, 0))
    assert window.rate() == pytest.approx(1.0)
    window.add(31.0, 211)
    assert window.rate() == pytest.approx(1.0)


def test_eta_and_durations() -> None:
    assert eta_seconds(100, 4.0) == 25.0
    assert eta_seconds(100, None) is None
    assert eta_seconds(100, 0.0) is None
    assert eta_seconds(0, None) == 0.0
    assert [format_duration(s) for s in (None, 0, 59.4, 65, 3600 * 2 + 7 * 60 + 30)] == [
        "--", "0s", "59s", "1m05s", "2h07m"]


def test_progress_line_and_redraw() -> None:
    batch = Batch.from_api({"id": "b", "status": "in_progress", "request_counts": {"total": 200, "completed": 45,
                                                                                     "failed": 5}})
    line = progress_line(batch, 2.5)
    assert line == "in_progress [######------------------] 50/200  failed 5  2.5 lines/s  ETA 1m00s"
    assert redraw("short", previous_width=8) == "\rshort   "
    assert redraw("longer line", previous_width=3) == "\rlonger line"


def test_a_batch_without_counts_reads_as_zero() -> None:
    batch = Batch.from_api({"id": "b", "status": "validating", "request_counts": None})
    assert (batch.total, batch.done, batch.finished) == (0, 0, False)
    assert progress_line(batch, None).endswith("0/0  failed 0  -- lines/s  ETA --")


def test_list_table_pads_columns() -> None:
    rows = [Batch.from_api({"id": "batch_x", "status": "completed", "endpoint": "/v1/embeddings",
                            "created_at": 0, "request_counts": {"total": 12, "completed": 10, "failed": 2}})]
    assert list_table(rows).splitlines()[1] == ("batch_x  completed  /v1/embeddings  12/12       2       "
                                                "1970-01-01 00:00:00")


def test_check_lines_accepts_a_final_newline_but_not_an_empty_line_inside() -> None:
    good = [request_line("a").encode() + b"\n", request_line("b").encode() + b"\n", b"\n"]
    check = check_lines(good)
    assert (check.ok, check.requests, check.endpoint, check.errors) == (True, 2, CHAT, [])
    bad = check_lines([request_line("a").encode(), b"", request_line("b").encode()])
    assert bad.errors == ["line 2: empty line: each line must be one request"]
    assert check_lines([]).errors == ["the file has no request: it needs at least one JSON line"]
    assert check_lines([request_line(c).encode() for c in "abc"], max_lines=2).errors == [
        "3 requests: a batch holds at most 2"]


def test_with_model_sets_the_model_on_every_line() -> None:
    out = io.BytesIO()
    with_model([request_line("a").encode() + b"\n", b"\n"], "m-1", out)
    assert [json.loads(line)["body"]["model"] for line in out.getvalue().splitlines()] == ["m-1"]


def test_metadata_pairs() -> None:
    assert parse_metadata(["a=1", "b=x=y"]) == {"a": "1", "b": "x=y"}
    with pytest.raises(ValueError, match="at most 16 pairs"):
        parse_metadata([f"k{i}=v" for i in range(17)])

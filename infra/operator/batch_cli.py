"""``gateway batch submit|status|list|results|cancel``: batch jobs through a running gateway's OpenAI
Files and Batch APIs (``infra/operator/batch_client.py``), for the people who submit them.

``submit`` checks the JSONL file locally first (``batch_file.py``) and uploads nothing when a line is
wrong; ``--watch`` (and ``status --watch``) follows a batch to its end with a progress bar redrawn in
place on a terminal and plain lines otherwise (``batch_view.py``); Ctrl-C stops watching, never the batch.
The gateway is ``--url``, else ``GATEWAY_URL``, else the local one; the key ``--api-key``, else
``GATEWAY_API_KEY``, else ``OPENAI_API_KEY``. Exit codes: 0 done, 1 the batch failed (or expired, or was
cancelled) or the gateway refused or could not be reached, 2 invalid input (nothing sent), 130 watching
stopped by Ctrl-C (the batch goes on).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, TextIO

from infra.operator.batch_client import BatchApiError, BatchClient, resolve_api_key, resolve_base_url
from infra.operator.batch_file import check_lines, with_model
from infra.operator.batch_view import (
    SUCCESS,
    TERMINAL,
    Batch,
    RateWindow,
    list_table,
    progress_line,
    redraw,
    summary_lines,
    when,
)
from schemas.batch_input import BATCH_URLS

if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]

POLL_S = 1.0
"""Seconds between two looks at a watched batch."""
PLAIN_EVERY_S = 10.0
"""Without a terminal, a progress line at least this often (and at every status change)."""
SHOWN_ERRORS = 20
"""File errors listed before ``... and N more``."""
INTERRUPTED = 130
METADATA_MAX_PAIRS, METADATA_MAX_KEY, METADATA_MAX_VALUE = 16, 64, 512  # OpenAI's limits


@dataclass
class Runtime:
    """The outside world a command talks to: its streams, whether stdout is a terminal, the clock and
    sleep of the watch loop, and how it connects to the gateway. Tests pass their own."""

    out: TextIO
    err: TextIO
    out_bytes: IO[bytes]
    tty: bool
    sleep: Callable[[float], None]
    clock: Callable[[], float]
    connect: Callable[[str, str | None], BatchClient]

    @classmethod
    def real(cls) -> Runtime:
        return cls(out=sys.stdout, err=sys.stderr, out_bytes=sys.stdout.buffer, tty=sys.stdout.isatty(),
                   sleep=time.sleep, clock=time.monotonic, connect=BatchClient)

    def say(self, text: str) -> None:
        print(text, file=self.err)


def parse_metadata(values: list[str] | None) -> dict[str, str]:
    """``--metadata k=v`` flags as a dict; ``ValueError`` naming the bad one (OpenAI's limits: 16 pairs,
    keys up to 64 characters, values up to 512)."""
    out: dict[str, str] = {}
    for value in values or []:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise ValueError(f"--metadata expects KEY=VALUE, got {value!r}")
        if len(key) > METADATA_MAX_KEY or len(val) > METADATA_MAX_VALUE:
            raise ValueError(f"--metadata {key[:20]!r}: keys hold at most {METADATA_MAX_KEY} characters, values "
                             f"{METADATA_MAX_VALUE}")
        out[key] = val
    if len(out) > METADATA_MAX_PAIRS:
        raise ValueError(f"--metadata: at most {METADATA_MAX_PAIRS} pairs, got {len(out)}")
    return out


@contextmanager
def _upload_stream(path: Path, model: str | None) -> Iterator[IO[bytes]]:
    """The bytes to upload: the user's file as it is, or a temporary copy with ``body.model`` set."""
    with path.open("rb") as original:
        if model is None:
            yield original
            return
        with tempfile.TemporaryFile("w+b") as rewritten:
            with_model(original, model, rewritten)
            rewritten.seek(0)
            yield rewritten


def cmd_submit(args: argparse.Namespace, rt: Runtime) -> int:
    path = Path(args.file)
    try:
        metadata = parse_metadata(args.metadata)
        with path.open("rb") as lines:
            check = check_lines(lines, args.endpoint)
    except ValueError as exc:
        rt.say(f"gateway batch submit: {exc}")
        return 2
    except OSError as exc:
        rt.say(f"gateway batch submit: cannot read {path}: {exc.strerror or exc}")
        return 2
    if not check.ok or check.endpoint is None:
        rt.say(f"gateway batch submit: {path}: {len(check.errors)} error(s), nothing was uploaded:")
        for error in check.errors[:SHOWN_ERRORS]:
            rt.say(f"  {error}")
        if len(check.errors) > SHOWN_ERRORS:
            rt.say(f"  ... and {len(check.errors) - SHOWN_ERRORS} more")
        return 2
    with rt.connect(resolve_base_url(args.url), resolve_api_key(args.api_key)) as client:
        try:
            with _upload_stream(path, args.model) as stream:
                uploaded = client.upload(path.name, stream)
            batch = Batch.from_api(client.create_batch(str(uploaded.get("id")), check.endpoint, metadata or None))
        except BatchApiError as exc:
            rt.say(f"gateway batch submit: {exc}")
            return 1
        except KeyboardInterrupt:
            rt.say("gateway batch submit: interrupted before the batch was created; run the command again")
            return INTERRUPTED
        rt.say(f"uploaded {path.name} as {uploaded.get('id')} ({check.requests} requests to {check.endpoint}); "
               f"created batch {batch.id} ({batch.status})")
        print(batch.id, file=rt.out, flush=True)
        if args.watch:
            return watch(client, batch.id, rt)
    rt.say(f"follow it: gateway batch status {batch.id} --watch")
    return 0


def watch(client: BatchClient, batch_id: str, rt: Runtime) -> int:
    """Follow a batch until it ends, then print its summary. 0: completed; 1: failed, expired, cancelled
    or the gateway stopped answering; 130: Ctrl-C (the batch goes on)."""
    window = RateWindow()
    width = 0
    last_status, last_line_at = "", float("-inf")
    try:
        while True:
            batch = Batch.from_api(client.get_batch(batch_id))
            now = rt.clock()
            window.add(now, batch.done)
            line = progress_line(batch, window.rate())
            if rt.tty:
                rt.out.write(redraw(line, width))
                rt.out.flush()
                width = len(line)
            elif batch.status != last_status or now - last_line_at >= PLAIN_EVERY_S or batch.finished:
                print(line, file=rt.out, flush=True)
                last_status, last_line_at = batch.status, now
            if batch.finished:
                break
            rt.sleep(POLL_S)
    except KeyboardInterrupt:
        _end_progress_line(rt, width)
        rt.say(f"stopped watching; batch {batch_id} keeps running on the gateway.\n"
               f"  follow it again: gateway batch status {batch_id} --watch\n"
               f"  cancel it:       gateway batch cancel {batch_id}")
        return INTERRUPTED
    except BatchApiError as exc:
        _end_progress_line(rt, width)
        rt.say(f"gateway batch: watching {batch_id}: {exc}")
        return 1
    _end_progress_line(rt, width)
    print("\n".join(summary_lines(batch)), file=rt.out, flush=True)
    return 0 if batch.status == SUCCESS else 1


def _end_progress_line(rt: Runtime, width: int) -> None:
    if rt.tty and width:
        rt.out.write("\n")
        rt.out.flush()


def cmd_status(args: argparse.Namespace, rt: Runtime) -> int:
    with rt.connect(resolve_base_url(args.url), resolve_api_key(args.api_key)) as client:
        if args.watch:
            return watch(client, args.batch_id, rt)
        try:
            batch = Batch.from_api(client.get_batch(args.batch_id))
        except BatchApiError as exc:
            rt.say(f"gateway batch status: {exc}")
            return 1
    print(f"{batch.id}  {batch.status}  {batch.endpoint}  created {when(batch.created_at)} UTC", file=rt.out)
    print("\n".join(summary_lines(batch)), file=rt.out)
    return 1 if batch.finished and batch.status != SUCCESS else 0


def cmd_list(args: argparse.Namespace, rt: Runtime) -> int:
    if not 1 <= args.limit <= 100:
        rt.say(f"gateway batch list: --limit must be from 1 to 100, got {args.limit}")
        return 2
    with rt.connect(resolve_base_url(args.url), resolve_api_key(args.api_key)) as client:
        try:
            page = client.list_batches(args.limit)
        except BatchApiError as exc:
            rt.say(f"gateway batch list: {exc}")
            return 1
    data = page.get("data")
    batches = [Batch.from_api(item) for item in data if isinstance(item, dict)] if isinstance(data, list) else []
    if not batches:
        rt.say("no batches yet: submit one with `gateway batch submit FILE.jsonl`")
        return 0
    print(list_table(batches), file=rt.out)
    if page.get("has_more"):
        rt.say(f"(the {len(batches)} most recent; more with --limit {min(args.limit * 2, 100)})")
    return 0


def cmd_results(args: argparse.Namespace, rt: Runtime) -> int:
    with rt.connect(resolve_base_url(args.url), resolve_api_key(args.api_key)) as client:
        try:
            batch = Batch.from_api(client.get_batch(args.batch_id))
            file_id = _results_file(batch, args.errors, rt)
            if file_id is None:
                return 0 if args.errors and batch.status == SUCCESS else 1
            with client.file_content(file_id) as chunks:
                size = _write(chunks, args.output, rt)
        except BatchApiError as exc:
            rt.say(f"gateway batch results: {exc}")
            return 1
        except OSError as exc:
            rt.say(f"gateway batch results: cannot write {args.output or 'to stdout'}: {exc.strerror or exc}")
            return 2
    if args.output:
        rt.say(f"wrote {size} bytes ({file_id}) to {args.output}")
    return 0


def _results_file(batch: Batch, errors: bool, rt: Runtime) -> str | None:
    """The file to download, or ``None`` after saying why there is none."""
    if batch.status not in TERMINAL:
        rt.say(f"gateway batch results: batch {batch.id} is not finished yet ({batch.status}, {batch.done}/"
               f"{batch.total} done); its files are written when it ends: wait for it with "
               f"`gateway batch status {batch.id} --watch`")
        return None
    if errors:
        if batch.error_file_id is None:
            rt.say(f"batch {batch.id} has no error file: "
                   + ("none of its requests failed" if batch.status == SUCCESS else f"it {batch.status}"))
        return batch.error_file_id
    if batch.output_file_id is None:
        why = "; ".join(batch.errors) or (f"all {batch.failed} requests failed" if batch.failed else batch.status)
        hint = f"; its failures: gateway batch results {batch.id} --errors" if batch.error_file_id else ""
        rt.say(f"gateway batch results: batch {batch.id} ({batch.status}) has no output file: {why}{hint}")
    return batch.output_file_id


def _write(chunks: Iterator[bytes], output: str | None, rt: Runtime) -> int:
    """Stream to ``output`` (through ``output.part``, renamed when complete) or to stdout; bytes written."""
    size = 0
    if output is None:
        rt.out.flush()
        for chunk in chunks:
            rt.out_bytes.write(chunk)
            size += len(chunk)
        rt.out_bytes.flush()
        return size
    part = f"{output}.part"
    try:
        with open(part, "wb") as sink:
            for chunk in chunks:
                sink.write(chunk)
                size += len(chunk)
        os.replace(part, output)
    finally:
        if os.path.exists(part):
            os.unlink(part)
    return size


def cmd_cancel(args: argparse.Namespace, rt: Runtime) -> int:
    with rt.connect(resolve_base_url(args.url), resolve_api_key(args.api_key)) as client:
        try:
            batch = Batch.from_api(client.cancel_batch(args.batch_id))
        except BatchApiError as exc:
            rt.say(f"gateway batch cancel: {exc}")
            return 1
    print(f"batch {batch.id}: {batch.status}", file=rt.out)
    if not batch.finished:
        rt.say(f"requests already done stay in its output file; follow it: gateway batch status {batch.id} --watch")
    return 0


def add_parsers(sub: Subparsers, runtime: Runtime | None = None) -> None:
    """Register ``gateway batch ...``; ``runtime`` (tests) replaces the real streams, clock and client."""

    def bound(command: Callable[[argparse.Namespace, Runtime], int]) -> Callable[[argparse.Namespace], int]:
        return lambda args: command(args, runtime or Runtime.real())

    connection = argparse.ArgumentParser(add_help=False)
    connection.add_argument("--url", help="the gateway (default: $GATEWAY_URL, else http://127.0.0.1:<GATEWAY_PORT>)")
    connection.add_argument("--api-key", help="a gateway API key (default: $GATEWAY_API_KEY, else $OPENAI_API_KEY)")

    p = sub.add_parser("batch", help="submit and follow batch jobs (the OpenAI Batch API)")
    batch = p.add_subparsers(dest="batch_command", required=True)
    s = batch.add_parser("submit", parents=[connection], help="check a JSONL file locally, upload it, create a batch")
    s.add_argument("file", help="the batch input file: one {custom_id, method, url, body} request per line")
    s.add_argument("--model", help="set body.model on every request (in the uploaded copy, not in FILE)")
    s.add_argument("--endpoint", choices=BATCH_URLS, help="the batch's endpoint (default: the url of the lines)")
    s.add_argument("--metadata", action="append", metavar="KEY=VALUE", help="a metadata pair (repeatable)")
    s.add_argument("--watch", action="store_true", help="follow the batch until it ends")
    s.set_defaults(func=bound(cmd_submit))
    s = batch.add_parser("status", parents=[connection], help="a batch's status and counts")
    s.add_argument("batch_id")
    s.add_argument("--watch", action="store_true", help="follow the batch until it ends (Ctrl-C stops watching)")
    s.set_defaults(func=bound(cmd_status))
    s = batch.add_parser("list", parents=[connection], help="the most recent batches")
    s.add_argument("--limit", type=int, default=20, help="how many (1-100, default 20)")
    s.set_defaults(func=bound(cmd_list))
    s = batch.add_parser("results", parents=[connection], help="download a finished batch's output (or error) file")
    s.add_argument("batch_id")
    s.add_argument("-o", "--output", metavar="FILE", help="write to FILE (default: stdout)")
    s.add_argument("--errors", action="store_true", help="the error file: the requests that failed")
    s.set_defaults(func=bound(cmd_results))
    s = batch.add_parser("cancel", parents=[connection], help="cancel a batch (requests already done are kept)")
    s.add_argument("batch_id")
    s.set_defaults(func=bound(cmd_cancel))


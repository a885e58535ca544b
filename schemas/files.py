"""The Files API's contracts (``/v1/files``): the file object and list OpenAI answers, and its limits.

Shapes are OpenAI's, field for field, so the official SDKs read them unmodified.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

# The purposes OpenAI accepts on upload. ``batch`` files are validated line by line (schemas/batch_input.py);
# the others are stored as sent (the gateway runs no fine-tuning, assistants or evals: it keeps the bytes
# for the caller, as OpenAI's storage does).
PURPOSES = ("batch", "user_data", "fine-tune", "assistants", "vision", "evals")
Purpose = Literal["batch", "user_data", "fine-tune", "assistants", "vision", "evals"]

FILE_ID_PREFIX = "file-"
DEFAULT_MAX_FILE_BYTES = 200 * 1024 * 1024  # OpenAI's batch input limit
LIST_DEFAULT_LIMIT = 10_000  # OpenAI's default and maximum ``limit`` on GET /v1/files
LIST_MAX_LIMIT = 10_000


class FileObject(BaseModel):
    """One stored file as OpenAI describes it (``object: "file"``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    filename: str
    purpose: str
    status: Literal["processed"] = "processed"
    status_details: str | None = None
    expires_at: int | None = None

    def to_body(self) -> dict[str, Any]:
        return self.model_dump()


class StoredFile(BaseModel):
    """A file as the store keeps it: the OpenAI object and its owner (never shown to the caller)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    file: FileObject
    tenant: str


def file_list(files: list[FileObject], has_more: bool) -> dict[str, Any]:
    """OpenAI's list body (``GET /v1/files``)."""
    return {"object": "list", "data": [f.to_body() for f in files], "has_more": has_more,
            "first_id": files[0].id if files else None, "last_id": files[-1].id if files else None}


def deleted(file_id: str) -> dict[str, Any]:
    return {"id": file_id, "object": "file", "deleted": True}

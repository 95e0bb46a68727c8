"""What ChartVault answers: the API's response models and what the CLI prints with ``--json``.

Plain frozen dataclasses (FastAPI documents and validates them as response models), so one type
describes each answer for both faces and the CLI prints it without loading pydantic. Timestamps are
ISO 8601 strings made by ``iso``, so the API and the CLI agree character for character. Every
field is an id, a code, a count or a value the caller is entitled to see.
"""

from chartvault.schemas.common import ErrorBody, ErrorDetail, Health, d, iso, to_jsonable

__all__ = ["ErrorBody", "ErrorDetail", "Health", "d", "iso", "to_jsonable"]

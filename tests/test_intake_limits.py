"""Intake caps and messages: form fields in total, parts per request, long file names, unknown bytes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import api_client

from chartvault.ingest.sniff import Limits, Refused, sniff

PNG = b"\x89PNG\r\n\x1a\n"


def _multipart(parts: list[tuple[str, str | None, bytes]], boundary: str = "cvboundary") -> bytes:
    out = bytearray()
    for name, filename, data in parts:
        disp = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
        out += f"--{boundary}\r\nContent-Disposition: {disp}\r\n\r\n".encode() + data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out)


def _post(c, path: str, body: bytes):
    return c.post(path, content=body, headers={"Content-Type": "multipart/form-data; boundary=cvboundary"})


@pytest.mark.parametrize("path", ["/batches", "/releases/0123456789abcdef0123456789abcdef/authorization"])
def test_many_form_fields_are_refused_by_their_total(settings, path: str) -> None:
    settings = settings.model_copy(update={"max_form_bytes": 256 * 1024})
    with api_client(settings) as c:
        many = [(f"f{i}", None, b"x" * 20_000) for i in range(200)]  # 4 MB of fields, each under 1 MiB
        r = _post(c, path, _multipart(many))
        assert r.status_code == 413, r.text
        assert r.json()["error"]["code"] == "form_too_large"
        assert "262,144 bytes" in r.json()["error"]["message"]


def test_too_many_parts_are_refused(settings) -> None:
    settings = settings.model_copy(update={"max_form_parts": 50})
    with api_client(settings) as c:
        r = _post(c, "/batches", _multipart([(f"f{i}", None, b"1") for i in range(51)]))
        assert r.status_code == 413 and r.json()["error"]["code"] == "too_many_parts"
        assert "the limit is 50" in r.json()["error"]["message"]


@pytest.mark.parametrize("length", [1_500, 5_000])
def test_a_long_file_name_is_named_as_the_problem(settings, length: int) -> None:
    with api_client(settings) as c:
        r = _post(c, "/batches", _multipart([("files", "a" * length + ".png", PNG + b"\0" * 64)]))
        assert r.status_code == 422, r.text
        assert r.json()["error"]["code"] == "file_name_too_long"
        assert "file name" in r.json()["error"]["message"] and "malformed" not in r.json()["error"]["message"]
        assert not list((settings.data_dir / "staging").rglob(".part-*"))  # nothing left half-staged


def test_random_bytes_are_of_an_unknown_type(tmp_path: Path) -> None:
    limits = Limits(max_file_bytes=1 << 20, max_pages=10, max_pixels=10_000_000)
    cases = {
        "random.bin": (b"<" + os.urandom(4095), "of an unknown type"),
        "page.html": (b"<!DOCTYPE html><html><body>hi</body></html>", "an HTML or XML document"),
        "data.xml": (b'\xef\xbb\xbf<?xml version="1.0"?><a/>', "an HTML or XML document"),
        "note.txt": (b"<just some text with an angle bracket", "a text file"),
    }
    for name, (data, expected) in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(Refused) as refused:
            sniff(path, limits)
        assert refused.value.code == "unsupported_type"
        assert expected in refused.value.reason, (name, refused.value.reason)

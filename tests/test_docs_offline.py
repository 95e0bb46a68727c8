"""``/docs`` works with no internet: every script, style and icon it names is served by ChartVault."""

from __future__ import annotations

import re

from conftest import api_client

from chartvault.api.docs import SWAGGER_UI_DIR


def test_docs_page_loads_nothing_from_outside(settings) -> None:
    with api_client(settings) as c:
        c.headers.pop("Authorization")
        page = c.get("/docs")
        assert page.status_code == 200
        urls = re.findall(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""", page.text)
        assert urls, page.text
        assert not [u for u in urls if u.startswith(("http:", "https:", "//"))], urls
        for url in urls:
            r = c.get(url)
            assert r.status_code == 200, url
        js = c.get("/docs/static/swagger-ui-bundle.js")
        assert "SwaggerUIBundle" in js.text and "javascript" in js.headers["content-type"]
        assert c.get("/docs/static/swagger-ui.css").headers["content-type"].startswith("text/css")
        assert c.get("/openapi.json").status_code == 200
    assert "Apache License" in (SWAGGER_UI_DIR / "LICENSE").read_text()
    assert "5.35.0" in (SWAGGER_UI_DIR / "VERSION").read_text()

"""No name, MRN or search term in a page address: browser history, a reverse proxy's access log and a log
aggregator keep whole URLs. The search form is a POST answered by a 303 to a sealed search; patient pages
are addressed by a sealed reference (``chartvault.services.links``). A sealed link that is not the
person's, was changed or is past its time answers a 4xx page that names nothing, never a 500."""

from __future__ import annotations

import re
import time
from html.parser import HTMLParser
from urllib.parse import unquote, urlencode, urljoin, urlsplit

import pytest
from sqlalchemy import select
from webfixtures import csrf_of, patient_path, search_form, sign_in, web_client

from chartvault.archive.models import AuditEvent

pytestmark = pytest.mark.slow  # each test here drives the real app over the ingested archive

SEALED = re.compile(r"[A-Za-z0-9_-]{60,}")  # a sealed link: opaque, and long (a nonce and a tag at least)


class _Addresses(HTMLParser):
    """Every address a page can send the browser to: links, form actions (a GET form with the URL it
    would send), images; and the GET forms' inputs a person could type into."""

    def __init__(self, base: str) -> None:
        super().__init__()
        self.base = base
        self.urls: list[str] = []
        self.typed_in_get_forms: list[str] = []
        self._get_form: list[tuple[str, str]] | None = None
        self._get_action = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        get_form = tag == "form" and a.get("method", "get").lower() == "get"
        for name in ("href", "src") if get_form else ("href", "src", "action"):  # a GET form's: its URL
            if a.get(name):
                self.urls.append(urljoin(self.base, a[name]))
        for candidate in a.get("srcset", "").split(","):
            if candidate.strip():
                self.urls.append(urljoin(self.base, candidate.split()[0]))
        if get_form:
            self._get_form, self._get_action = [], urljoin(self.base, a.get("action") or self.base)
        elif tag in ("input", "select", "textarea") and self._get_form is not None:
            kind = a.get("type", "text").lower()
            if kind in ("hidden", "checkbox", "radio") and a.get("name"):
                self._get_form.append((a["name"], a.get("value", "")))
            elif kind not in ("submit", "button", "reset"):
                self.typed_in_get_forms.append(f"{self._get_action} {a.get('name')}")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form" and self._get_form is not None:
            self.urls.append(self._get_action + "?" + urlencode(self._get_form))
            self._get_form = None


def _addresses(response) -> _Addresses:
    found = _Addresses(str(response.url))
    found.feed(response.text)
    return found


def _phi_in(url: str, phi: list[str]) -> list[str]:
    """The patient data readable in ``url`` once its sealed links are set aside (case-insensitive)."""
    parts = urlsplit(url)
    readable = SEALED.sub("<sealed>", unquote(parts.path + "?" + parts.query)).lower()
    return [value for value in phi if value.lower() in readable]


def _fixture_patient(client, mrn: str, doc_id: str) -> list[str]:
    """The MRN and the words of the patient's name (what must never be in an address)."""
    name = client.app.state.services.documents.get(doc_id).identifiers.name
    words = [w for w in re.split(r"[^A-Za-z]+", name.value if name else "") if len(w) >= 3]
    assert words, "the fixture document has no patient name to look for"
    return [mrn, *words]


def test_no_page_address_names_the_patient(web_archive) -> None:
    """An HIM administrator searches by MRN, name and words, opens the results, a document, the patient's
    timeline, disclosures and DOB pages and the release form: no address on any of them, no redirect
    and no URL a GET form would send holds the MRN or a word of the name."""
    mrn, doc = web_archive.mrns["ed_note"], web_archive.docs["ed_note"]
    with web_client(web_archive.settings, "him_admin") as client:
        phi = _fixture_patient(client, mrn, doc)
        sent = search_form(client, follow_redirects=False, q=f"chest {phi[1]}", mrn=mrn, name=phi[1])
        assert sent.status_code == 303
        redirects = [sent.headers["location"]]
        results = client.get(sent.headers["location"])
        assert results.status_code == 200 and f"/ui/documents/{doc}" in results.text
        pages = [results]
        found = _addresses(results)
        timeline_link = next(u for u in found.urls if "/ui/patients/" in u)
        viewer_link = next(u for u in found.urls if f"/ui/documents/{doc}?" in u)
        timeline = client.get(timeline_link)
        viewer = client.get(viewer_link)
        assert timeline.status_code == viewer.status_code == 200 and doc in timeline.text
        pages += [timeline, viewer]
        for u in _addresses(timeline).urls:
            if "/disclosures" in u or u.endswith("/dob") or "/ui/releases/new" in u:
                pages.append(client.get(u))
        release_form = next(p for p in pages if "/ui/releases/new" in str(p.url))
        assert f'value="{mrn}"' in release_form.text  # the patient arrived (in the page, not the address)
        find = client.post(
            f"/ui/documents/{doc}/find",
            data={"csrf": csrf_of(viewer.text), "q": phi[1]},
            follow_redirects=False,
        )
        redirects.append(find.headers["location"])
        dob_page = next(p for p in pages if str(p.url).endswith("/dob"))
        preview = client.post(str(dob_page.url), data={"csrf": csrf_of(dob_page.text), "dob": "1969-01-02"})
        pages.append(preview)
    # results, timeline, viewer, disclosures, DOB, the release form (from the form and the link), preview
    assert [p.status_code for p in pages] == [200] * 8, [(p.url, p.status_code) for p in pages]
    leaks: list[tuple[str, list[str]]] = []
    for page in pages:
        seen = _addresses(page)
        assert not seen.typed_in_get_forms, seen.typed_in_get_forms  # typed values would go in the URL
        leaks += [(url, hit) for url in [str(page.url), *seen.urls] if (hit := _phi_in(url, phi))]
    leaks += [(url, hit) for url in redirects if (hit := _phi_in(url, phi))]
    assert not leaks, leaks


def test_the_search_is_sealed_pages_and_survives_a_reload(web_archive) -> None:
    """The 303's address is the results (a refresh, the back button and a bookmark work); paging and facets
    carry sealed searches; the form needs its CSRF token; an empty form is the empty page."""
    mrn = web_archive.mrns["ed_note"]
    with web_client(web_archive.settings, "staff") as client:
        sent = search_form(client, follow_redirects=False, mrn=mrn)
        where = sent.headers["location"]
        assert re.fullmatch(r"/ui/search\?s=[A-Za-z0-9_-]{60,}", where)
        first, again = client.get(where), client.get(where)
        assert first.status_code == again.status_code == 200 and "1 document" in first.text
        assert f"MRN {mrn}" in first.text  # the filter is back in the form, from the sealed search
        assert re.search(rf'id="mrn" name="mrn" value="{mrn}"', first.text)
        assert client.post("/ui/search", data={"mrn": mrn}).status_code == 403  # no CSRF token
        empty = search_form(client, follow_redirects=False)
        assert empty.status_code == 303 and empty.headers["location"] == "/ui/search"
        bad = search_form(client, follow_redirects=False, q="pain", **{"from": "yesterday"})
        assert bad.status_code == 422 and "From must be a date" in bad.text and 'value="pain"' in bad.text
        many = search_form(client, q="the")
        assert many.status_code == 200
        nav = re.findall(r'href="(/ui/search\?[^"]+)" rel="next"', many.text)
        if nav:  # more than a page of hits: the next page is the same sealed search, another offset
            assert nav[0].startswith(str(many.url.path) + "?s=") and "offset=20" in nav[0]
            assert client.get(nav[0].replace("&amp;", "&")).status_code == 200


def test_a_search_interrupted_by_the_end_of_a_session_comes_back_after_signing_in(web_archive) -> None:
    """Only the path was kept for the return, so a person timed out mid-search signed in to an empty form.
    The sealed search travels through the sign-in page now; an old address's patient fields never do."""
    mrn = web_archive.mrns["ed_note"]
    with web_client(web_archive.settings, "staff") as client:
        where = search_form(client, follow_redirects=False, mrn=mrn).headers["location"]
        client.cookies.clear()  # the session has ended (timed out, or another browser)
        to_sign_in = client.get(where, follow_redirects=False)
        assert to_sign_in.status_code == 303
        back = unquote(urlsplit(to_sign_in.headers["location"]).query.removeprefix("next="))
        assert back == where
        signed = sign_in(client, "staff", next_page=back)
        assert signed.status_code == 303 and signed.headers["location"] == where
        again = client.get(where)
        assert again.status_code == 200 and "1 document" in again.text
        client.cookies.clear()
        old = client.get(f"/ui/search?mrn={mrn}", follow_redirects=False)
        assert old.status_code == 303 and mrn not in old.headers["location"]


def test_a_search_in_the_address_is_refused_and_not_echoed(web_archive) -> None:
    mrn = web_archive.mrns["shoulder"]

    def searches() -> int:
        with client.app.state.services.parts.sessions() as s:
            return len(s.scalars(select(AuditEvent.id).where(AuditEvent.action == "search")).all())

    with web_client(web_archive.settings, "staff") as client:
        before = searches()
        old = client.get("/ui/search", params={"q": "Zebediah", "mrn": mrn, "name": "Quixote"})
        assert old.status_code == 400 and "not taken from the page address" in old.text
        assert mrn not in old.text and "Zebediah" not in old.text and "Quixote" not in old.text
        assert searches() == before  # nothing was searched
        viewer = client.get(f"/ui/documents/{web_archive.docs['shoulder']}", params={"q": "Zebediah"})
        assert viewer.status_code == 200 and "Zebediah" not in viewer.text  # a bare q is not read


def _refused(response, *phi: str) -> None:
    assert response.status_code == 404, (response.url, response.status_code)
    assert "link has expired" in response.text and "search again" in response.text
    assert not any(value in response.text for value in phi), response.url


def test_another_persons_a_changed_or_an_expired_link_is_a_clear_refusal(web_archive) -> None:
    mrn, doc = web_archive.mrns["mammogram"], web_archive.docs["mammogram"]
    with web_client(web_archive.settings, "staff") as staff:
        theirs = patient_path(staff, mrn)
        their_search = search_form(staff, follow_redirects=False, mrn=mrn).headers["location"]
    with web_client(web_archive.settings, "him_admin") as him:
        mine = patient_path(him, mrn)
        assert him.get(mine).status_code == 200
        ref = mine.rsplit("/", 1)[1]
        changed = mine[:-3] + ("AAA" if not mine.endswith("AAA") else "BBB")
        for url in (
            theirs,  # another person's
            theirs + "/disclosures",
            their_search,
            f"/ui/documents/{doc}?" + their_search.split("?", 1)[1],
            changed,  # changed
            changed + "/dob",
            "/ui/patients/" + mrn,  # an MRN where a reference belongs
            f"/ui/releases/new?patient={mrn}",
            "/ui/search?s=not-a-sealed-search",
        ):
            _refused(him.get(url), mrn)
        token = csrf_of(him.get(mine).text)
        _refused(him.post(theirs + "/dob", data={"csrf": token, "dob": "1970-01-01"}), mrn)
        sealer = him.app.state.services.parts.link_sealer
        sealer.clock = lambda: time.time() + 12 * 3600 + 60  # the links' 12 hours have passed
        try:
            for url in (mine, f"{mine}/disclosures", f"{mine}/dob", f"/ui/releases/new?patient={ref}"):
                _refused(him.get(url), mrn)
        finally:
            sealer.clock = time.time
        assert him.get(mine).status_code == 200

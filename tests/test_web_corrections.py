"""The corrections HIM made only from the command line, now pages: a patient's date of birth (it decides
retention) from the patient page or a review item, and the document-type classifier retrained on the
staff's type corrections. Real app, real ingested documents (``webfixtures``), the roles of ``POLICY``."""

from __future__ import annotations

import re
import time
from datetime import date, timedelta

import pytest
from sqlalchemy import select
from webfixtures import csrf_of, patient_path, web_client

from chartvault.archive.models import AuditEvent, Document, Patient

pytestmark = pytest.mark.slow  # the fixture archive is ingested through the real pipeline


def _services(settings):
    from chartvault.services import Services

    return Services(settings)


def _audit(settings, action: str) -> list[AuditEvent]:
    with _services(settings) as services, services.parts.sessions() as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)))


def _dob_and_retention(settings, mrn: str, doc_id: str) -> tuple[date | None, date | None, str | None, date]:
    with _services(settings) as services, services.parts.sessions() as s:
        patient = s.scalars(select(Patient).where(Patient.mrn == mrn)).one()
        doc = s.get(Document, doc_id)
        assert doc is not None and doc.dob == patient.dob
        return patient.dob, doc.retain_until, doc.retention_rule, doc.object_retain_until.date()


def test_only_him_roles_see_and_use_the_dob_and_classifier_pages(web_archive) -> None:
    mrn = web_archive.mrns["mammogram"]
    before = _dob_and_retention(web_archive.settings, mrn, web_archive.docs["mammogram"])
    for role in ("scanner", "staff", "vendor"):
        with web_client(web_archive.settings, role) as client:
            home = client.get("/ui/account")
            assert 'href="/ui/classifier"' not in home.text  # not in their menu
            patient = patient_path(client, mrn)
            for path in (f"{patient}/dob", "/ui/classifier", "/ui/classifier/progress"):
                refused = client.get(path)
                assert refused.status_code == 403 and "Not allowed" in refused.text, (role, path)
            token = csrf_of(home.text)
            sent = {"csrf": token, "dob": "1999-01-01", "confirmed": "1"}
            assert client.post(f"{patient}/dob", data=sent).status_code == 403
            assert client.post("/ui/classifier", data={"csrf": token}).status_code == 403
            if role == "staff":  # the patient page is theirs, the correction is not
                timeline = client.get(patient)
                assert timeline.status_code == 200 and "/dob" not in timeline.text
    assert _dob_and_retention(web_archive.settings, mrn, web_archive.docs["mammogram"]) == before
    for role in ("him_admin", "admin"):
        with web_client(web_archive.settings, role) as client:
            assert 'href="/ui/classifier"' in client.get("/ui/account").text
            patient = patient_path(client, mrn)
            assert f'href="{patient}/dob"' in client.get(patient).text
    refusals = [e for e in _audit(web_archive.settings, "session.use") if e.outcome == "forbidden"]
    assert any(e.target_id == "POST /ui/patients/{ref}/dob" for e in refusals)


def test_a_dob_correction_is_shown_then_made_and_moves_the_retention(web_archive) -> None:
    settings = web_archive.settings
    mrn, doc = web_archive.mrns["ed_note"], web_archive.docs["ed_note"]
    old_dob, old_until, old_rule, old_lock = _dob_and_retention(settings, mrn, doc)
    assert (old_dob, old_until, old_rule) == (date(2001, 7, 16), date(2032, 3, 15), "ahima.adult")
    with web_client(settings, "him_admin") as client:
        page_url = patient_path(client, mrn) + "/dob"
        form = client.get(page_url)
        assert form.status_code == 200 and "2001-07-16" in form.text and "2032-03-15" in form.text
        token = csrf_of(form.text)

        def ask(dob: str, **more: str):
            return client.post(page_url, data={"csrf": token, "dob": dob, **more}, follow_redirects=False)

        tomorrow = (date.today() + timedelta(days=1)).isoformat()
        for typed, message in [
            ("1970-02-30", "The date of birth must be a date (YYYY-MM-DD)."),
            ("", "Enter the corrected date of birth."),
            (tomorrow, "The date of birth cannot be in the future."),
            ("2022-03-16", "The date of birth is after the date of service of 1 of this patient"),
            ("2001-07-16", "That is the date of birth on record already."),
        ]:
            for confirmed in ({}, {"confirmed": "1"} if typed != old_dob.isoformat() else {}):
                refused = ask(typed, **confirmed)
                assert refused.status_code == 422, (typed, confirmed)
                assert message in refused.text.replace("&#39;", "'"), (typed, refused.text)
                assert f'name="dob" value="{typed}"' in refused.text  # what was typed is kept
                assert 'aria-invalid="true"' in refused.text
        assert _dob_and_retention(settings, mrn, doc)[:3] == (old_dob, old_until, old_rule)

        # A child at the visit: majority (2035-07-16) plus 3 years beats 10 years after the visit.
        preview = ask("2017-07-16")
        assert preview.status_code == 200
        assert "The retention of 1 of 1 archived document changes." in preview.text
        row = re.search(r'<tr class="moves">(.*?)</tr>', preview.text, re.S)
        assert row and "2032-03-15" in row.group(1) and "<mark>2038-07-16</mark>" in row.group(1)
        assert "ahima.adult → ahima.minor" in row.group(1)
        assert _dob_and_retention(settings, mrn, doc)[:3] == (old_dob, old_until, old_rule)  # nothing saved

        done = ask("2017-07-16", confirmed="1", csrf=csrf_of(preview.text))
        assert done.status_code == 303 and done.headers["location"] == f"{page_url}?done=1"
        after = client.get(done.headers["location"])
        assert "Date of birth corrected and retention recomputed: 1 document got another date." in after.text
        assert re.search(r'id="dob-on-record">2017-07-16<', after.text)

    dob, until, rule, lock = _dob_and_retention(settings, mrn, doc)
    assert (dob, until, rule) == (date(2017, 7, 16), date(2038, 7, 16), "ahima.minor")
    assert lock > old_lock  # the stored original's lock followed
    with _services(settings) as services:
        assert services.records.retention(doc)["retain_until"] == "2038-07-16"
        him = next(u for u in services.access.users().users if u.username == "him_admin")
    patient_id = _patient_id(settings, mrn)
    corrected = [e for e in _audit(settings, "patient.dob_corrected") if e.target_id == patient_id]
    assert [(e.outcome, e.detail) for e in corrected][-1] == ("ok", {"documents_changed": 1})
    assert {e.outcome for e in corrected} == {"ok", "refused"}  # the refused attempts are recorded too
    assert all(e.actor == f"user:{him.id}" for e in corrected)
    read = [e for e in _audit(settings, "patient.retention_read") if e.target_id == patient_id]
    assert read and all(e.actor == f"user:{him.id}" for e in read)
    written = " ".join(f"{e.target_id} {e.detail}" for e in corrected + read)
    for phi in ("2017-07-16", "2001-07-16", "2022-03-16", tomorrow, mrn):
        assert phi not in written  # no date of birth, date of service or MRN in what the pages audit

    with _services(settings) as services:  # as it was, for the other tests of this archive
        services.records.correct_dob(mrn, old_dob)
    assert _dob_and_retention(settings, mrn, doc)[:3] == (old_dob, old_until, old_rule)


def _patient_id(settings, mrn: str) -> str:
    with _services(settings) as services, services.parts.sessions() as s:
        return s.scalars(select(Patient.id).where(Patient.mrn == mrn)).one()


def test_a_review_item_held_on_its_patient_offers_the_dob_correction(web_archive) -> None:
    settings = web_archive.settings
    mrn, doc = web_archive.mrns["mammogram"], web_archive.docs["mammogram"]
    right = date(1968, 2, 21)
    with _services(settings) as services:  # the index's DOB misread; the page's right: a conflict
        services.records.correct_dob(mrn, date(2012, 2, 21))
        held = services.review.resolve(doc, mrn, right)
        assert held.review_status == "pending" and not held.patient_linked
    other = web_archive.docs["shoulder"]
    with web_client(settings, "him_admin") as client:
        item = client.get(f"/ui/review/{doc}")
        assert item.status_code == 200 and "the DOB read disagrees with that patient" in item.text
        link = re.search(rf'href="(/ui/patients/([^/"]+)/dob)\?back={doc}"', item.text)
        assert link and mrn not in link.group(0)  # a sealed reference, never the MRN
        page_url = link.group(1)
        assert "/dob?back=" not in client.get(f"/ui/review/{other}").text  # not held on its patient
        form = client.get(f"{page_url}?back={doc}")
        sent = {"csrf": csrf_of(form.text), "dob": right.isoformat(), "back": doc}
        preview = client.post(page_url, data=sent)
        # Its own DOB (the page's, given when it was resolved) already dates it: nothing moves.
        assert (
            "No retention date changes (the rules give the archived document the same date)" in preview.text
        )
        assert 'name="back" value="' + doc in preview.text
        done = client.post(page_url, data={**sent, "confirmed": "1"}, follow_redirects=False)
        assert done.headers["location"] == f"{page_url}?done=0&back={doc}"
        assert (
            f'<a href="/ui/review/{doc}">Back to the review item to resolve it</a>'
            in client.get(done.headers["location"]).text
        )
        resolved = client.post(
            f"/ui/documents/{doc}/review/resolve",
            data={"csrf": sent["csrf"], "mrn": mrn, "dob": right.isoformat(), "two_identifiers": "1"},
            follow_redirects=False,
        )
        assert resolved.headers["location"] == "/ui/review?done=resolved"
    with _services(settings) as services:
        assert services.documents.get(doc).patient_id is not None
    assert _dob_and_retention(settings, mrn, doc)[:3] == (right, date(2029, 4, 13), "ahima.adult")


def test_retraining_after_a_type_correction_learns_one_more(web_archive) -> None:
    from chartvault.classify import model as mdl

    settings = web_archive.settings
    # Not the document the browser's retraining test corrects: the archive is shared by the session, and a
    # second correction of one document is still one correction learned.
    doc = web_archive.docs["ed_note"]
    with web_client(settings, "him_admin") as client:
        vault = client.app.state.services
        corrected_before = len(vault.parts.classifier.corrections())
        page = client.get("/ui/classifier")
        assert page.status_code == 200 and "Retrain the classifier now" in page.text
        token = csrf_of(page.text)
        original = vault.documents.get(doc).doc_type
        new_type = "operative_report" if original != "operative_report" else "consult_note"
        typed = client.post(f"/ui/documents/{doc}/classification", data={"csrf": token, "doc_type": new_type})
        assert typed.status_code == 200
        waiting = vault.review.classifier_status().corrections_waiting
        assert waiting >= 1
        assert re.search(
            rf'id="corrections-waiting"><strong>{waiting}</strong>', client.get("/ui/classifier").text
        )

        started = client.post("/ui/classifier", data={"csrf": token}, follow_redirects=False)
        assert started.status_code == 303 and started.headers["location"] == "/ui/classifier"
        running = client.get("/ui/classifier")
        assert 'hx-get="/ui/classifier/progress"' in running.text and "Retraining" in running.text
        again = client.post("/ui/classifier", data={"csrf": token}, follow_redirects=False)
        assert again.status_code == 303  # joins the training under way: never two at once
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            fragment = client.get("/ui/classifier/progress")
            if "Retrained" in fragment.text or "Failed" in fragment.text:
                break
            time.sleep(0.5)
        assert "Retrained" in fragment.text, fragment.text
        assert "hx-get" not in fragment.text  # done: the page stops asking

        corrections = vault.parts.classifier.corrections()
        assert len(corrections) == corrected_before + 1
        result = vault.review.classifier_training().result
        assert result.corrections == len(corrections)
        assert f"{result.corrections} of them staff correction" in fragment.text
        texts, labels = mdl.training_data()
        expected = mdl.training_version(
            [*texts, *(t for t, _ in corrections)], [*labels, *(label for _, label in corrections)]
        )
        assert result.version == expected and result.n_train == len(texts) + len(corrections)
        assert vault.parts.classifier.current().version == expected  # what the next batch uses
        status = vault.review.classifier_status()
        assert (status.version, status.corrections_learned, status.corrections_waiting) == (
            expected,
            len(corrections),
            0,
        )
        assert re.search(rf'id="model-version">{expected}<', fragment.text), fragment.text
        for shown in (fragment.text, client.get("/ui/classifier").text):  # no file of the server named
            assert "Saved as" not in shown and str(settings.data_dir) not in shown
        assert re.search(r'id="corrections-waiting">0<', fragment.text)
        vault.review.correct_type(doc, original)  # its type as it was, for the other tests
    trained = _audit(settings, "classifier.train")
    assert trained[-1].actor.startswith("user:") and trained[-1].detail["version"] == expected

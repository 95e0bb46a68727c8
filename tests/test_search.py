"""Contract tests for every search backend: the same assertions run against whoosh and tantivy."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import date
from pathlib import Path

import pytest

from chartvault.search import (
    BACKEND_KINDS,
    IndexDocument,
    SearchBackend,
    SearchQuery,
    SearchResults,
    open_backend,
)
from chartvault.search.common import fingerprint
from chartvault.search.lifecycle import IndexLocation, schema_version_of

# Synthetic records; MRNs are fake. d1 and d4 belong to the same patient (MRN with leading zeros) and
# encounter E100; ICD codes are written as a scanner would find them (dots, lower case).
DOCS = [
    IndexDocument(
        doc_id="d1",
        pages=[
            "Admitted for congestive heart failure exacerbation.",
            "Echocardiogram shows reduced ejection fraction.",
            "Discharged on furosemide 40 mg daily.",
        ],
        mrn="0012345",
        patient_name="Alice Jones",
        doc_type="discharge_summary",
        date_of_service=date(2024, 3, 1),
        batch_id="B1",
        encounter="E100",
        icd_codes=["I50.9"],
    ),
    IndexDocument(
        doc_id="d2",
        pages=[
            "Heart rate regular. No signs of failure of the kidney graft.",
            "Metformin started for diabetes.",
        ],
        mrn="12345",
        patient_name="Robert Brown",
        doc_type="lab_report",
        date_of_service=date(2024, 3, 15),
        batch_id="B1",
        encounter="E200",
        icd_codes=["E11.9", "n18.3"],
    ),
    IndexDocument(
        doc_id="d3",
        pages=[
            "Follow-up for pneumonia. Chest x-ray clear.",
            "Patient typed <script>alert(1)</script> & reports anxiety.",
        ],
        mrn="7654321",
        patient_name="Carol White",
        doc_type="progress_note",
        date_of_service=date(2024, 3, 31),
        batch_id="B2",
    ),
    IndexDocument(
        doc_id="d4",
        pages=[
            "Laboratory cover sheet.",
            "Hemoglobin A1c elevated; diabetes poorly controlled.",
            "Reviewed and signed by the attending physician.",
        ],
        mrn="0012345",
        patient_name="Alice Jones",
        doc_type="lab_report",
        date_of_service=date(2024, 4, 1),
        batch_id="B2",
        encounter="E100",
        icd_codes=["E11.65"],
    ),
    IndexDocument(
        doc_id="d5",
        pages=["Pneumothorax ruled out on imaging."],
        mrn="5550001",
        patient_name="Dan Green",
        doc_type="progress_note",
        date_of_service=None,
        batch_id="B3",
    ),
]


class Catalog:
    """Stands in for the catalog: the only holder of page text."""

    def __init__(self, docs: Sequence[IndexDocument]) -> None:
        self.pages = {doc.doc_id: list(doc.pages) for doc in docs}

    def __call__(self, doc_id: str) -> Sequence[str]:
        return self.pages[doc_id]


@pytest.fixture(params=BACKEND_KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def backend(kind: str, tmp_path: Path) -> Iterator[SearchBackend]:
    be = open_backend(kind, tmp_path)
    be.index(DOCS)
    yield be
    be.close()


def search(be: SearchBackend, text: str | None = None, **kw: object) -> SearchResults:
    return be.search(SearchQuery(text=text, **kw), load_pages=Catalog(DOCS))  # type: ignore[arg-type]


def ids(results: SearchResults) -> set[str]:
    return {hit.doc_id for hit in results.hits}


def test_phrase_finds_only_the_adjacent_words(backend: SearchBackend) -> None:
    assert ids(search(backend, '"heart failure"')) == {"d1"}
    assert ids(search(backend, "heart failure")) == {"d1", "d2"}  # both words, not adjacent in d2


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("diabetes metformin", {"d2"}),  # default operator is AND
        ("diabetes AND metformin", {"d2"}),
        ("furosemide OR metformin", {"d1", "d2"}),
        ("diabetes NOT metformin", {"d4"}),
        ("(furosemide OR hemoglobin) NOT echocardiogram", {"d4"}),
        ("fractions", {"d1"}),  # plurals match singulars
    ],
)
def test_boolean_operators(backend: SearchBackend, text: str, expected: set[str]) -> None:
    results = search(backend, text)
    assert ids(results) == expected
    assert results.suggestion is None


def test_no_porter_conflation(backend: SearchBackend) -> None:
    # Plural stemming only: "diabetic" is not "diabetes"; only the did-you-mean retry finds them.
    assert search(backend, "diabetic").suggestion == "diabetes"


def test_prefix(backend: SearchBackend) -> None:
    assert ids(search(backend, "pneumo*")) == {"d3", "d5"}
    assert ids(search(backend, "pneumonia")) == {"d3"}
    assert ids(search(backend, "echocardio* furosemide")) == {"d1"}


def test_mrn_filter_with_and_without_text(backend: SearchBackend) -> None:
    listing = search(backend, mrn="0012345")
    assert [hit.doc_id for hit in listing.hits] == ["d4", "d1"]  # filter only: newest first
    assert listing.total == 2
    assert all(not hit.snippets for hit in listing.hits)
    assert ids(search(backend, "diabetes", mrn="0012345")) == {"d4"}


def test_mrn_with_leading_zeros_matches_exactly(backend: SearchBackend) -> None:
    assert ids(search(backend, mrn="12345")) == {"d2"}
    assert ids(search(backend, mrn="0012345")) == {"d1", "d4"}
    # Typed as a free-text word, the MRN matches too, still exactly.
    assert ids(search(backend, "0012345")) == {"d1", "d4"}
    assert ids(search(backend, "12345")) == {"d2"}


def test_patient_name_as_free_text(backend: SearchBackend) -> None:
    assert ids(search(backend, "alice jones")) == {"d1", "d4"}


def test_type_filter(backend: SearchBackend) -> None:
    assert ids(search(backend, doc_type="lab_report")) == {"d2", "d4"}
    assert ids(search(backend, "diabetes", doc_type="lab_report")) == {"d2", "d4"}
    assert ids(search(backend, "pneumonia", doc_type="lab_report")) == set()


def test_date_range_is_inclusive(backend: SearchBackend) -> None:
    both_ends = search(backend, date_from=date(2024, 3, 15), date_to=date(2024, 3, 31))
    assert ids(both_ends) == {"d2", "d3"}
    assert ids(search(backend, date_from=date(2024, 4, 1))) == {"d4"}
    assert ids(search(backend, date_to=date(2024, 3, 1))) == {"d1"}  # the undated d5 is excluded
    assert ids(search(backend, "diabetes", date_from=date(2024, 3, 16))) == {"d4"}


def test_batch_filter(backend: SearchBackend) -> None:
    assert ids(search(backend, batch_id="B2")) == {"d3", "d4"}
    assert ids(search(backend, "diabetes", batch_id="B1")) == {"d2"}


def test_no_text_and_no_filter_is_empty_not_an_error(backend: SearchBackend) -> None:
    for text in (None, "", "   "):
        results = search(backend, text)
        assert results.total == 0
        assert results.hits == []


def test_upsert_replaces_the_old_text(backend: SearchBackend) -> None:
    replaced = IndexDocument(
        doc_id="d1",
        pages=["Hip fracture repaired."],
        mrn="0012345",
        doc_type="operative_note",
        date_of_service=date(2024, 3, 1),
        batch_id="B1",
    )
    backend.index([replaced])
    assert ids(search(backend, "furosemide")) == set()
    assert ids(search(backend, "fracture")) == {"d1"}
    assert ids(search(backend, doc_type="discharge_summary")) == set()
    assert search(backend, mrn="0012345").total == 2
    assert backend.doc_ids() == {doc.doc_id for doc in DOCS}


def test_repeated_id_in_one_batch_keeps_the_last(backend: SearchBackend) -> None:
    backend.index(
        [IndexDocument("d9", ["first version"]), IndexDocument("d9", ["second version"], batch_id="B9")]
    )
    assert ids(search(backend, "first")) == set()
    assert search(backend, "version").total == 1


def test_delete_removes_and_ignores_unknown_ids(backend: SearchBackend) -> None:
    backend.delete(["d2", "no-such-doc"])
    assert ids(search(backend, "metformin")) == set()
    assert backend.doc_ids() == {"d1", "d3", "d4", "d5"}


def test_doc_ids_and_clear(backend: SearchBackend) -> None:
    assert backend.doc_ids() == {doc.doc_id for doc in DOCS}
    backend.clear()
    assert backend.doc_ids() == set()
    assert search(backend, "diabetes").total == 0
    backend.index(DOCS[:1])
    assert backend.doc_ids() == {"d1"}


@pytest.mark.parametrize("text", ["routine", None])
def test_pagination_is_stable_and_total_correct(backend: SearchBackend, text: str | None) -> None:
    bulk = [
        IndexDocument(
            f"p{i:02d}",
            [f"Routine checkup visit number {i}. " + "routine " * (i % 4)],
            batch_id="BULK",
            date_of_service=date(2023, 1, 1 + i % 5),  # ties on the date too
        )
        for i in range(25)
    ]
    backend.index(bulk)
    seen: list[str] = []
    for offset in (0, 10, 20):
        page = search(backend, text, batch_id="BULK", limit=10, offset=offset)
        assert page.total == 25
        assert (page.offset, page.limit) == (offset, 10)
        seen += [hit.doc_id for hit in page.hits]
        assert page.hits == search(backend, text, batch_id="BULK", limit=10, offset=offset).hits
    assert len(seen) == 25
    assert set(seen) == {doc.doc_id for doc in bulk}
    beyond = search(backend, text, batch_id="BULK", limit=10, offset=30)
    assert (beyond.total, beyond.hits) == (25, [])
    counted = search(backend, text, batch_id="BULK", limit=0)
    assert (counted.total, counted.hits) == (25, [])


def test_ranked_results_are_ordered_by_score(backend: SearchBackend) -> None:
    hits = search(backend, "diabetes").hits
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert all(h.score > 0 for h in hits)


def test_snippet_marks_the_term_on_the_right_page(backend: SearchBackend) -> None:
    (hit,) = search(backend, "hemoglobin").hits
    assert hit.doc_id == "d4"
    assert hit.pages == [2]
    assert hit.snippets
    assert all(snippet.page_no == 2 for snippet in hit.snippets)
    assert "<mark>Hemoglobin</mark> A1c elevated" in hit.snippets[0].html


def test_snippets_for_a_phrase_and_several_pages(backend: SearchBackend) -> None:
    (hit,) = search(backend, '"heart failure" OR furosemide').hits
    assert hit.pages == [1, 3]
    assert [s.page_no for s in hit.snippets] == [1, 3]
    assert "<mark>heart failure</mark>" in hit.snippets[0].html
    assert "<mark>furosemide</mark>" in hit.snippets[1].html
    (prefixed,) = search(backend, "echocardio*").hits
    assert "<mark>Echocardiogram</mark>" in prefixed.snippets[0].html


def test_plural_forms_are_found_and_highlighted(backend: SearchBackend) -> None:
    extra = IndexDocument("s1", ["Cover page.", "Two sleep STUDIES and one Study of gait."])
    backend.index([extra])
    (hit,) = backend.search(SearchQuery(text="study"), load_pages=Catalog([extra])).hits
    assert hit.pages == [2]
    assert "<mark>STUDIES</mark> and one <mark>Study</mark>" in hit.snippets[0].html


def test_negated_words_are_not_highlighted(backend: SearchBackend) -> None:
    (hit,) = search(backend, "diabetes NOT metformin").hits
    assert "<mark>diabetes</mark>" in hit.snippets[0].html
    assert search(backend, "NOT diabetes", batch_id="B1").hits[0].snippets == []


def test_html_in_page_text_is_escaped(backend: SearchBackend) -> None:
    (hit,) = search(backend, "anxiety").hits
    html = hit.snippets[0].html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; reports <mark>anxiety</mark>" in html
    assert "<script>" not in html


def test_no_snippets_without_a_page_loader(backend: SearchBackend) -> None:
    (hit,) = backend.search(SearchQuery(text="hemoglobin")).hits
    assert (hit.pages, hit.snippets) == ([], [])


@pytest.mark.parametrize(
    "text",
    [
        '"heart failure',
        'heart failure"',
        "AND",
        "OR OR",
        "NOT",
        "heart AND",
        "NOT NOT heart",
        "(((heart",
        "heart)))",
        "*",
        "**heart",
        "he*rt",
        '"',
        '""',
        "\\",
        "mrn:0012345",
        "[a TO",
        "heart^2",
        "heart~",
        "covid-1*",
        "\x00 heart",
        "x" * 5000,
        "héart fàilure",
    ],
)
def test_malformed_queries_do_not_raise(backend: SearchBackend, text: str) -> None:
    results = search(backend, text)
    assert isinstance(results, SearchResults)
    assert results.total == len(results.hits)


def test_unbalanced_quote_falls_back_to_words(backend: SearchBackend) -> None:
    assert ids(search(backend, '"heart failure')) == {"d1", "d2"}
    assert ids(search(backend, "héart fàilure")) == {"d1", "d2"}  # accents folded


def test_index_persists_across_instances(kind: str, tmp_path: Path) -> None:
    first = open_backend(kind, tmp_path)
    first.index(DOCS)
    first.close()
    second = open_backend(kind, tmp_path)
    try:
        assert ids(search(second, '"heart failure"')) == {"d1"}
        assert second.doc_ids() == {doc.doc_id for doc in DOCS}
        current = IndexLocation(tmp_path, kind).current()
        assert current is not None and (current / "schema.json").is_file()
        assert second.schema_version == schema_version_of(kind)
    finally:
        second.close()


def test_searcher_sees_commits_from_another_instance(kind: str, tmp_path: Path) -> None:
    writer, reader = open_backend(kind, tmp_path), open_backend(kind, tmp_path)
    try:
        assert search(reader, "hemoglobin").total == 0
        writer.index(DOCS)
        if kind == "tantivy":
            reader._ix.reload()  # type: ignore[attr-defined]  # otherwise reloads on a ~0.5 s timer
        assert search(reader, "hemoglobin").total == 1
    finally:
        writer.close()
        reader.close()


def test_empty_index_answers_every_kind_of_query(kind: str, tmp_path: Path) -> None:
    be = open_backend(kind, tmp_path)
    try:
        for text in ("hemoglobin", "hemoglobn~", "hemoglobn", "pneumo*", '"heart failure"'):
            results = be.search(SearchQuery(text=text, sort="date_asc"))
            assert (results.total, results.hits, results.suggestion) == (0, [], None)
            assert results.facets == {"doc_type": {}, "year": {}, "encounter": {}}
    finally:
        be.close()


def test_fuzzy_sees_words_added_after_the_first_search(backend: SearchBackend) -> None:
    assert ids(search(backend, "warfarn~")) == set()
    backend.index([IndexDocument("w1", ["Started warfarin."])])
    results = backend.search(SearchQuery(text="warfarn~"))
    assert ids(results) == {"w1"}


def test_unknown_backend_kind(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown search backend"):
        open_backend("lucene", tmp_path)


# -- fuzzy matching (OCR errors) and "did you mean" ---------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("hemoglobn~", {"d4"}),  # one deletion
        ("hemoglobinn~", {"d4"}),  # one insertion
        ("furosemlde~", {"d1"}),  # one substitution (OCR: i read as l)
        ("furosemide~", {"d1"}),  # the exact word is within any distance
        ("furosenide~1", {"d1"}),
        ("hernoglobin~", set()),  # rn for m: two edits...
        ("hernoglobin~2", {"d4"}),  # ...found with ~2
        ("metfromin~", set()),  # a swap is two edits in both engines (plain Levenshtein)
        ("metfromin~2", {"d2"}),
        ("metformin~9", {"d2"}),  # clamped to 2, not an error
        ("diabetes echocardiogran~", set()),  # fuzzy words are still required (AND)
        ("pneumonla~ OR furosemide", {"d1", "d3"}),
        ("diabetes NOT metfornin~", {"d4"}),
        ("covid-19~", set()),  # punctuation: can match no indexed term
        ("alise~ jones", {"d1", "d4"}),  # names too
    ],
)
def test_fuzzy_terms(backend: SearchBackend, text: str, expected: set[str]) -> None:
    results = search(backend, text)
    assert ids(results) == expected
    if expected:
        assert results.suggestion is None  # explicit fuzziness is not a fallback


def test_fuzzy_match_is_highlighted(backend: SearchBackend) -> None:
    (hit,) = search(backend, "hemoglobn~").hits
    assert hit.pages == [2]
    assert "<mark>Hemoglobin</mark> A1c" in hit.snippets[0].html


def test_did_you_mean_retries_fuzzily_and_suggests(backend: SearchBackend) -> None:
    results = search(backend, "diabetis")
    assert ids(results) == {"d2", "d4"}
    assert results.total == 2
    assert results.suggestion == "diabetes"
    assert any("<mark>diabetes</mark>" in s.html for s in results.hits[0].snippets)


def test_did_you_mean_keeps_correct_words_and_operators(backend: SearchBackend) -> None:
    results = search(backend, "echocardiogarm AND Furosemide")
    assert ids(results) == {"d1"}
    assert results.suggestion == "echocardiogram AND Furosemide"
    negated = search(backend, "hemoglobim NOT metformin")
    assert (ids(negated), negated.suggestion) == ({"d4"}, "hemoglobin NOT metformin")


def test_did_you_mean_keeps_the_filters(backend: SearchBackend) -> None:
    assert ids(search(backend, "diabetis", mrn="0012345")) == {"d4"}
    nothing = search(backend, "diabetis", doc_type="progress_note")
    assert (nothing.total, nothing.hits, nothing.suggestion) == (0, [], None)


def test_no_suggestion_when_something_matched_or_nothing_to_bend(backend: SearchBackend) -> None:
    assert search(backend, "diabetes").suggestion is None
    for text in ("0012346", "zzz", "xqzvbnmwrt"):  # digits are never bent (another patient's MRN)
        results = search(backend, text)
        assert (results.total, results.suggestion) == (0, None)


def test_did_you_mean_without_page_text_marks_the_bent_words(backend: SearchBackend) -> None:
    results = backend.search(SearchQuery(text="diabetis"))
    assert ids(results) == {"d2", "d4"}
    assert results.suggestion == "diabetis~"
    long_word = backend.search(SearchQuery(text="echocardiogarm"))
    assert (ids(long_word), long_word.suggestion) == ({"d1"}, "echocardiogarm~2")


# -- sort by date, facets -------------------------------------------------------------------------------


def order(results: SearchResults) -> list[str]:
    return [hit.doc_id for hit in results.hits]


def test_sort_by_date_with_words(backend: SearchBackend) -> None:
    assert order(search(backend, "diabetes", sort="date_desc")) == ["d4", "d2"]
    assert order(search(backend, "diabetes", sort="date_asc")) == ["d2", "d4"]
    dated = search(backend, "diabetes", sort="date_asc")
    assert all(hit.score == 0.0 for hit in dated.hits)  # not ranked
    assert all(hit.snippets for hit in dated.hits)  # still highlighted
    assert dated.total == 2


def test_sort_by_date_puts_undated_last_both_ways(backend: SearchBackend) -> None:
    assert order(search(backend, "pneumo*", sort="date_desc")) == ["d3", "d5"]
    assert order(search(backend, "pneumo*", sort="date_asc")) == ["d3", "d5"]
    assert order(search(backend, doc_type="progress_note", sort="date_asc")) == ["d3", "d5"]
    listing = search(backend, batch_id="B1", sort="date_asc")
    assert order(listing) == ["d1", "d2"]


def test_relevance_is_the_default_and_lists_stay_newest_first(backend: SearchBackend) -> None:
    assert search(backend, "diabetes").hits == search(backend, "diabetes", sort="relevance").hits
    assert order(search(backend, mrn="0012345", sort="relevance")) == ["d4", "d1"]


def test_unknown_sort_is_rejected(backend: SearchBackend) -> None:
    with pytest.raises(ValueError, match="unknown sort"):
        search(backend, "diabetes", sort="newest")


@pytest.mark.parametrize("sort", ["date_asc", "date_desc"])
def test_pagination_by_date_is_stable(backend: SearchBackend, sort: str) -> None:
    bulk = [
        IndexDocument(
            f"p{i:02d}",
            [f"Routine checkup visit number {i}."],
            batch_id="BULK",
            date_of_service=date(2023, 1, 1 + i % 5) if i % 7 else None,  # ties, and undated ones
        )
        for i in range(25)
    ]
    backend.index(bulk)
    seen: list[str] = []
    for offset in (0, 10, 20):
        page = search(backend, "routine", batch_id="BULK", limit=10, offset=offset, sort=sort)
        assert page.total == 25
        assert (
            page.hits == search(backend, "routine", batch_id="BULK", limit=10, offset=offset, sort=sort).hits
        )
        seen += order(page)
    assert sorted(seen) == sorted(doc.doc_id for doc in bulk)
    dates = {doc.doc_id: doc.date_of_service for doc in bulk}
    dated = [dates[doc_id] for doc_id in seen if dates[doc_id] is not None]
    assert dated == sorted(dated, reverse=sort == "date_desc")
    assert all(dates[doc_id] is None for doc_id in seen[len(dated) :])  # undated last


def test_facets_count_every_match_not_just_the_page(backend: SearchBackend) -> None:
    results = search(backend, date_from=date(2000, 1, 1), limit=1)
    assert results.total == 4
    assert results.facets == {
        "doc_type": {"discharge_summary": 1, "lab_report": 2, "progress_note": 1},
        "year": {"2024": 4},
        "encounter": {"E100": 2, "E200": 1},
    }


def test_facets_follow_words_filters_and_skip_missing_values(backend: SearchBackend) -> None:
    assert search(backend, "diabetes").facets == {
        "doc_type": {"lab_report": 2},
        "year": {"2024": 2},
        "encounter": {"E100": 1, "E200": 1},
    }
    # d5 has no date and no encounter: counted by type only.
    assert search(backend, "pneumo*").facets == {
        "doc_type": {"progress_note": 2},
        "year": {"2024": 1},
        "encounter": {},
    }
    assert search(backend, "diabetes", mrn="0012345").facets == {
        "doc_type": {"lab_report": 1},
        "year": {"2024": 1},
        "encounter": {"E100": 1},
    }
    assert search(backend, "zzzz").facets == {"doc_type": {}, "year": {}, "encounter": {}}


def test_facets_by_year_and_after_changes(backend: SearchBackend) -> None:
    backend.index(
        [
            IndexDocument(
                "old", ["Diabetes noted."], doc_type="referral_letter", date_of_service=date(1999, 12, 31)
            )
        ]
    )
    backend.delete(["d2"])
    assert search(backend, "diabetes", limit=1).facets == {
        "doc_type": {"lab_report": 1, "referral_letter": 1},
        "year": {"1999": 1, "2024": 1},
        "encounter": {"E100": 1},
    }


def test_facets_can_be_skipped(backend: SearchBackend) -> None:
    assert search(backend, "diabetes", with_facets=False).facets == {}


# -- name and ICD filters, encounters ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("kw", "expected"),
    [
        ({"name": "jones"}, {"d1", "d4"}),
        ({"name": "Jones, Alice"}, {"d1", "d4"}),  # any order, punctuation ignored
        ({"name": "alice brown"}, set()),  # every word must be in the same name
        ({"name": "ALICE", "text": "diabetes"}, {"d4"}),
        ({"text": "name:jones diabetes"}, {"d4"}),  # typed in the search box
        ({"text": 'name:"alice jones"'}, {"d1", "d4"}),
        ({"text": "name:brown"}, {"d2"}),
    ],
)
def test_name_filter(backend: SearchBackend, kw: dict[str, str], expected: set[str]) -> None:
    results = search(backend, **kw)
    assert ids(results) == expected
    assert results.total == len(expected)


@pytest.mark.parametrize(
    ("kw", "expected"),
    [
        ({"icd": "E11.9"}, {"d2"}),
        ({"icd": "e119"}, {"d2"}),  # dots and case do not matter
        ({"icd": "N18.3"}, {"d2"}),  # indexed from "n18.3"
        ({"icd": "E11*"}, {"d2", "d4"}),  # a category: every code under it
        ({"icd": "E11"}, set()),  # a category is not a code
        ({"icd": "Z99.9"}, set()),
        ({"text": "icd:E11* diabetes"}, {"d2", "d4"}),
        ({"text": "icd:i50.9 furosemide"}, {"d1"}),
        ({"icd": "E11*", "mrn": "0012345"}, {"d4"}),
    ],
)
def test_icd_filter(backend: SearchBackend, kw: dict[str, str], expected: set[str]) -> None:
    results = search(backend, **kw)
    assert ids(results) == expected
    assert results.total == len(expected)


def test_encounter_filter_and_facet(backend: SearchBackend) -> None:
    results = search(backend, encounter="E100")
    assert ids(results) == {"d1", "d4"}
    assert results.facets["encounter"] == {"E100": 2}
    assert results.facets["doc_type"] == {"discharge_summary": 1, "lab_report": 1}


def test_excluded_ids_leave_hits_totals_and_facets(backend: SearchBackend) -> None:
    full = search(backend, "diabetes")
    assert ids(full) == {"d2", "d4"}
    narrowed = search(backend, "diabetes", exclude_ids=frozenset({"d4", "not-indexed"}))
    assert ids(narrowed) == {"d2"}
    assert narrowed.total == 1
    assert narrowed.facets["encounter"] == {"E200": 1}
    listing = search(backend, mrn="0012345", exclude_ids=frozenset({"d1"}))
    assert (order(listing), listing.total) == (["d4"], 1)


# -- stable pagination: ties broken by document id ------------------------------------------------------


@pytest.mark.parametrize("sort", ["relevance", "date_asc", "date_desc"])
def test_ties_are_broken_by_document_id(backend: SearchBackend, sort: str) -> None:
    # Identical documents: identical scores and dates; only the id can order them. Indexed in an
    # order unrelated to their ids and over several commits (segments), as real archives grow.
    names = [f"t{(i * 7) % 30:02d}" for i in range(30)]
    for start in (0, 10, 20):
        backend.index(
            [
                IndexDocument(n, ["Identical tie text."], batch_id="TIE", date_of_service=date(2022, 5, 5))
                for n in names[start : start + 10]
            ]
        )
    seen: list[str] = []
    for offset in range(0, 30, 7):
        page = search(backend, "identical", batch_id="TIE", limit=7, offset=offset, sort=sort)
        assert page.total == 30
        seen += order(page)
    assert seen == sorted(names)


# -- patient timeline ---------------------------------------------------------------------------------


def test_timeline_lists_a_patients_documents_by_date(backend: SearchBackend) -> None:
    backend.index(
        [
            IndexDocument("d6", ["Undated note."], mrn="0012345", doc_type="consent"),
            IndexDocument("d0", ["Same day as d1."], mrn="0012345", date_of_service=date(2024, 3, 1)),
        ]
    )
    entries = backend.timeline("0012345")
    assert [e.doc_id for e in entries] == ["d0", "d1", "d4", "d6"]  # same day: by id; undated last
    d1 = entries[1]
    assert (d1.date_of_service, d1.doc_type, d1.encounter) == (date(2024, 3, 1), "discharge_summary", "E100")
    assert entries[3].date_of_service is None
    assert [e.doc_id for e in backend.timeline("12345")] == ["d2"]  # exact MRN: leading zeros matter
    assert backend.timeline("9999999") == []
    assert backend.timeline("  ") == []
    backend.delete(["d4"])
    assert [e.doc_id for e in backend.timeline("0012345")] == ["d0", "d1", "d6"]


# -- more like this -----------------------------------------------------------------------------------


SIMILAR = [
    IndexDocument(
        "hf2",
        ["Congestive heart failure with reduced ejection fraction; furosemide increased."],
        mrn="3000001",
        patient_name="Eve Stone",
    ),
    IndexDocument(
        "hf3",
        ["Echocardiogram: ejection fraction reduced. Heart failure clinic follow-up, furosemide."],
        mrn="3000002",
        patient_name="Frank Hill",
    ),
    IndexDocument("same-patient", ["Alice Jones dental cleaning, unremarkable."], mrn="0012345"),
    IndexDocument("other", ["Fractured wrist splinted in the emergency department."], mrn="3000003"),
]


def test_more_like_this_finds_similar_content_not_the_same_patient(backend: SearchBackend) -> None:
    backend.index(SIMILAR)
    catalog = Catalog([*DOCS, *SIMILAR])
    d1 = DOCS[0]
    results = backend.more_like_this(
        "d1", catalog("d1"), 10, identifiers=[d1.mrn or "", d1.patient_name or ""]
    )
    found = [hit.doc_id for hit in results.hits]
    assert "d1" not in found  # never itself
    assert set(found[:2]) == {"hf2", "hf3"}
    assert "same-patient" not in found and "other" not in found
    assert [h.score for h in results.hits] == sorted((h.score for h in results.hits), reverse=True)
    excluded = backend.more_like_this("d1", catalog("d1"), 10, exclude_ids=frozenset({"hf2"}))
    assert "hf2" not in [hit.doc_id for hit in excluded.hits]
    assert backend.more_like_this("d1", [""], 10).hits == []  # nothing to go on: nothing, not an error


# -- the index holds ids and filter values, never text --------------------------------------------------


def test_index_stores_no_page_text(kind: str, tmp_path: Path) -> None:
    be = open_backend(kind, tmp_path)
    marker = "Zyxwvut Quokka-Marmalade Sentinel"
    be.index([IndexDocument("secret", [f"Page one. {marker}, 42 units."], mrn="7777777")])
    be.close()
    blobs = b"".join(f.read_bytes() for f in (tmp_path / kind).rglob("*") if f.is_file())
    assert marker.encode() not in blobs
    assert b"Quokka-Marmalade" not in blobs and b"Page one." not in blobs


def test_fingerprints_track_what_was_indexed(backend: SearchBackend) -> None:
    prints = backend.fingerprints()
    assert set(prints) == {doc.doc_id for doc in DOCS}
    assert prints["d1"] == fingerprint(DOCS[0])
    changed = IndexDocument(
        **{**{f: getattr(DOCS[0], f) for f in DOCS[0].__slots__}, "doc_type": "consult_note"}
    )
    assert fingerprint(changed) != prints["d1"]
    backend.index([changed])
    assert backend.fingerprints()["d1"] == fingerprint(changed)
    assert backend.doc_count() == len(DOCS)

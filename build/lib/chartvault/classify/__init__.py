"""Document type and patient identifiers from page text. Knows nothing of HTTP or the database."""

from chartvault.classify.doctype import classify_document, classify_text, get_default_model, set_default_model
from chartvault.classify.identifiers import extract_identifiers, merge_identifiers
from chartvault.classify.types import DOC_TYPES, DocTypePrediction, Extracted, Identifiers

__all__ = [
    "DOC_TYPES",
    "DocTypePrediction",
    "Extracted",
    "Identifiers",
    "classify_document",
    "classify_text",
    "extract_identifiers",
    "get_default_model",
    "merge_identifiers",
    "set_default_model",
]

"""Document type and patient identifiers from page text. Knows nothing of HTTP or the database."""

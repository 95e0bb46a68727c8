"""Images and PDFs to page text, word boxes and confidence. Knows nothing of HTTP or the database."""

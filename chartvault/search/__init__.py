"""Full-text search backends behind one small interface. Knows nothing of HTTP or the database."""

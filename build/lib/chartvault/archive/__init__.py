"""The system of record: catalog database, object store."""

"""Release of information (requests, authorizations, packages, disclosures)."""

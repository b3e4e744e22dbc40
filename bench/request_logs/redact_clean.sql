-- tenancy.redact() of the ~16 kB summary without secrets (every string scanned, nothing cut).
SELECT length(tenancy.redact(doc)::text) FROM bench.redact_docs WHERE name = 'clean';

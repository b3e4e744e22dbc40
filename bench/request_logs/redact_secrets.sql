-- tenancy.redact() of the same summary with a secret in every other item (18 cut out).
SELECT length(tenancy.redact(doc)::text) FROM bench.redact_docs WHERE name = 'secrets';

-- The floor: read the ~16 kB summary and measure its text, without redacting it.
SELECT length(doc::text) FROM bench.redact_docs WHERE name = 'clean';

-- The common alternative: an unkeyed SHA-256 of the key (pgcrypto) as the lookup key.
\set i random(1, 1000)
SELECT s.tenant_id, s.scopes FROM bench.api_key_plain p JOIN bench.sha_keys s ON s.key_hash = digest(p.key, 'sha256') WHERE p.n = :i;

-- The slow-hash alternative: pgcrypto crypt() with bcrypt, cost 10.
\set i random(1, 100)
SELECT b.tenant_id, b.key_hash = crypt(p.key, b.key_hash) FROM bench.api_key_plain p JOIN bench.bcrypt_keys b USING (n) WHERE p.n = :i;

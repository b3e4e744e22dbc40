-- pgcrypto raw AES (no authentication, key in the query).
\set i random(1, 10000)
SELECT convert_from(decrypt(secret, decode(repeat('ab', 32), 'hex'), 'aes'), 'UTF8') FROM bench.aes_store WHERE n = :i;

-- pg_tenancy: format, checksum, row by primary key, HMAC-SHA256 under the pepper, constant-time
-- comparison, revocation, expiry, tenant status, last use; called as a scalar (a composite result).
\set i random(1, 1000)
SELECT tenancy.verify_api_key(p.key) FROM bench.api_key_plain p WHERE p.n = :i;

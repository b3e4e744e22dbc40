-- pg_tenancy: verify and set the transaction's tenant context.
\set i random(1, 1000)
SELECT tenancy.authenticate(p.key) FROM bench.api_key_plain p WHERE p.n = :i;

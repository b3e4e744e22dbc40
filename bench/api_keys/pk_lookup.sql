-- The floor: the key's row by primary key (tenant id and key id known), no hashing, no checks.
\set i random(1, 1000)
SELECT k.tenant_id, k.scopes FROM bench.api_key_plain p JOIN tenancy.api_keys k ON k.tenant_id = p.tenant_id AND k.id = p.id WHERE p.n = :i;

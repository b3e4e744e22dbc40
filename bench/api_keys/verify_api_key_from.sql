-- The same, called in FROM (a function scan: the executor keeps its row in a tuplestore).
\set i random(1, 1000)
SELECT v.tenant_id, v.scopes FROM bench.api_key_plain p, tenancy.verify_api_key(p.key) v WHERE p.n = :i;

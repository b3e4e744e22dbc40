-- pg_tenancy: enter the tenant (service) and decrypt one credential (row lookup, data key, AES-256-GCM).
\set i random(1, 10000)
SELECT tenancy.set_tenant('c0000000-0000-4000-8000-000000000001'), tenancy.read_credential(id) FROM bench.cred_ids WHERE n = :i;

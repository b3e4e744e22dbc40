-- pg_tenancy: encrypt and store one credential (RLS-checked INSERT as the caller).
SELECT tenancy.set_tenant('c0000000-0000-4000-8000-000000000001'),
       tenancy.store_credential('e0000000-0000-4000-8000-000000000001', 'oauth2_tokens', v::jsonb) FROM bench.secret;

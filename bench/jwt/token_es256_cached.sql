-- pre_request verifying the request's ES256 token with the per-backend cache on: after the first use, a digest and a lookup.
-- Every script of this group runs the same statements (same settings written, same round trips).
\set t random(1, 1000)
SELECT claims, es256_headers AS headers FROM bench.tokens WHERE t = :t \gset
BEGIN;
SELECT set_config('tenancy.jwt_secret', :jwks, true), set_config('tenancy.jwt_cache_entries', '1000', true),
       set_config('request.jwt.claims', :claims, true), set_config('request.headers', :headers, true),
       set_config('role', 'authenticated', true), tenancy.pre_request();
COMMIT;

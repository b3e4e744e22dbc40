-- pre_request verifying the request's RS256 token (2048-bit key), cache off: the signature checked every time.
-- Every script of this group runs the same statements with the same parameters (the JWKS is sent
-- by all, and set as tenancy.jwt_secret by the verifying ones: a deployment sets it once, in
-- postgresql.conf; sending it costs about 1.3 µs a transaction, on every side).
\set t random(1, 1000)
SELECT claims, rs256_headers AS headers FROM bench.tokens WHERE t = :t \gset
BEGIN;
SELECT set_config('tenancy.jwt_secret', CASE WHEN true THEN :jwks ELSE '' END, true), set_config('tenancy.jwt_cache_entries', '0', true),
       set_config('request.jwt.claims', :claims, true), set_config('request.headers', :headers, true),
       set_config('role', 'authenticated', true), tenancy.pre_request();
COMMIT;

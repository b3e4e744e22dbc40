-- pre_request with tenancy.jwt_secret: the bearer token in request.headers, its HS256 signature
-- and exp checked in the database, its claims used.  Same settings written as claims_trusted.
\set t random(1, 1000)
SELECT claims, headers FROM bench.tokens WHERE t = :t \gset
BEGIN;
SELECT set_config('tenancy.jwt_secret', 'bench-jwt-secret-bench-jwt-secret-0123456789', true), set_config('request.jwt.claims', :claims, true),
       set_config('request.headers', :headers, true), set_config('role', 'authenticated', true), tenancy.pre_request();
COMMIT;

-- pre_request with tenancy.jwt_secret: the claims come from the request's own signed token
-- (Authorization: Bearer, in request.headers), verified in the database; a role with SQL access
-- that writes request.jwt.claims or request.headers itself cannot claim to be another user.
-- Tokens are signed here with pgcrypto's hmac(), independently of the Rust code.
BEGIN;
\ir helpers.psql
SELECT * FROM no_plan();
CREATE EXTENSION pgcrypto;

CREATE FUNCTION pg_temp.b64url(bytea) RETURNS text LANGUAGE sql AS
$$ SELECT translate(rtrim(encode($1, 'base64'), '='), E'+/\n', '-_') $$;
-- A compact JWS of `payload` signed with HMAC-SHA256 under `secret`, with header `header`.
CREATE FUNCTION pg_temp.jwt(payload jsonb, secret text, header jsonb DEFAULT '{"alg": "HS256", "typ": "JWT"}') RETURNS text
LANGUAGE sql AS $$
    SELECT body || '.' || pg_temp.b64url(hmac(body, secret, 'sha256'))
    FROM (SELECT pg_temp.b64url(convert_to(header::text, 'UTF8')) || '.' || pg_temp.b64url(convert_to(payload::text, 'UTF8')) AS body) b
$$;
CREATE FUNCTION pg_temp.claims(usr uuid, tenant uuid DEFAULT NULL, exp_in interval DEFAULT '1 hour') RETURNS jsonb
LANGUAGE sql AS $$
    SELECT jsonb_strip_nulls(jsonb_build_object('sub', usr, 'tenant_id', tenant, 'role', 'authenticated',
                                                'exp', extract(epoch FROM now() + exp_in)::bigint))
$$;
-- One PostgREST request: SET LOCAL ROLE, the claims and headers settings (what PostgREST sets,
-- or what a hostile session sets itself), pre_request, then `stmt`; its result or SQLSTATE
-- (with the message, to check that no part of a token leaks).
CREATE FUNCTION pg_temp.request(as_role text, claims jsonb, headers jsonb, stmt text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    result text; m text; s text;
BEGIN
    BEGIN
        EXECUTE format('SET LOCAL ROLE %I', as_role);
        PERFORM set_config('request.jwt.claims', coalesce(claims::text, ''), true);
        PERFORM set_config('request.headers', coalesce(headers::text, ''), true);
        PERFORM tenancy.pre_request();
        EXECUTE stmt INTO result;
        result := 'value:' || coalesce(result, 'NULL');
        RAISE SQLSTATE 'TT000';
    EXCEPTION
        WHEN SQLSTATE 'TT000' THEN NULL;
        WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS s = RETURNED_SQLSTATE, m = MESSAGE_TEXT;
            result := 'error:' || s || ': ' || m;
    END;
    RETURN result;
END
$$;
CREATE FUNCTION pg_temp.bearer(token text) RETURNS jsonb LANGUAGE sql AS
$$ SELECT jsonb_build_object('authorization', 'Bearer ' || token, 'accept', '*/*') $$;

\set secret '''pg-tenancy-test-jwt-secret-of-at-least-32-bytes'''
CREATE FUNCTION pg_temp.ctx() RETURNS text LANGUAGE sql AS
$$ SELECT coalesce(tenancy.current_tenant_id()::text, '-') || ',' || coalesce(tenancy.current_user_id()::text, '-') || ',' || coalesce(tenancy.current_role(), '-') $$;
\set ctx '''SELECT pg_temp.ctx()'''
SELECT pg_temp.jwt(pg_temp.claims(:dave, :acme), :secret) AS dave_token \gset
SELECT pg_temp.jwt(pg_temp.claims(:frank, :globex), 'another secret of at least 32 bytes......') AS wrong_secret \gset

-- Without tenancy.jwt_secret: the documented trust in request.jwt.claims (PostgREST verified them).
SELECT is(pg_temp.request('authenticated', pg_temp.claims(:frank, :globex), NULL, :ctx),
          'value:' || :globex || ',' || :frank || ',owner',
          'no secret set: request.jwt.claims are trusted (so a role with SQL access could forge them)');

SET LOCAL tenancy.jwt_secret = :secret;
SELECT is(pg_temp.request('authenticated', pg_temp.claims(:dave, :acme), pg_temp.bearer(:'dave_token'), :ctx),
          'value:' || :acme || ',' || :dave || ',member', 'a token signed with the secret sets its user''s context');
SELECT is(pg_temp.request('authenticated', pg_temp.claims(:frank, :globex), NULL, :ctx), 'value:-,-,-',
          'forged request.jwt.claims without a token: no context at all (anon)');
SELECT is(pg_temp.request('authenticated', pg_temp.claims(:frank, :globex), pg_temp.bearer(:'dave_token'), :ctx),
          'value:' || :acme || ',' || :dave || ',member', 'claims that disagree with the token are ignored: the token wins');
SELECT is(pg_temp.request('authenticated', NULL, pg_temp.bearer(:'dave_token') || jsonb_build_object('x-tenant-id', :globex),
                          :ctx),
          'value:' || :acme || ',' || :dave || ',member', 'the token''s tenant claim wins over the X-Tenant-Id header');
SELECT is(pg_temp.request('authenticated', NULL,
                          pg_temp.bearer(pg_temp.jwt(pg_temp.claims(:dave), :secret)) || jsonb_build_object('x-tenant-id', :globex), :ctx),
          'error:42501: permission denied for tenant: the user is not a member of it', 'a verified user still needs a membership for the tenant it names');
SELECT is((SELECT count(*) FROM unnest(ARRAY[
              pg_temp.request('authenticated', NULL, pg_temp.bearer(:'wrong_secret'), :ctx),
              pg_temp.request('authenticated', NULL, pg_temp.bearer(pg_temp.jwt(pg_temp.claims(:frank, :globex), :secret, '{"alg": "none"}')), :ctx),
              pg_temp.request('authenticated', NULL, pg_temp.bearer(pg_temp.jwt(pg_temp.claims(:frank, :globex), :secret, '{"alg": "HS512"}')), :ctx),
              pg_temp.request('authenticated', NULL, pg_temp.bearer(pg_temp.jwt(pg_temp.claims(:frank, :globex, '-1 hour'), :secret)), :ctx),
              pg_temp.request('authenticated', NULL, pg_temp.bearer(pg_temp.jwt(pg_temp.claims(:frank, :globex) - 'exp', :secret)), :ctx),
              pg_temp.request('authenticated', NULL, pg_temp.bearer(split_part(:'dave_token', '.', 1) || '.'
                    || pg_temp.b64url(convert_to(pg_temp.claims(:frank, :globex)::text, 'UTF8')) || '.' || split_part(:'dave_token', '.', 3)), :ctx),
              pg_temp.request('authenticated', NULL, pg_temp.bearer('not-a-token'), :ctx)]) r
           WHERE r LIKE 'error:28000: invalid JWT: %' AND position(split_part(:'dave_token', '.', 3) IN r) = 0
             AND position(split_part(:'wrong_secret', '.', 2) IN r) = 0), 7::bigint,
          'another secret, alg none, HS512, expired, no exp, a swapped payload, garbage: each 28000, no part of a token in the message');
SELECT is(pg_temp.request('authenticated', pg_temp.claims(:frank, :globex), pg_temp.bearer(''), :ctx), 'value:-,-,-',
          'an empty bearer is no token: anon, whatever the claims say');
SELECT is(pg_temp.request('authenticated', NULL, pg_temp.bearer(:'wrong_secret'), :ctx),
          'error:28000: invalid JWT: the signature does not match', 'the message says why');
SELECT is(pg_temp.request('anon', NULL, jsonb_build_object('accept', '*/*'), :ctx), 'value:-,-,-', 'anon (no Authorization header): no context');
SELECT is(pg_temp.request('authenticated', NULL, jsonb_build_object('authorization', 'Basic dXNlcjpwYXNz'), :ctx), 'value:-,-,-',
          'another scheme than Bearer is no token');

-- The secret is the superuser's: not readable, not settable, not listed.
SELECT is(pg_temp.probe('authenticated', NULL, NULL, 'SELECT current_setting(''tenancy.jwt_secret'')'), 'error:42501', 'authenticated cannot read the secret');
SELECT is(pg_temp.probe('service_role', NULL, NULL, 'SELECT set_config(''tenancy.jwt_secret'', ''mine-mine-mine-mine-mine-mine-mine'', true)'),
          'error:42501', 'service_role cannot set its own secret');
SELECT is(pg_temp.probe('authenticated', NULL, NULL, 'RESET tenancy.jwt_secret'), 'error:42501', 'nor reset it to fall back to trusted claims');
SELECT ok(NOT EXISTS (SELECT FROM pg_settings WHERE name = 'tenancy.jwt_secret'), 'not listed by SHOW ALL / pg_settings');
-- Audience and issuer (tenancy.jwt_aud, tenancy.jwt_iss; PostgREST's jwt-aud): a token minted by the
-- same secret for another service, or by another issuer, gets nothing.
SET LOCAL tenancy.jwt_aud = 'authenticated';
SET LOCAL tenancy.jwt_iss = 'https://project.supabase.test/auth/v1';
CREATE FUNCTION pg_temp.scoped(aud jsonb, iss text) RETURNS jsonb LANGUAGE sql AS
$$ SELECT pg_temp.bearer(pg_temp.jwt(pg_temp.claims('00000000-0000-4000-8000-0000000000a4', 'a0000000-0000-4000-8000-000000000001')
                                     || jsonb_strip_nulls(jsonb_build_object('aud', aud, 'iss', iss)),
                                     'pg-tenancy-test-jwt-secret-of-at-least-32-bytes')) $$;
SELECT is(pg_temp.request('authenticated', NULL, pg_temp.scoped('"authenticated"', 'https://project.supabase.test/auth/v1'), :ctx),
          'value:' || :acme || ',' || :dave || ',member', 'the right audience and issuer');
SELECT is(pg_temp.request('authenticated', NULL, pg_temp.scoped('["other", "authenticated"]', 'https://project.supabase.test/auth/v1'), :ctx),
          'value:' || :acme || ',' || :dave || ',member', 'the audience among several');
SELECT is(pg_temp.request('authenticated', NULL, pg_temp.scoped('"billing-service"', 'https://project.supabase.test/auth/v1'), :ctx),
          'error:28000: invalid JWT: the token''s aud is not tenancy.jwt_aud', 'another audience is refused');
SELECT is(pg_temp.request('authenticated', NULL, pg_temp.scoped(NULL, 'https://project.supabase.test/auth/v1'), :ctx),
          'error:28000: invalid JWT: the token''s aud is not tenancy.jwt_aud', 'no audience is refused');
SELECT is(pg_temp.request('authenticated', NULL, pg_temp.scoped('"authenticated"', 'https://evil.test/auth/v1'), :ctx),
          'error:28000: invalid JWT: the token''s iss is not tenancy.jwt_iss', 'another issuer is refused');
SELECT is(pg_temp.request('authenticated', NULL, pg_temp.scoped('"authenticated"', NULL), :ctx),
          'error:28000: invalid JWT: the token''s iss is not tenancy.jwt_iss', 'no issuer is refused');
SELECT is(pg_temp.probe('authenticated', NULL, NULL, $$SET tenancy.jwt_aud = ''$$), 'error:42501', 'an application role cannot loosen the audience');
SET LOCAL tenancy.jwt_aud = '';
SET LOCAL tenancy.jwt_iss = '';
SELECT is(pg_temp.request('authenticated', NULL, pg_temp.scoped('"billing-service"', NULL), :ctx),
          'value:' || :acme || ',' || :dave || ',member', 'empty settings: aud and iss are not checked');
SELECT is(pg_temp.request('authenticated', NULL, jsonb_build_object('authorization', 'Bearer ' || repeat('a', 70000)), :ctx),
          'error:28000: invalid JWT: malformed token: longer than 64 kB', 'a token longer than 64 kB is refused before it is decoded');

-- The setting as a JWKS (PostgREST's jwt-secret takes a secret, a JWK or a JWKS): an oct key signs
-- HS256 here (pgcrypto again); an EC key beside it is for ES256 only, whatever a token's header says.
-- (Asymmetric tokens signed by PyJWT: pgrx-tests/tests/jwt.rs.)
\set oct_k '''cGctdGVuYW5jeS10ZXN0LWp3dC1zZWNyZXQtb2YtYXQtbGVhc3QtMzItYnl0ZXM'''
\set ec_jwk '''{"kty":"EC","kid":"ec-1","crv":"P-256","x":"m6uyG-8v_gyjooA7MH-cbKfHUUkaNRVQcFRt8cjbM4Y","y":"lt7GnTvJk7t_iCk8cL4mzBwyzrC01l3Db91RHOf4P9w"}'''
SELECT jsonb_build_object('keys', jsonb_build_array(:ec_jwk::jsonb, jsonb_build_object('kty', 'oct', 'kid', 'hs-1', 'k', :oct_k)))::text AS jwks \gset
SELECT set_config('tenancy.jwt_secret', :'jwks', true) IS NOT NULL AS jwks_set \gset
SELECT is(pg_temp.request('authenticated', NULL,
                          pg_temp.bearer(pg_temp.jwt(pg_temp.claims(:dave, :acme), :secret, '{"alg": "HS256", "kid": "hs-1"}')), :ctx),
          'value:' || :acme || ',' || :dave || ',member', 'a JWKS: an HS256 token of its oct key, by kid');
SELECT is(pg_temp.request('authenticated', NULL, pg_temp.bearer(:'dave_token'), :ctx),
          'value:' || :acme || ',' || :dave || ',member', 'a token without kid is tried against each key of its algorithm');
SELECT is(pg_temp.request('authenticated', NULL,
                          pg_temp.bearer(pg_temp.jwt(pg_temp.claims(:dave, :acme), :ec_jwk, '{"alg": "HS256", "kid": "ec-1"}')), :ctx),
          'error:28000: invalid JWT: the token''s alg is not the algorithm of a key in tenancy.jwt_secret',
          'HS256 under the EC key''s kid, keyed with its JWK text: the EC key verifies ES256 only');
SELECT is(pg_temp.request('authenticated', NULL,
                          pg_temp.bearer(pg_temp.jwt(pg_temp.claims(:dave, :acme), :secret, '{"alg": "HS256", "kid": "hs-2"}')), :ctx),
          'error:28000: invalid JWT: no key in tenancy.jwt_secret has the token''s kid', 'an unknown kid');
SELECT is(pg_temp.request('authenticated', NULL,
                          pg_temp.bearer(pg_temp.jwt(pg_temp.claims(:dave, :acme) || jsonb_build_object('iat', extract(epoch FROM now() + interval '10 minutes')::bigint), :secret)), :ctx),
          'error:28000: invalid JWT: the token is issued in the future (iat)', 'iat in the future (past the leeway)');
SELECT is(pg_temp.request('authenticated', NULL,
                          pg_temp.bearer(pg_temp.jwt(pg_temp.claims(:dave, :acme), :secret, '{"alg": "HS256", "crit": ["exp"]}')), :ctx),
          'error:28000: invalid JWT: malformed token: crit header parameters are not supported', 'crit: extensions we do not understand');
-- Where the setting may be stored: ALTER DATABASE/ROLE ... SET keep values in pg_db_role_setting,
-- which every role reads, so a secret is refused there (quoting nothing); public keys are not.
SELECT throws_ok(format('ALTER DATABASE %I SET tenancy.jwt_secret = %L', current_database(), :secret), '22023',
                 'tenancy.jwt_secret holds secret key material, which ALTER DATABASE/ROLE ... SET would show to every role',
                 'ALTER DATABASE ... SET refuses a secret');
SELECT throws_ok(format('ALTER ROLE authenticated SET tenancy.jwt_secret = %L', :'jwks'), '22023',
                 'tenancy.jwt_secret holds secret key material, which ALTER DATABASE/ROLE ... SET would show to every role',
                 'ALTER ROLE ... SET refuses a JWKS with an oct key');
SELECT lives_ok(format('ALTER ROLE authenticated SET tenancy.jwt_secret = %L', jsonb_build_object('keys', jsonb_build_array(:ec_jwk::jsonb))),
                'public keys may be stored there');
SELECT throws_ok($$SELECT * FROM tenancy.jwt_keys(' {"kty": "EC"}')$$, '55000', NULL, 'a value starting with a blank then { is JSON');
SELECT throws_ok(format('SELECT * FROM tenancy.jwt_keys(%L)', E'\uFEFF' || :ec_jwk), '55000',
                 'tenancy.jwt_secret is not used as an HS256 secret: it starts with a byte order mark or other characters before { (a JWK or a JWKS must start with {)',
                 'a public key behind a byte order mark is never an HMAC secret');
SELECT results_eq($$SELECT position, kid, kty, alg, bits, used FROM tenancy.jwt_keys()$$,
                  $$VALUES (1, 'ec-1', 'EC', 'ES256', 256, true), (2, 'hs-1', 'oct', 'HS256', 376, true)$$,
                  'tenancy.jwt_keys() lists the keys in use, never their material');
SELECT is(pg_temp.probe('authenticated', NULL, NULL, 'SELECT count(*) FROM tenancy.jwt_keys()'), 'error:42501', 'jwt_keys is for superusers');
SELECT is(current_setting('tenancy.jwt_secret'), '(set; see tenancy.jwt_keys())',
          'SHOW and current_setting never give the keys, not even to a superuser (or pg_read_all_settings)');
SELECT is(pg_temp.probe('service_role', NULL, NULL, 'SET tenancy.jwt_cache_entries = 0'), 'error:42501', 'so is the token cache''s size');
SELECT throws_ok($$SELECT * FROM tenancy.jwt_keys('{"kty": "RSA", "n": "AQAB", "e": "AQAB"}')$$, '55000',
                 'tenancy.jwt_secret: key 1: an RSA modulus of 17 bits; 2048 to 4096 are accepted',
                 'a value is checked before it is set');
SELECT set_config('tenancy.jwt_secret', '{"keys": [{"kty": "oct", "k": "c2hvcnQ"}]}', true) IS NOT NULL AS bad_set \gset
SELECT is(pg_temp.request('authenticated', NULL, pg_temp.bearer(:'dave_token'), :ctx),
          'error:55000: tenancy.jwt_secret: key 1: an HS256 key must be at least 32 bytes (RFC 7518, 3.2)',
          'a setting that cannot be used refuses every token (55000), quoting none of it');

SET LOCAL tenancy.jwt_secret = 'short';
SELECT is(pg_temp.request('authenticated', NULL, pg_temp.bearer(:'dave_token'), :ctx),
          'error:55000: tenancy.jwt_secret must be at least 32 bytes', 'a short secret is refused, never used');

SELECT * FROM finish();
ROLLBACK;

-- Request logging: the redaction corpus (input and the exact JSON stored), log_request's checks,
-- caps, bad input, who may log.
BEGIN;
\ir helpers.psql
SELECT * FROM no_plan();

CREATE FUNCTION pg_temp.error_text(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE m text; s text;
BEGIN
    EXECUTE stmt;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS s = RETURNED_SQLSTATE, m = MESSAGE_TEXT;
    RETURN s || ': ' || m;
END $$;

-- The corpus: realistic request/response summaries, and exactly what is stored.
CREATE TEMP TABLE corpus (n serial, what text, input jsonb, expected jsonb);
INSERT INTO corpus (what, input, expected) VALUES
('bearer header',
 '{"method": "GET", "headers": {"Authorization": "Bearer xoxb-1234567890-abcdef"}}',
 '{"method": "GET", "headers": {"Authorization": "[REDACTED]"}}'),
('mixed-case header names',
 '{"headers": {"AUTHORIZATION": "Basic dXNlcjpwYXNz", "x-API-key": "k-123", "Proxy-Authorization": "Negotiate abc", "Accept": "application/json"}}',
 '{"headers": {"AUTHORIZATION": "[REDACTED]", "x-API-key": "[REDACTED]", "Proxy-Authorization": "[REDACTED]", "Accept": "application/json"}}'),
('cookies both ways',
 '{"request": {"headers": {"Cookie": "sid=abc; theme=dark"}}, "response": {"headers": {"Set-Cookie": ["sid=def; HttpOnly", "x=1"]}}}',
 '{"request": {"headers": {"Cookie": "[REDACTED]"}}, "response": {"headers": {"Set-Cookie": "[REDACTED]"}}}'),
('OAuth token response',
 '{"status": 200, "body": {"access_token": "ya29.a0Af", "refresh_token": "1//0g", "expires_in": 3599, "token_type": "Bearer", "scope": "email"}}',
 '{"status": 200, "body": {"access_token": "[REDACTED]", "refresh_token": "[REDACTED]", "expires_in": 3599, "token_type": "Bearer", "scope": "email"}}'),
('client credentials form',
 '{"body": {"grant_type": "client_credentials", "client_id": "abc", "client_secret": "s3cr3t"}}',
 '{"body": {"grant_type": "client_credentials", "client_id": "abc", "client_secret": "[REDACTED]"}}'),
('password at depth 4',
 '{"body": {"user": {"profile": {"password": "hunter2", "name": "Ann"}}}}',
 '{"body": {"user": {"profile": {"password": "[REDACTED]", "name": "Ann"}}}}'),
('secrets in an array of objects',
 '{"accounts": [{"id": 1, "api_key": "k1"}, {"id": 2, "apiKey": "k2"}, {"id": 3}]}',
 '{"accounts": [{"id": 1, "api_key": "[REDACTED]"}, {"id": 2, "apiKey": "[REDACTED]"}, {"id": 3}]}'),
('a secret whose value is an object',
 '{"credentials": {"private_key": {"kty": "RSA", "d": "xyz"}}, "ok": true}',
 '{"credentials": "[REDACTED]", "ok": true}'),
('a secret whose value is an array',
 '{"tokens": ["a", "b"], "count": 2}',
 '{"tokens": "[REDACTED]", "count": 2}'),
('a secret whose value is a number',
 '{"pin_password": 1234, "n": 5}',
 '{"pin_password": "[REDACTED]", "n": 5}'),
('HAR-style header pairs',
 '{"headers": [{"name": "Authorization", "value": "Token abcdefghij"}, {"name": "X-Api-Key", "value": "plain-key"}, {"name": "Accept", "value": "*/*"}]}',
 '{"headers": [{"name": "Authorization", "value": "[REDACTED]"}, {"name": "X-Api-Key", "value": "[REDACTED]"}, {"name": "Accept", "value": "*/*"}]}'),
('key/value pairs',
 '{"params": [{"key": "client_secret", "value": "zz"}, {"key": "page", "value": "2"}]}',
 '{"params": [{"key": "client_secret", "value": "[REDACTED]"}, {"key": "page", "value": "2"}]}'),
('header pairs as arrays',
 '{"headers": [["Authorization", "Bearer abcdefghijklmnop"], ["Accept", "json"]]}',
 '{"headers": [["Authorization", "[REDACTED]"], ["Accept", "json"]]}'),
('URL with a token in the query',
 '{"url": "https://slack.com/api/chat.postMessage?token=xoxb-1-2-3&channel=C1"}',
 '{"url": "https://slack.com/api/chat.postMessage?token=[REDACTED]&channel=C1"}'),
('URL with several secrets and a fragment',
 '{"url": "https://x.test/cb?code=abc&client_secret=s&api_key=k#frag"}',
 '{"url": "https://x.test/cb?code=abc&client_secret=[REDACTED]&api_key=[REDACTED]#frag"}'),
('URL without secrets',
 '{"url": "https://api.github.com/repos/o/r/issues?state=open&page=3"}',
 '{"url": "https://api.github.com/repos/o/r/issues?state=open&page=3"}'),
('a bearer token inside free text',
 '{"error": {"message": "request with Bearer eyJabc.def.ghi123456 failed"}}',
 '{"error": {"message": "request with Bearer [REDACTED] failed"}}'),
('a JWT in a string',
 '{"body": {"id_token_hint": "x", "note": "jwt=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.sig_nature-1"}}',
 '{"body": {"id_token_hint": "[REDACTED]", "note": "jwt=[REDACTED]"}}'),
('one of our API keys inside a string',
 '{"log": "client sent tk_live_4rulsmyIwo2KIEVVbNG6kr383xSAcYL6x2JftdW4mEe780mjliyDqXndMM1J5pAJKZO76UN3lmu0TSJ2avbaNiN2F8fNF today"}',
 '{"log": "client sent tk_live_[REDACTED] today"}'),
('a test key as a header value',
 '{"headers": {"X-Tenant-Key": "tk_test_0123456789ABCDEFGHIJabcdefghij0123456789"}}',
 '{"headers": {"X-Tenant-Key": "[REDACTED]"}}'),
('non-ASCII around a secret',
 '{"message": "Grüße — Bearer 0123456789abcdef — ok", "name": "Zoë"}',
 '{"message": "Grüße — Bearer [REDACTED] — ok", "name": "Zoë"}'),
('non-ASCII keys',
 '{"données": {"mot_de_passe": "x", "password_confirmation": "x", "名前": "太郎"}}',
 '{"données": {"mot_de_passe": "[REDACTED]", "password_confirmation": "[REDACTED]", "名前": "太郎"}}'),
('snake, kebab and camel case',
 '{"x-auth-token": "a", "authToken": "b", "AUTH_TOKEN": "c", "session-secret": "d"}',
 '{"x-auth-token": "[REDACTED]", "authToken": "[REDACTED]", "AUTH_TOKEN": "[REDACTED]", "session-secret": "[REDACTED]"}'),
('numbers, booleans and nulls untouched',
 '{"status": 204, "ok": true, "retry": null, "ratio": 0.25, "big": 123456789012345678901234567890}',
 '{"status": 204, "ok": true, "retry": null, "ratio": 0.25, "big": 123456789012345678901234567890}'),
('empty objects and arrays',
 '{"headers": {}, "body": [], "query": {"a": []}}',
 '{"headers": {}, "body": [], "query": {"a": []}}'),
('the word token in ordinary text',
 '{"message": "Token expired, please sign in again", "hint": "Basic plan"}',
 '{"message": "Token expired, please sign in again", "hint": "Basic plan"}'),
('Stripe-style webhook',
 '{"headers": {"Stripe-Signature": "t=1,v1=abc"}, "body": {"type": "invoice.paid", "data": {"object": {"customer": "cus_1", "amount_paid": 900}}}}',
 '{"headers": {"Stripe-Signature": "[REDACTED]"}, "body": {"type": "invoice.paid", "data": {"object": {"customer": "cus_1", "amount_paid": 900}}}}'),
('GraphQL variables',
 '{"body": {"query": "mutation { login }", "variables": {"email": "a@b.c", "password": "p", "otp": "123456"}}}',
 '{"body": {"query": "mutation { login }", "variables": {"email": "a@b.c", "password": "[REDACTED]", "otp": "[REDACTED]"}}}'),
('basic auth in a URL query and user info kept',
 '{"url": "https://user@host.test/path?passwd=x;mode=1"}',
 '{"url": "https://user@host.test/path?passwd=[REDACTED];mode=1"}'),
('nested arrays of arrays',
 '{"batch": [[{"secret": 1}], [{"value": "Bearer 0123456789ab"}]]}',
 '{"batch": [[{"secret": "[REDACTED]"}], [{"value": "Bearer [REDACTED]"}]]}'),
('error object',
 '{"error": {"code": "invalid_grant", "description": "refresh_token=abc is invalid", "request": {"refresh_token": "abc"}}}',
 '{"error": {"code": "invalid_grant", "description": "refresh_token=[REDACTED] is invalid", "request": {"refresh_token": "[REDACTED]"}}}'),
('multipart-ish body with an escaped quote',
 '{"body": "name=\"api_key\"; value", "form": {"api_key": "\"quoted\""}}',
 '{"body": "name=\"api_key\"; value", "form": {"api_key": "[REDACTED]"}}');

SELECT cmp_ok((SELECT count(*) FROM corpus), '>=', 30::bigint, 'a corpus of at least 30 payloads');
SELECT is(tenancy.redact(input), expected, format('redact #%s: %s', n, what)) FROM corpus ORDER BY n;
SELECT is((SELECT count(*) FROM corpus WHERE tenancy.redact(tenancy.redact(input)) <> tenancy.redact(input)), 0::bigint,
          'redaction is idempotent');

-- Through log_request: what is stored is the redacted summary, and no secret of the corpus
-- appears anywhere in the table.
SELECT tenancy.set_tenant(:acme, :bob);
SELECT a.id AS action_a, a.integration_id AS integration_a FROM tenancy.actions a WHERE a.tenant_id = :acme LIMIT 1 \gset
SELECT a.id AS action_b, a.integration_id AS integration_b FROM tenancy.actions a WHERE a.tenant_id = :globex LIMIT 1 \gset
CREATE TEMP TABLE logged AS
SELECT c.n, tenancy.log_request(:'integration_a', :'action_a', c.input, c.input, 200, 12, 0, c.input) AS id FROM corpus c;
SELECT is((SELECT count(*) FROM logged l JOIN tenancy.request_logs r ON r.id = l.id JOIN corpus c ON c.n = l.n
           WHERE r.request_summary = c.expected AND r.response_summary = c.expected AND r.error = c.expected), (SELECT count(*) FROM corpus),
          'every summary is stored exactly as redacted');
SELECT is((SELECT count(*) FROM tenancy.request_logs r
           WHERE r.request_summary::text || r.response_summary::text || r.error::text
                 ~ '(xoxb-1234567890|dXNlcjpwYXNz|ya29|hunter2|s3cr3t|1//0g|plain-key|abcdefghijklmnop|xoxb-1-2-3|4rulsmyIwo2|0123456789ABCDEFGHIJ|eyJhbGciOiJIUzI1NiJ9|sid=abc|"k1"|"k2")'),
          0::bigint, 'no secret of the corpus is anywhere in the table');
SELECT is((SELECT api_key_id FROM tenancy.request_logs WHERE id = (SELECT id FROM logged LIMIT 1)), NULL::uuid, 'no API key in a user''s context');

-- Caps: past tenancy.log_summary_max_bytes the rest is cut, a long string keeps its start, and
-- the root says what happened.
SET LOCAL tenancy.log_summary_max_bytes = 1024;
SELECT ok(length(tenancy.redact(jsonb_build_object('body', repeat('x', 10 * 1024 * 1024)))::text) < 1200, 'a 10 MB string is cut to the cap');
SELECT ok((SELECT b ~ '^(lorem ipsum ?)+…\[cut\]$' AND length(b) > 900 FROM (SELECT tenancy.redact(jsonb_build_object('body', repeat('lorem ipsum ', 500))) ->> 'body' AS b) s),
          'and keeps its start, in whole words');
-- A word cut in half could be half a secret that no detector recognises any more: the word at
-- the cut goes entirely (here the whole value is one 5,000-byte word).
SELECT is(tenancy.redact(jsonb_build_object('body', repeat('x', 5000))) ? 'body', false,
          'a single word longer than what is left is left out, not cut');
SELECT is(tenancy.redact(jsonb_build_object('body', repeat('word ', 190) || 'Bearer ' || repeat('s', 100))) ->> 'body',
          repeat('word ', 190) || 'Bearer…[cut]', 'a credential at the cut is left out whole');
SELECT matches(tenancy.redact(jsonb_build_object('body', repeat('x', 5000))) ->> '_truncated',
               '^cut at 1024 bytes \(tenancy.log_summary_max_bytes\); the input had [0-9]+ bytes$', 'the root says it was cut');
SELECT is((SELECT count(*) FROM jsonb_object_keys(tenancy.redact((SELECT jsonb_object_agg('k' || g, g) FROM generate_series(1, 5000) g))))::int < 200,
          true, 'an object of 5000 keys is cut');
SELECT is(jsonb_typeof(tenancy.redact((SELECT jsonb_build_object('list', jsonb_agg(g)) FROM generate_series(1, 100000) g)) -> 'list'), 'array',
          'a long array is cut, still an array');
RESET tenancy.log_summary_max_bytes;
SELECT is(pg_temp.probe('authenticated', :acme, :bob, 'SET LOCAL tenancy.log_summary_max_bytes = 100000000'), 'error:42501',
          'an application role cannot change the cap');
SELECT is(pg_temp.probe('authenticated', :acme, :bob, 'SET LOCAL tenancy.redact_keys = ''x'''), 'error:42501',
          'nor the redaction list');
SET LOCAL tenancy.redact_keys = 'ssn, Customer-Id';
SELECT is(tenancy.redact('{"user_ssn": "1", "customer_id": 7, "id": 8}'), '{"user_ssn": "[REDACTED]", "customer_id": "[REDACTED]", "id": 8}',
          'tenancy.redact_keys adds keys (case and - vs _ do not matter)');
RESET tenancy.redact_keys;

-- Explained: each value cut out, where, and by which rule.
SELECT is(tenancy.redact('{"headers": {"X-Api-Key": "abc"}, "error": "upstream said: invalid key sk_live_51H8abcdefghijklmnop", "ok": 1}', true),
          '{"redacted": {"ok": 1, "error": "upstream said: invalid key sk_live_[REDACTED]", "headers": {"X-Api-Key": "[REDACTED]"}},
            "redactions": [{"path": "$.error", "rule": "stripe-secret-key", "at": 35, "length": 20},
                           {"path": "$.headers.\"X-Api-Key\"", "rule": "name-secret"}]}'::jsonb,
          'redact(doc, explain => true): the path, the rule and, inside a string, where and how long (in characters)');
SELECT is(tenancy.redact('{"a": "nothing here"}', explain => true), '{"redacted": {"a": "nothing here"}, "redactions": []}',
          'nothing cut, nothing listed');
SELECT is(tenancy.redact('{"a": "DATADOG_APP ||= ab12cd34ef56gh78ij90"}', false), tenancy.redact('{"a": "DATADOG_APP ||= ab12cd34ef56gh78ij90"}'),
          'explain => false is redact(doc)');
SELECT is(tenancy.redact('{"a": "DATADOG_APP ||= ab12cd34ef56gh78ij90"}', true) -> 'redactions' -> 0 ->> 'rule', 'name-provider',
          'a provider''s name before a looser assignment is name-provider');
SELECT ok((SELECT count(*) FROM tenancy.redaction_rules()) >= 160, 'redaction_rules() lists every rule');
SELECT is((SELECT count(*) FROM (SELECT rule FROM tenancy.redaction_rules() GROUP BY rule HAVING count(*) > 1) d), 0::bigint, 'rule ids are unique');
SELECT results_eq($$SELECT kind, count(*) > 0 FROM tenancy.redaction_rules() GROUP BY kind ORDER BY kind$$,
                  $$VALUES ('built-in', true), ('name', true), ('opt-in', true), ('provider', true)$$, 'four kinds of rule');
SELECT is((SELECT enabled FROM tenancy.redaction_rules() WHERE rule = 'pii-card-number'), false, 'card numbers are opt-in');
SET LOCAL tenancy.redact_disabled_rules = 'stripe-secret-key, name-provider';
SET LOCAL tenancy.redact_enabled_rules = 'pii-card-number';
SELECT results_eq($$SELECT rule, enabled FROM tenancy.redaction_rules() WHERE rule IN ('stripe-secret-key', 'name-provider', 'pii-card-number', 'github-pat') ORDER BY rule$$,
                  $$VALUES ('github-pat', true), ('name-provider', false), ('pii-card-number', true), ('stripe-secret-key', false)$$,
                  'the settings turn rules off and opt-in rules on, and redaction_rules() says so');
SELECT is(tenancy.redact('{"a": "key sk_live_51H8abcdefghijklmnop", "b": "DATADOG_APP ||= ab12cd34ef56gh78ij90", "c": "card 4242 4242 4242 4242"}'),
          '{"a": "key sk_live_51H8abcdefghijklmnop", "b": "DATADOG_APP ||= ab12cd34ef56gh78ij90", "c": "card [REDACTED]"}',
          'a rule turned off cuts nothing; an opt-in rule turned on does');
RESET tenancy.redact_disabled_rules;
RESET tenancy.redact_enabled_rules;
SELECT is(pg_temp.probe('authenticated', :acme, :bob, 'SET LOCAL tenancy.redact_disabled_rules = ''jwt'''), 'error:42501',
          'an application role cannot turn a rule off');
SELECT is(pg_temp.probe('authenticated', :acme, :bob, $$SELECT tenancy.redact('{"password": "x"}', true) -> 'redactions' -> 0 ->> 'rule'$$), 'value:name-password',
          'authenticated may ask why');
SELECT is(pg_temp.probe('authenticated', :acme, :bob, 'SELECT count(*) > 100 FROM tenancy.redaction_rules()'), 'value:true',
          'and list the rules');
SELECT is(pg_temp.probe('anon', NULL, NULL, 'SELECT count(*) FROM tenancy.redaction_rules()'), 'error:42501', 'anon may not');
SELECT is(tenancy.redact('{"grants": {"ghp_0123456789abcdefghijABCDEFGHIJ012345": {"scopes": ["repo"]}, "page": 1}}'),
          '{"grants": {"ghp_[REDACTED]": {"scopes": ["repo"]}, "page": 1}}', 'a key that is a token is cut too');
SELECT is(tenancy.redact('{"grants": {"ghp_0123456789abcdefghijABCDEFGHIJ012345": 1}}', true) -> 'redactions',
          '[{"path": "$.grants.\"ghp_[REDACTED]\" (the key)", "rule": "github-pat", "at": 4, "length": 36}]', 'and explained as a key');
SELECT is(tenancy.redact('{"url": "https://a.test/login?next=https%3A%2F%2Fapp.test%2Fcb%3Faccess_token%3Dabc123xyz789%26state%3D1"}'),
          '{"url": "https://a.test/login?next=https%3A%2F%2Fapp.test%2Fcb%3Faccess_token%3D[REDACTED]%26state%3D1"}',
          'a secret in a percent-encoded URL is cut, the URL stays encoded');
SELECT is(tenancy.redact('{"ghp_0123456789abcdefghijABCDEFGHIJ012345": "u1", "ghp_9876543210abcdefghijABCDEFGHIJ012345": "u2"}'),
          '{"ghp_[REDACTED]": "u1", "ghp_[REDACTED]#2": "u2"}', 'two keys cut alike stay two keys: no value is lost');
SET LOCAL tenancy.log_summary_max_bytes = '1MB';
SELECT is((SELECT jsonb_array_length(r -> 'redactions') || ' ' || (r ->> 'redactions_cut')
           FROM (SELECT tenancy.redact((SELECT jsonb_object_agg('password' || g, 'x') FROM generate_series(1, 1500) g), true) AS r) s),
          '1000 only the first 1000 are listed', 'explain lists at most 1,000 redactions, and says so');
RESET tenancy.log_summary_max_bytes;

-- Deep nesting: 1,000 levels are no problem (no recursion); a 10 MB payload is capped.
SELECT is(tenancy.redact((repeat('{"a":', 1000) || '{"password": 1}' || repeat('}', 1000))::jsonb) #>> (ARRAY(SELECT 'a' FROM generate_series(1, 1000)) || 'password'::text),
          '[REDACTED]', 'a secret 1,000 levels deep is redacted');
SELECT lives_ok(format('SELECT tenancy.log_request(%L, %L, jsonb_build_object(''body'', repeat(''y'', 10 * 1024 * 1024)))', :'integration_a', :'action_a'),
                'a 10 MB payload is logged (capped)');
SELECT ok((SELECT pg_column_size(request_summary) FROM tenancy.request_logs ORDER BY created_at DESC, pg_column_size(request_summary) DESC LIMIT 1) < 20000,
          'and what is stored is capped');

-- Bad input: clear errors.
SELECT is(pg_temp.error_text(format('SELECT tenancy.log_request(%L, %L, NULL)', :'integration_a', :'action_a')), '22004: request must not be NULL', 'NULL request');
SELECT is(pg_temp.error_text(format('SELECT tenancy.log_request(NULL, %L, ''{}'')', :'action_a')), '22004: integration_id must not be NULL', 'NULL integration');
SELECT is(pg_temp.error_text(format('SELECT tenancy.log_request(%L, %L, ''[1]'')', :'integration_a', :'action_a')), '22023: request must be a JSON object', 'request not an object');
SELECT is(pg_temp.error_text(format('SELECT tenancy.log_request(%L, %L, ''{}'', ''"x"'')', :'integration_a', :'action_a')), '22023: response must be a JSON object (or NULL)', 'response not an object');
SELECT matches(pg_temp.error_text(format('SELECT tenancy.log_request(%L, %L, ''{}'', status_code => 99)', :'integration_a', :'action_a')), '^22023: status_code', 'status 99');
SELECT matches(pg_temp.error_text(format('SELECT tenancy.log_request(%L, %L, ''{}'', latency_ms => -1)', :'integration_a', :'action_a')), '^22023: ', 'negative latency');
SELECT matches(pg_temp.error_text(format('SELECT tenancy.log_request(%L, %L, ''{}'')', :'integration_b', :'action_b')),
               '^23503: .*"request_logs_action_fkey"', 'another tenant''s action and integration');
SELECT matches(pg_temp.error_text(format('SELECT tenancy.log_request(%L, %L, ''{}'')', :'integration_b', :'action_a')),
               '^23503: .*"request_logs_action_fkey"', 'another tenant''s integration');
INSERT INTO tenancy.integrations (tenant_id, id, name, slug, auth_type) VALUES (:acme, 'a1000000-0000-4000-8000-00000000ffff', 'Other', 'other', 'oauth2');
SELECT matches(pg_temp.error_text(format('SELECT tenancy.log_request(%L, %L, ''{}'')', 'a1000000-0000-4000-8000-00000000ffff', :'action_a')),
               '^23503: .*"request_logs_action_fkey"', 'an action of another integration of the same tenant');
SELECT throws_ok(format($$INSERT INTO tenancy.request_logs (tenant_id, integration_id, action_id, request_summary) VALUES (%L, %L, %L, '{}')$$,
                        :acme, 'a1000000-0000-4000-8000-00000000ffff', :'action_a'),
                 '23503', NULL, 'the schema refuses it for every writer (here the table owner), not only log_request');
-- One door: no application role writes request_logs except through log_request (redaction, the
-- context's tenant and API key, created_at = now()).
SELECT is(pg_temp.probe(r.role, :acme, :alice,
          format($$INSERT INTO tenancy.request_logs (tenant_id, integration_id, action_id, request_summary, created_at)
                   VALUES (%L, %L, %L, '{"authorization": "Bearer 0123456789abcdef"}', '2100-01-01')$$,
                 :acme, :'integration_a', :'action_a')),
          'error:42501', r.role || ' cannot insert into request_logs directly (no redaction, any date)')
  FROM unnest(ARRAY['authenticated', 'service_role', 'anon']) r(role);
SELECT is(pg_temp.probe('authenticated', NULL, NULL, format('SELECT tenancy.log_request(%L, %L, ''{}'')', :'integration_a', :'action_a')),
          'error:42501', 'no context, no log');

-- Who may log: the tenant's writers and service_role; not a client; not anon.
SELECT is(pg_temp.probe('authenticated', :acme, :dave, format('SELECT tenancy.log_request(%L, %L, ''{}'') IS NOT NULL', :'integration_a', :'action_a')),
          'value:true', 'a member logs');
SELECT is(pg_temp.probe('authenticated', :acme, :erin, format('SELECT tenancy.log_request(%L, %L, ''{}'')', :'integration_a', :'action_a')),
          'error:42501', 'a client does not');
SELECT is(pg_temp.probe('service_role', :acme, NULL, format('SELECT tenancy.log_request(%L, %L, ''{}'') IS NOT NULL', :'integration_a', :'action_a')),
          'value:true', 'service_role logs');
SELECT is(pg_temp.probe('anon', NULL, NULL, format('SELECT tenancy.log_request(%L, %L, ''{}'')', :'integration_a', :'action_a')),
          'error:42501', 'anon may not call it');
SELECT is(pg_temp.probe('authenticated', :acme, :bob, 'UPDATE tenancy.request_logs SET status_code = 500'), 'error:42501', 'logs cannot be updated');
SELECT is(pg_temp.probe('authenticated', :acme, :bob, 'DELETE FROM tenancy.request_logs'), 'error:42501', 'nor deleted');

-- Logged with an API key: the key is recorded.
SELECT tenancy.clear_context();
SELECT tenancy.set_tenant(:acme);
SELECT tenancy.create_api_key('logger') AS logger_key \gset
SELECT tenancy.clear_context();
SELECT tenancy.authenticate(:'logger_key') IS NOT NULL;
SELECT tenancy.log_request(:'integration_a', :'action_a', '{"via": "key"}') AS key_log \gset
SELECT is((SELECT api_key_id FROM tenancy.request_logs WHERE id = :'key_log'), tenancy.current_api_key_id(), 'the API key is recorded with the log');

-- Partition maintenance over a simulated 90 days.  Rows with explicit times (as superuser, into the
-- parent: they land in the default partition), then maintenance "on" day 90.
SELECT tenancy.clear_context();
DELETE FROM tenancy.request_logs;
INSERT INTO tenancy.request_logs (tenant_id, integration_id, action_id, request_summary, status_code, latency_ms, created_at)
SELECT :acme, :'integration_a', :'action_a', jsonb_build_object('day', d, 'i', i), CASE WHEN i % 10 = 0 THEN 500 ELSE 200 END, i,
       timestamptz '2026-01-01 00:00:00+00' + d * interval '1 day' + i * interval '7 minutes'
FROM generate_series(0, 89) d, generate_series(1, 20) i;
SELECT is((SELECT count(*) FROM tenancy_private.request_logs_default), 1800::bigint, '90 days x 20 rows, all in the default partition');
CREATE TEMP TABLE per_day AS
SELECT (created_at AT TIME ZONE 'UTC')::date AS day, count(*) AS n, sum(latency_ms) AS s FROM tenancy.request_logs GROUP BY 1;

SELECT tenancy.maintain_request_logs('30 days', 7, timestamptz '2026-03-31 12:00:00+00') AS report \gset
SELECT is((:'report'::jsonb ->> 'deleted_from_default')::int, 59 * 20, 'rows older than 30 days are deleted from the default partition');
SELECT is(jsonb_array_length(:'report'::jsonb -> 'created'), 7, 'the next 7 days are created ahead (today''s came from the default partition)');
SELECT is((SELECT count(*) FROM tenancy_private.request_logs_default), 0::bigint, 'the default partition is empty');
SELECT is((SELECT count(*) FROM pg_inherits WHERE inhparent = 'tenancy.request_logs'::regclass), (31 + 7 + 1)::bigint,
          '31 days of data, 7 ahead, and the default partition');
SELECT is((SELECT count(*) FROM per_day p
           JOIN (SELECT (created_at AT TIME ZONE 'UTC')::date AS day, count(*) AS n, sum(latency_ms) AS s FROM tenancy.request_logs GROUP BY 1) q USING (day)
           WHERE p.n = q.n AND p.s = q.s AND p.day >= date '2026-03-01'), 31::bigint, 'no row of a retained day is lost');
SELECT is((SELECT count(*) FROM tenancy_private.request_logs_p20260315), 20::bigint, 'each day''s rows are in its own partition');
SELECT is((SELECT array_agg(i.inhrelid::regclass::text) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent = 'tenancy.request_logs'::regclass AND c.relnamespace <> 'tenancy_private'::regnamespace),
          NULL, 'every partition is in tenancy_private: applications and code generators see request_logs only');
SELECT is((SELECT count(*) FROM pg_inherits i
            WHERE i.inhparent = 'tenancy.request_logs'::regclass
              AND EXISTS (SELECT FROM pg_index x WHERE x.indrelid = i.inhrelid AND x.indisprimary
                             AND pg_get_indexdef(x.indexrelid) LIKE '% USING btree (tenant_id, created_at, id)')
              AND EXISTS (SELECT FROM pg_index x WHERE x.indrelid = i.inhrelid
                             AND pg_get_indexdef(x.indexrelid) LIKE '% USING btree (tenant_id, integration_id, created_at DESC)')),
          (31 + 7 + 1)::bigint, 'every partition, moved, made ahead or default, has the key and the per-integration index');
-- A partition past the retention that something outside the extension depends on is skipped and
-- reported, not a failed run.  (In a savepoint: the other old days are dropped meanwhile.)
SAVEPOINT dependent_partition;
CREATE VIEW public.keeps_a_partition AS SELECT * FROM tenancy_private.request_logs_p20260315;
SELECT is(tenancy.maintain_request_logs('10 days', 0, timestamptz '2026-03-31 12:00:00+00') -> 'skipped',
          '["drop request_logs_p20260315 (other objects depend on it)"]'::jsonb,
          'a partition other objects depend on is skipped, and said so');
ROLLBACK TO SAVEPOINT dependent_partition;
SELECT is(tenancy.maintain_request_logs('30 days', 7, timestamptz '2026-03-31 12:00:00+00'),
          '{"created": [], "dropped": [], "moved_from_default": {}, "deleted_from_default": 0, "skipped": []}'::jsonb, 'a second run changes nothing');

-- Ten days later: exactly the ten oldest partitions go.
SELECT tenancy.maintain_request_logs('30 days', 7, timestamptz '2026-04-10 12:00:00+00') AS report2 \gset
SELECT is((SELECT array_agg(x ORDER BY x) FROM jsonb_array_elements_text(:'report2'::jsonb -> 'dropped') x),
          (SELECT array_agg('request_logs_p' || to_char(d, 'YYYYMMDD') ORDER BY 1) FROM generate_series(date '2026-03-01', date '2026-03-10', '1 day') d),
          'retention drops exactly the partitions older than 30 days');
SELECT is((SELECT count(*) FROM tenancy.request_logs), (21 * 20)::bigint, 'and every row of the retained days is still there');
SELECT is((SELECT min(created_at) >= timestamptz '2026-03-11 00:00:00+00' FROM tenancy.request_logs), true, 'none older');
-- A restored dump recreates the daily partitions with their row types open: maintenance closes them.
GRANT USAGE ON TYPE tenancy_private.request_logs_p20260401 TO PUBLIC;
SELECT lives_ok($$SELECT tenancy.maintain_request_logs('30 days', 7, timestamptz '2026-04-10 12:00:00+00')$$, 'maintenance');
SELECT ok(NOT has_type_privilege('authenticated', 'tenancy_private.request_logs_p20260401', 'USAGE'),
          'every partition''s row type is closed again by maintenance');
-- A closed row type is left as it is (no catalog write per partition per run), and the caller's
-- lock_timeout is what it was.
SELECT ctid AS type_row FROM pg_type WHERE oid = (SELECT reltype FROM pg_class WHERE oid = 'tenancy_private.request_logs_p20260405'::regclass) \gset
SET LOCAL lock_timeout = '7s';
SELECT lives_ok($$SELECT tenancy.maintain_request_logs('30 days', 7, timestamptz '2026-04-10 12:00:00+00', lock_wait => '200 ms')$$, 'maintenance again');
SELECT is((SELECT ctid FROM pg_type WHERE oid = (SELECT reltype FROM pg_class WHERE oid = 'tenancy_private.request_logs_p20260405'::regclass)),
          :'type_row'::tid, 'a closed row type is not rewritten');
SELECT is(current_setting('lock_timeout'), '7s', 'maintenance leaves the caller''s lock_timeout as it was');
INSERT INTO tenancy.request_logs (tenant_id, integration_id, action_id, request_summary, created_at)
VALUES (:acme, :'integration_a', :'action_a', '{"late": true}', timestamptz '2027-01-01 00:00:00+00');
SELECT is((SELECT count(*) FROM tenancy_private.request_logs_default), 1::bigint, 'a row with no partition yet goes to the default partition');
SELECT is(pg_temp.probe('authenticated', :acme, :bob, 'SELECT count(*) FROM tenancy_private.request_logs_p20260320'), 'error:42501',
          'a partition is not readable directly by application roles');
SELECT is(pg_temp.probe('service_role', NULL, NULL, 'SELECT count(*) FROM tenancy_private.request_logs_p20260320'), 'error:42501', 'not even service_role');
SELECT is((SELECT relforcerowsecurity FROM pg_class WHERE oid = 'tenancy_private.request_logs_p20260320'::regclass), true, 'and it forces RLS');
SELECT is(pg_temp.probe('authenticated', :acme, :bob, 'SELECT count(*) FROM tenancy.request_logs WHERE created_at < ''2026-04-01'''), 'value:420',
          'through the parent, the tenant reads its logs');
SELECT is(pg_temp.probe('authenticated', :acme, :bob, format('SELECT tenancy.maintain_request_logs(%L)', '1 day')), 'error:42501',
          'maintenance is not for application roles');
SELECT matches(pg_temp.error_text('SELECT tenancy.maintain_request_logs(''-1 day'')'), '^22023: ', 'a negative retention is refused');

-- request_stats: per integration and action; counts, error rate, percentiles.
SELECT tenancy.set_tenant(:acme, :bob);
SELECT results_eq($$SELECT requests, errors, error_rate, p50_ms, p95_ms, p99_ms FROM tenancy.request_stats('2026-03-20', '2026-03-21')$$,
                  $$VALUES (20::bigint, 2::bigint, 0.1::double precision, 10.5::double precision, 19.05::double precision, 19.81::double precision)$$,
                  'request_stats: 20 requests, 2 errors, latency percentiles of 1..20 ms');
SELECT is(pg_temp.probe('authenticated', :globex, :frank, $$SELECT count(*) FROM tenancy.request_stats('2026-01-01', '2027-01-01')$$), 'value:0',
          'another tenant sees none of it');

SELECT * FROM finish();
ROLLBACK;

-- Actions: JSON Schema (tenancy.jsonschema_*, validate/check_action_*) and field mappings
-- (tenancy.apply_field_mappings), src/actions/.  The official JSON-Schema-Test-Suite runs in
-- pgrx-tests/tests/jsonschema_suite.rs.
BEGIN;
\ir helpers.psql
SELECT * FROM no_plan();
-- acme's "Send message" (input: channel and text required) and globex's.
\set send '''a1000001-0000-4000-8000-000000000201'''
\set globex_send '''b1000001-0000-4000-8000-000000000201'''
\set slack '''a1000000-0000-4000-8000-000000000101'''
\set act '''a1000009-0000-4000-8000-000000000201'''

-- ---------------------------------------------------------------------------------------------
-- The JSON Schema functions (pg_jsonschema's names and argument order)
-- ---------------------------------------------------------------------------------------------
SELECT ok(tenancy.jsonschema_is_valid('{"type": "object"}'), 'a schema');
SELECT ok(NOT tenancy.jsonschema_is_valid('{"type": "objekt"}'), 'a type that is none');
SELECT ok(NOT tenancy.jsonschema_is_valid('{"properties": {"a": {"minLength": -1}}}'), 'a keyword''s value against its meta-schema');
SELECT ok(tenancy.jsonschema_is_valid('{"$schema": "http://json-schema.org/draft-04/schema#", "exclusiveMaximum": true, "maximum": 3}'),
          'draft 4 by $schema (a boolean exclusiveMaximum)');
SELECT ok(NOT tenancy.jsonschema_is_valid('{"exclusiveMaximum": true}'), 'the same keyword is a number in 2020-12 (the default)');
SELECT ok(NOT tenancy.jsonschema_is_valid('{"$schema": "https://example.com/my-meta"}'), 'an unknown draft');
SELECT ok(NOT tenancy.jsonschema_is_valid('{"$ref": "https://example.com/schema.json"}'), 'no remote references');
SELECT ok(tenancy.jsonschema_is_valid('{"$defs": {"a": {"type": "string"}}, "$ref": "#/$defs/a"}'), 'references inside the schema');
SELECT ok(tenancy.jsonb_matches_schema('{"type": "object", "required": ["a"]}', '{"a": 1}'), 'matches');
SELECT ok(NOT tenancy.jsonb_matches_schema('{"type": "object", "required": ["a"]}', '{"b": 1}'), 'does not match');
SELECT ok(tenancy.jsonb_matches_schema('{"type": "integer"}', '12'), 'a scalar instance');
SELECT ok(NOT tenancy.jsonb_matches_schema('{"maximum": 100}', '12345678901234567890123456789'), 'numbers beyond 64 bits compare');
SELECT ok(tenancy.jsonb_matches_schema('{"multipleOf": 0.01}', '19.99'), 'decimal multiples exactly');
SELECT throws_ok($$SELECT tenancy.jsonb_matches_schema('{"type": "objekt"}', '{}')$$, '22023', NULL, 'an invalid schema is an error, not false');
SELECT is(tenancy.jsonschema_validation_errors('{"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["a"]}',
                                               '{"n": "secret-value-42"}'),
          '[{"keyword": "required", "message": "\"a\" is a required property", "schema_path": "/required", "instance_path": ""},
            {"keyword": "type", "message": "value is not of type \"integer\"", "schema_path": "/properties/n/type", "instance_path": "/n"}]'::jsonb,
          'every error with its instance path, schema path and keyword');
SELECT ok(tenancy.jsonschema_validation_errors('{"properties": {"n": {"type": "integer"}}}', '{"n": "secret-value-42"}')::text
          NOT LIKE '%secret-value-42%', 'messages never quote the instance');
SELECT is(tenancy.jsonschema_validation_errors('{"type": "object"}', '{}'), '[]'::jsonb, 'no errors: an empty array');
-- Patterns use the regex crate (linear time): a pattern that backtracks exponentially in other
-- engines answers at once.
SELECT ok(NOT tenancy.jsonb_matches_schema('{"pattern": "^(a+)+$"}', to_jsonb(repeat('a', 5000) || '!')), 'no catastrophic backtracking');
SELECT ok(NOT tenancy.jsonschema_is_valid('{"pattern": "(?<=a)b"}'), 'a pattern the linear engine cannot run is refused when compiled');
-- A schema whose references fan out (two a level) is refused before compiling.
SELECT ok(NOT tenancy.jsonschema_is_valid(
    (SELECT jsonb_build_object('$ref', '#/$defs/a0', '$defs',
             jsonb_object_agg('a' || i, CASE WHEN i = 40 THEN '{"type": "string"}'::jsonb
                                   ELSE jsonb_build_object('anyOf', jsonb_build_array(jsonb_build_object('$ref', '#/$defs/a' || (i + 1)),
                                                                                     jsonb_build_object('allOf', jsonb_build_array(jsonb_build_object('$ref', '#/$defs/a' || (i + 1))))))
                              END))
       FROM generate_series(0, 40) i)), 'references that expand past 20,000 subschemas');

-- Recursion is bounded: an instance nested as deep as jsonb allows, under a schema that refers to
-- itself, is a clean 54001 (PostgreSQL's stack check on every node; it once crashed the server),
-- and a schema or transform config nested past 128 levels is refused when read.
SELECT throws_ok($$SELECT tenancy.jsonb_matches_schema('{"items": {"$ref": "#"}}', (repeat('[', 12000) || repeat(']', 12000))::jsonb)$$,
                 '54001', NULL, 'a deep instance: stack depth limit exceeded, not a crash');
SELECT ok(tenancy.jsonb_matches_schema('{"items": {"$ref": "#"}}', (repeat('[', 50) || repeat(']', 50))::jsonb), 'a nested instance of ordinary depth');
SELECT ok(NOT tenancy.jsonschema_is_valid((repeat('{"items": ', 200) || '{}' || repeat('}', 200))::jsonb), 'a schema nested 200 levels');
SELECT ok(tenancy.jsonschema_is_valid((repeat('{"items": ', 100) || '{}' || repeat('}', 100))::jsonb), 'one nested 100 levels');

-- Found by the review of this change, each once a crash or a stall past statement_timeout:
-- a chain of 4,000 references (the expansion walk overflowed the stack: now a depth bound),
SELECT ok(NOT tenancy.jsonschema_is_valid(jsonb_build_object('$ref', '#/$defs/a0', '$defs',
    (SELECT jsonb_object_agg('a' || i, jsonb_build_object('$ref', '#/$defs/a' || (i + 1))) FROM generate_series(0, 3999) i)
    || '{"a4000": {"type": "string"}}')), 'a chain of 4,000 references is refused, not a crash');
SELECT ok(tenancy.jsonschema_is_valid(jsonb_build_object('$ref', '#/$defs/a0', '$defs',
    (SELECT jsonb_object_agg('a' || i, jsonb_build_object('$ref', '#/$defs/a' || (i + 1))) FROM generate_series(0, 99) i)
    || '{"a100": {"type": "string"}}')), 'a chain of 100 is a schema');
-- many regular expressions (compiling one cannot be interrupted: a count and a size bound),
SELECT ok(NOT tenancy.jsonschema_is_valid(jsonb_build_object('allOf',
    (SELECT jsonb_agg(jsonb_build_object('pattern', '^a' || i || '$')) FROM generate_series(1, 65) i))), '65 distinct patterns are refused');
SELECT ok(tenancy.jsonschema_is_valid(jsonb_build_object('allOf',
    (SELECT jsonb_agg(jsonb_build_object('pattern', '^a' || i || '$')) FROM generate_series(1, 64) i))), '64 are a schema');
SELECT ok(NOT tenancy.jsonschema_is_valid('{"pattern": "(\\p{L}{100}){100}"}'), 'a pattern that compiles past 1 MB is refused');
SELECT ok(tenancy.jsonschema_is_valid('{"pattern": "^[\\p{L} ]{1,100}$"}'), 'a Unicode class repeated a hundred times compiles');
-- a resource of another draft inside the schema (its keywords escaped these bounds: a draft-4
-- chain under dependencies crashed the server), long strings under patterns (a match cannot be
-- interrupted),
SELECT ok(NOT tenancy.jsonschema_is_valid(jsonb_build_object('properties', jsonb_build_object('a',
    jsonb_build_object('$schema', 'http://json-schema.org/draft-04/schema#', 'id', 'urn:y', 'dependencies',
      (SELECT jsonb_object_agg('a' || i, jsonb_build_object('$ref', '#/dependencies/a' || (i + 1))) FROM generate_series(0, 300) i),
      'allOf', '[{"$ref": "#/dependencies/a0"}]'::jsonb)))), 'a resource of another draft inside is refused');
SELECT ok(tenancy.jsonschema_is_valid('{"$defs": {"x": {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "string"}}}'),
          'one of the same draft is a schema');
SELECT throws_ok($$SELECT tenancy.jsonb_matches_schema('{"pattern": "^a"}', to_jsonb(repeat('a', 1048577)))$$, '54000', NULL,
                 'a string over 1 MB under a pattern');
SELECT ok(tenancy.jsonb_matches_schema('{"pattern": "^a"}', to_jsonb(repeat('a', 1048576))), 'one of 1 MB is matched');
SELECT ok(tenancy.jsonb_matches_schema('{"maxLength": 3000000}', to_jsonb(repeat('a', 2000000))), 'without patterns, strings are not bounded');
-- every error of a large product of schema and document (collected before any is returned),
SELECT throws_ok($$SELECT tenancy.jsonschema_validation_errors(
    jsonb_build_object('items', jsonb_build_object('allOf', (SELECT jsonb_agg(jsonb_build_object('type', 'string', 'description', i::text)) FROM generate_series(1, 10000) i))),
    (SELECT jsonb_agg(i) FROM generate_series(1, 1000) i))$$, '54000', NULL, 'listing ten million errors stops at its budget');
SELECT is(jsonb_array_length(tenancy.jsonschema_validation_errors(
    (SELECT jsonb_build_object('allOf', jsonb_agg(jsonb_build_object('pattern', '^x' || i))) FROM generate_series(1, 40) i),
    to_jsonb(repeat('ab', 500000)))), 40, 'errors over a 1 MB string keep no copy of it (40 copies would pass the 32 MB budget)');
-- and names of properties, which may be secrets, are never shown.
SELECT ok(tenancy.jsonschema_validation_errors('{"propertyNames": {"maxLength": 3}}', '{"sk_live_4eC39HqLyjWDarjtT1zdp7dc": 1}')::text
          NOT LIKE '%sk_live%', 'propertyNames errors do not quote the name');
SELECT ok(tenancy.jsonschema_validation_errors('{"additionalProperties": false, "unevaluatedProperties": false}', '{"sk_live_4eC39HqLyjWDarjtT1zdp7dc": 1}')::text
          NOT LIKE '%sk_live%', 'nor additionalProperties or unevaluatedProperties errors');

-- Validation is interruptible: a costly schema over a large instance stops at statement_timeout,
-- while it runs (in less than half the time the whole validation takes), not after it.
CREATE TEMP TABLE costly AS
SELECT jsonb_build_object('items', jsonb_build_object('allOf', (SELECT jsonb_agg('{"not": {"type": "string"}}'::jsonb) FROM generate_series(1, 200)))) AS schema,
       (SELECT jsonb_agg(i) FROM generate_series(1, 150000) i) AS doc;
SELECT clock_timestamp() AS started \gset
SELECT tenancy.jsonb_matches_schema(schema, doc) FROM costly;
SELECT extract(epoch FROM clock_timestamp() - :'started'::timestamptz) AS whole \gset
-- (pgTAP's throws_ok cannot catch a cancel: WHEN OTHERS does not.)
CREATE FUNCTION pg_temp.cancelled(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE stmt;
    RETURN 'finished';
EXCEPTION WHEN query_canceled THEN
    RETURN SQLSTATE;
END
$$;
SELECT clock_timestamp() AS started \gset
SET LOCAL statement_timeout = '100ms';
SELECT pg_temp.cancelled('SELECT tenancy.jsonb_matches_schema(schema, doc) FROM costly') AS validation_cancelled \gset
RESET statement_timeout;
SELECT extract(epoch FROM clock_timestamp() - :'started'::timestamptz) AS until_cancelled \gset
SELECT is(:'validation_cancelled'::text, '57014', 'validation stops at statement_timeout');
SELECT cmp_ok(:until_cancelled::numeric, '<', :whole::numeric / 2, 'while it runs, not after it');

-- ---------------------------------------------------------------------------------------------
-- Actions' schemas are schemas
-- ---------------------------------------------------------------------------------------------
SELECT throws_ok(format($$INSERT INTO tenancy.actions (tenant_id, integration_id, name, slug, http_method, endpoint_template, input_schema)
                          VALUES (%L, %L, 'x', 'bad-schema', 'GET', '/x', '{"type": "objekt"}')$$, :acme, :slack),
                 '23514', NULL, 'an input_schema that is not a schema');
SELECT throws_like(format($$INSERT INTO tenancy.actions (tenant_id, integration_id, name, slug, http_method, endpoint_template, output_schema)
                            VALUES (%L, %L, 'x', 'bad-schema', 'GET', '/x', '{"properties": {"a": {"minLength": -1}}}')$$, :acme, :slack),
                   'output_schema is not a valid JSON Schema: minimum at /properties/a/minLength%', 'the message names the keyword and where it is');
SELECT throws_ok(format($$UPDATE tenancy.actions SET input_schema = '{"required": "a"}' WHERE id = %L$$, :send),
                 '23514', NULL, 'an update is checked too');

-- ---------------------------------------------------------------------------------------------
-- validate_action_* / check_action_*: read as the caller reads the action
-- ---------------------------------------------------------------------------------------------
SELECT is(pg_temp.probe('authenticated', :acme, :dave, format($$SELECT tenancy.validate_action_input(%L, '{"channel": "C1", "text": "hi"}')$$, :send)),
          'value:[]', 'a valid input: no errors');
SELECT is(pg_temp.probe('authenticated', :acme, :dave, format($$SELECT jsonb_array_length(tenancy.validate_action_input(%L, '{"channel": 5}'))$$, :send)),
          'value:2', 'a wrong type and a missing property');
SELECT is(pg_temp.probe('authenticated', :acme, :dave, format($$SELECT tenancy.validate_action_output(%L, '[]')$$, :send)),
          'value:[{"keyword": "type", "message": "value is not of type \"object\"", "schema_path": "/type", "instance_path": ""}]', 'outputs against output_schema');
SELECT is(pg_temp.probe('authenticated', :acme, :dave, format($$SELECT tenancy.check_action_input(%L, '{"channel": "C1", "text": "hi"}')$$, :send)),
          'value:', 'check passes a valid input');
SELECT is(pg_temp.probe('authenticated', :acme, :dave, format($$SELECT tenancy.check_action_input(%L, '{}')$$, :send)),
          'error:22023', 'check raises 22023 for an invalid one');
SELECT is(pg_temp.probe('authenticated', :acme, :dave, format($$SELECT tenancy.check_action_output(%L, '1')$$, :send)),
          'error:22023', 'and for an invalid output');
-- The action is the context's tenant's: the superuser running this suite enters acme (RLS does
-- not apply to it, the tenant does).
SELECT throws_ok(format($$SELECT tenancy.validate_action_input(%L, '{}')$$, :send), 'P0002', NULL, 'no context: not found, even for a superuser');
SELECT tenancy.set_tenant(:acme) IS NOT NULL AS in_acme \gset
SELECT throws_like(format($$SELECT tenancy.check_action_input(%L, '{"channel": 5}')$$, :send),
                   'the input does not match the action''s input_schema (2 errors)', 'the message counts the errors');
-- Tenancy: another tenant's action, a role that cannot read actions, no such action.
SELECT is(pg_temp.probe('authenticated', :globex, :frank, format($$SELECT tenancy.validate_action_input(%L, '{}')$$, :send)),
          'error:P0002', 'another tenant''s action is not found');
SELECT is(pg_temp.probe('authenticated', :acme, :alice, format($$SELECT tenancy.validate_action_input(%L, '{}')$$, :globex_send)),
          'error:P0002', 'not even by a user who is a member there, from this tenant''s context');
SELECT is(pg_temp.probe('authenticated', :acme, :erin, format($$SELECT tenancy.validate_action_input(%L, '{}')$$, :send)),
          'error:P0002', 'a client reads no actions');
SELECT is(pg_temp.probe('authenticated', NULL, NULL, format($$SELECT tenancy.validate_action_input(%L, '{}')$$, :send)),
          'error:P0002', 'no context, no action');
SELECT is(pg_temp.probe('anon', NULL, NULL, format($$SELECT tenancy.validate_action_input(%L, '{}')$$, :send)),
          'error:42501', 'anon may not call it');
SELECT is(pg_temp.probe('authenticated', :acme, :dave, $$SELECT tenancy.validate_action_input('a1000001-0000-4000-8000-0000000009ff', '{}')$$),
          'error:P0002', 'an unknown action');
SELECT is(pg_temp.probe('anon', NULL, NULL, $$SELECT tenancy.jsonb_matches_schema('{}', '{}')$$),
          'value:true', 'the pure functions are for every role');
SELECT is((SELECT count(*) FROM pg_proc WHERE pronamespace = 'tenancy'::regnamespace AND prosecdef
            AND proname IN ('validate_action_input', 'check_action_input', 'validate_action_output', 'check_action_output',
                            'apply_field_mappings', 'jsonschema_is_valid', 'jsonb_matches_schema', 'jsonschema_validation_errors')),
          0::bigint, 'nothing here is SECURITY DEFINER');
-- A schema edited is used at the next call (the cache is keyed by the schema's bytes).
UPDATE tenancy.actions SET input_schema = '{"type": "object", "required": ["channel"]}' WHERE id = :send;
SELECT is(jsonb_array_length(tenancy.validate_action_input(:send, '{"text": "hi"}')), 1, 'an edited schema applies at once');
UPDATE tenancy.actions SET input_schema = '{"type": "object"}' WHERE id = :send;
SELECT is(jsonb_array_length(tenancy.validate_action_input(:send, '{"text": "hi"}')), 0, 'and again');

-- ---------------------------------------------------------------------------------------------
-- Field mappings: checked when written
-- ---------------------------------------------------------------------------------------------
INSERT INTO tenancy.actions (tenant_id, id, integration_id, name, slug, http_method, endpoint_template)
VALUES (:acme, :act, :slack, 'Mapped', 'mapped', 'POST', '/mapped');
CREATE FUNCTION pg_temp.map_row(src text, dst text, config jsonb DEFAULT NULL, dir text DEFAULT 'input') RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO tenancy.field_mappings (tenant_id, action_id, source_path, target_path, transform_config, direction)
    VALUES ('a0000000-0000-4000-8000-000000000001', 'a1000009-0000-4000-8000-000000000201', src, dst, config, dir::tenancy.mapping_direction);
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ' ' || SQLERRM;
END
$$;
SELECT is(pg_temp.map_row('a.b', '$.x'), '23514 field mapping: source_path: not a supported path at character 1: a path starts with $', 'a path starts with $');
SELECT is(pg_temp.map_row('$.a', 'x'), '23514 field mapping: target_path: not a supported path at character 1: a path starts with $', 'so does a target');
SELECT matches(pg_temp.map_row('$..a', '$.x'), '^23514 .*at character 3', 'no recursive descent');
SELECT matches(pg_temp.map_row('$.a[?(@.b)]', '$.x'), '^23514 ', 'no filters');
SELECT matches(pg_temp.map_row('$.a[10000]', '$.x'), '^23514 .*at most 9999', 'indexes are bounded');
SELECT matches(pg_temp.map_row('$.a', '$'), '^23514 .*\$ alone', 'a target names a place in the document');
SELECT matches(pg_temp.map_row('$.items[*].sku', '$.sku'), '^23514 .*has 0 \[\*\] and source_path has 1', 'as many [*] on both sides');
SELECT matches(pg_temp.map_row('$.a', '$.x', '{"uppercase": true}'), '^23514 .*unknown transform "uppercase"', 'an unknown transform');
SELECT matches(pg_temp.map_row('$.a', '$.x', '{"type": "int"}'), '^23514 .*"type" takes', 'an unknown type');
SELECT matches(pg_temp.map_row('$.a', '$.x', '{"case": "title"}'), '^23514 ', 'an unknown case');
SELECT matches(pg_temp.map_row('$.a', '$.x', '{"trim": 1}'), '^23514 ', 'trim takes a boolean');
SELECT matches(pg_temp.map_row('$.a', '$.x', '{"map": ["a"]}'), '^23514 ', 'map takes an object');
SELECT throws_ok(format($$UPDATE tenancy.field_mappings SET target_path = 'channel' WHERE action_id = %L AND target_path = '$.channel'$$, :send),
                 '23514', NULL, 'an update is checked too');

-- ---------------------------------------------------------------------------------------------
-- Field mappings: applied
-- ---------------------------------------------------------------------------------------------
SELECT is(tenancy.apply_field_mappings(:send, 'input', '{"message": "Hello", "room": "  General "}'),
          '{"text": "Hello", "channel": "general"}'::jsonb, 'the demo''s input mappings');
SELECT is(tenancy.apply_field_mappings(:send, 'output', '{"ts": 1712345678.000200}'),
          '{"messageId": "1712345678.000200"}'::jsonb, 'and its output mapping (a number cast to string, every digit kept)');
SELECT is(tenancy.apply_field_mappings(:act, 'input', '{"a": 1}'), '{}'::jsonb, 'no mappings: an empty document');
SELECT is(pg_temp.map_row('$.customer.email', '$.contact.email_address'), 'ok', 'nested');
SELECT is(pg_temp.map_row('$.customer["first name"]', '$.contact.name.first'), 'ok', 'a quoted name, a deep target');
SELECT is(pg_temp.map_row('$.items[*].sku', '$.lines[*].code'), 'ok', 'over an array');
SELECT is(pg_temp.map_row('$.items[*].qty', '$.lines[*].quantity', '{"type": "integer", "default": 1}'), 'ok', 'a cast with a default');
SELECT is(pg_temp.map_row('$.items[0].sku', '$.first_sku'), 'ok', 'an index');
SELECT is(pg_temp.map_row('$.tags', '$.meta.tags'), 'ok', 'a container as it is');
SELECT is(pg_temp.map_row('$.status', '$.state', '{"trim": true, "case": "lower", "map": {"ok": "active", "gone": "deleted"}}'), 'ok', 'trim, case, map');
SELECT is(pg_temp.map_row('$.amount', '$.total', '{"type": "number"}'), 'ok', 'a string to a number');
SELECT is(pg_temp.map_row('$.vip', '$.priority', '{"type": "boolean"}'), 'ok', 'to a boolean');
SELECT is(pg_temp.map_row('$.region', '$.region', '{"default": "eu", "case": "upper"}'), 'ok', 'a default, then the transforms');
SELECT is(pg_temp.map_row('$.missing', '$.absent'), 'ok', 'a missing source without default');
SELECT is(pg_temp.map_row('$.note', '$.note'), 'ok', 'null passes as null');
SELECT is(pg_temp.map_row('$.id', '$.reference', '{"type": "string"}', 'output'), 'ok', 'an output mapping');
SELECT is(tenancy.apply_field_mappings(:act, 'input', $${
    "customer": {"email": "ann@example.test", "first name": "Ann"},
    "items": [{"sku": "A-1", "qty": "2"}, {"sku": "B-2"}, {"qty": 3.0}],
    "tags": ["x", {"y": 1}],
    "status": " OK ", "amount": " 12345678901234567890.10 ", "vip": "yes", "note": null
}$$), $${
    "contact": {"email_address": "ann@example.test", "name": {"first": "Ann"}},
    "lines": [{"code": "A-1", "quantity": 2}, {"code": "B-2", "quantity": 1}, {"quantity": 3}],
    "first_sku": "A-1", "meta": {"tags": ["x", {"y": 1}]},
    "state": "active", "total": 12345678901234567890.10, "priority": true, "region": "EU", "note": null
}$$::jsonb, 'every mapping of the direction, in one document');
SELECT is(tenancy.apply_field_mappings(:act, 'output', '{"id": 42}'), '{"reference": "42"}'::jsonb, 'only the mappings of the direction');
SELECT is(tenancy.apply_field_mappings(:act, 'input', '{"region": null, "items": "not an array"}'),
          '{"region": "EU"}'::jsonb, 'a default replaces null; [*] over a non-array maps nothing');
-- Casts that fail: 22023 naming the mapping and the place, never the value.
SELECT throws_ok(format($$SELECT tenancy.apply_field_mappings(%L, 'input', '{"items": [{"qty": 1}, {"qty": "two-secret"}]}')$$, :act),
                 '22023', 'field mapping $.items[*].qty -> $.lines[*].quantity: the value at $.items[1].qty does not cast to integer',
                 'a value that does not cast');
SELECT throws_ok(format($$SELECT tenancy.apply_field_mappings(%L, 'input', '{"items": [{"qty": 1.5}]}')$$, :act), '22023', NULL, '1.5 is no integer');
SELECT throws_ok(format($$SELECT tenancy.apply_field_mappings(%L, 'input', '{"amount": "12abc"}')$$, :act), '22023', NULL, 'nor is 12abc a number');
SELECT throws_ok(format($$SELECT tenancy.apply_field_mappings(%L, 'input', '{"amount": "NaN"}')$$, :act), '22023', NULL, 'NaN is no JSON number');
SELECT throws_ok(format($$SELECT tenancy.apply_field_mappings(%L, 'input', '{"vip": "maybe"}')$$, :act), '22023', NULL, 'maybe is no boolean');
SELECT throws_ok(format($$SELECT tenancy.apply_field_mappings(%L, 'input', '{"amount": {"v": 1}}')$$, :act), '22023', NULL, 'an object casts to nothing');
SELECT is(tenancy.apply_field_mappings(:act, 'input', '{"vip": 0, "amount": 7}'), '{"priority": false, "total": 7, "region": "EU"}'::jsonb, '0 is false; a number stays');
-- Overlapping targets.
SELECT is(pg_temp.map_row('$.whole', '$.contact'), 'ok', 'a target that contains another');
SELECT throws_like(format($$SELECT tenancy.apply_field_mappings(%L, 'input', '{"whole": 1, "customer": {"email": "e"}}')$$, :act),
                   '%an earlier mapping already wrote%', 'overlapping targets are an error');
SELECT is(tenancy.apply_field_mappings(:act, 'input', '{"customer": {"email": "e"}}') -> 'contact', '{"email_address": "e"}'::jsonb,
          'not when only one of them has a value');
DELETE FROM tenancy.field_mappings WHERE action_id = :act AND target_path = '$.contact';
-- Scalars and arrays as payloads.
SELECT is(tenancy.apply_field_mappings(:act, 'input', '"just a string"'), '{"region": "EU"}'::jsonb, 'a scalar payload has no members');

-- A name cannot hold NUL (jsonb cannot); a document that would grow past its budget stops.
SELECT matches(pg_temp.map_row('$.a', '$["a\u0000"]'), '^23514 .*u0000', 'no NUL in a name');
SELECT is(pg_temp.map_row('$.pad[*]', '$.padded[*]' || repeat('[9999]', 30) || ''), 'ok', 'a target that pads');
SELECT throws_ok(format($$SELECT tenancy.apply_field_mappings(%L, 'input', jsonb_build_object('pad', (SELECT jsonb_agg(0) FROM generate_series(1, 60))))$$, :act),
                 '54000', NULL, 'sixty elements padded into gigabytes stop at the budget');
DELETE FROM tenancy.field_mappings WHERE action_id = :act AND target_path LIKE '$.padded%';

-- Copies count too: 150 mappings of one 1 MB array (PostgreSQL's builder expands each copy).
INSERT INTO tenancy.field_mappings (tenant_id, action_id, source_path, target_path, direction)
SELECT :acme, :act, '$.big', '$.copy' || i, 'output' FROM generate_series(1, 150) i;
SELECT throws_ok(format($$SELECT tenancy.apply_field_mappings(%L, 'output', jsonb_build_object('big', (SELECT jsonb_agg(NULL::int) FROM generate_series(1, 250000))))$$, :act),
                 '54000', NULL, '150 copies of a 1 MB array stop at the budget');
DELETE FROM tenancy.field_mappings WHERE action_id = :act AND target_path LIKE '$.copy%';

-- Tenancy, as for the validation functions.
SELECT is(pg_temp.probe('authenticated', :acme, :dave, format($$SELECT tenancy.apply_field_mappings(%L, 'output', '{"id": 1}')$$, :act)),
          'value:{"reference": "1"}', 'a member applies its tenant''s mappings');
SELECT is(pg_temp.probe('authenticated', :globex, :frank, format($$SELECT tenancy.apply_field_mappings(%L, 'output', '{"id": 1}')$$, :act)),
          'error:P0002', 'another tenant''s action is not found');
SELECT is(pg_temp.probe('authenticated', :acme, :erin, format($$SELECT tenancy.apply_field_mappings(%L, 'output', '{"id": 1}')$$, :act)),
          'error:P0002', 'a client reads no actions');
SELECT is(pg_temp.probe('anon', NULL, NULL, format($$SELECT tenancy.apply_field_mappings(%L, 'output', '{"id": 1}')$$, :act)),
          'error:42501', 'anon may not call it');
SELECT is(pg_temp.probe('authenticated', :acme, :dave, format($$INSERT INTO tenancy.field_mappings (tenant_id, action_id, source_path, target_path, direction)
                                                             VALUES (%L, %L, '$.a', '$.b', 'input')$$, :acme, :act)),
          'error:42501', 'a member does not write mappings (the role matrix)');
SELECT is(pg_temp.probe('authenticated', :acme, :bob, format($$INSERT INTO tenancy.field_mappings (tenant_id, action_id, source_path, target_path, direction)
                                                           VALUES (%L, %L, '$.a', '$.b', 'input')$$, :acme, :act)),
          'rows:1', 'an admin does');
-- An action id is unique within a tenant only: globex's admin makes an action with acme's id and
-- mappings that would inject fields.  service_role (RLS: every tenant) gets acme's alone, in acme.
SELECT tenancy.clear_context();
INSERT INTO tenancy.actions (tenant_id, id, integration_id, name, slug, http_method, endpoint_template, input_schema)
VALUES (:globex, :send, 'b1000000-0000-4000-8000-000000000101', 'twin', 'twin', 'POST', '/x', '{"type": "array"}');
INSERT INTO tenancy.field_mappings (tenant_id, action_id, source_path, target_path, transform_config, direction)
VALUES (:globex, :send, '$.nothing', '$.as_user', '{"default": "U_ATTACKER"}', 'input'),
       (:globex, :send, '$.message', '$.copy', NULL, 'input');
SELECT is(pg_temp.probe('service_role', :acme, NULL, format($$SELECT tenancy.apply_field_mappings(%L, 'input', '{"message": "m", "room": "R"}')$$, :send)),
          'value:{"text": "m", "channel": "r"}', 'service_role in acme: acme''s mappings only');
SELECT is(pg_temp.probe('service_role', :acme, NULL, format($$SELECT jsonb_array_length(tenancy.validate_action_input(%L, '{}'))$$, :send)),
          'value:0', 'and acme''s schema, not the twin''s');
SELECT is(pg_temp.probe('service_role', :globex, NULL, format($$SELECT jsonb_array_length(tenancy.validate_action_input(%L, '{}'))$$, :send)),
          'value:1', 'the twin''s in globex');
SELECT is(pg_temp.probe('service_role', NULL, NULL, format($$SELECT tenancy.apply_field_mappings(%L, 'input', '{}')$$, :send)),
          'error:P0002', 'service_role without a tenant: not found');
SELECT is(pg_temp.probe('service_role', :globex, NULL, format($$SELECT tenancy.apply_field_mappings(%L, 'input', '{"message": "m"}')$$, :send)),
          'value:{"copy": "m", "as_user": "U_ATTACKER"}', 'in globex, globex''s');
SELECT tenancy.set_tenant(:acme) IS NOT NULL AS in_acme \gset
SELECT ok((tenancy.library_info() -> 'mapping_cache' ->> 'hits')::int > 0, 'compiled mappings are reused (library_info: mapping_cache)');
SELECT ok((tenancy.library_info() -> 'schema_cache' ->> 'hits')::int > 0, 'and compiled schemas (schema_cache)');

SELECT * FROM finish();
ROLLBACK;

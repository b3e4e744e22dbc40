-- Actions (src/actions/): one action of a bench tenant with a 20-property input schema and 20
-- input field mappings, 1,000 input documents of about 1 kB, and what a user would otherwise
-- write: the same rules as a plpgsql function, the same mappings as one SQL expression.
INSERT INTO tenancy.actions (tenant_id, id, integration_id, name, slug, http_method, endpoint_template, input_schema)
VALUES ('c0000000-0000-4000-8000-000000000001', 'e1000000-0000-4000-8000-000000000001',
        'e0000000-0000-4000-8000-000000000001', 'Create order', 'create-order', 'POST', '/orders', $${
  "type": "object",
  "required": ["id", "email", "name", "amount", "currency", "items"],
  "properties": {
    "id":       {"type": "string", "minLength": 8, "maxLength": 64},
    "email":    {"type": "string", "maxLength": 254, "pattern": "^[^@\\s]+@[^@\\s]+$"},
    "name":     {"type": "string", "minLength": 1, "maxLength": 200},
    "amount":   {"type": "number", "minimum": 0},
    "currency": {"enum": ["USD", "EUR", "GBP", "JPY"]},
    "quantity": {"type": "integer", "minimum": 1, "maximum": 1000},
    "status":   {"enum": ["pending", "paid", "failed"]},
    "notes":    {"type": "string", "maxLength": 2000},
    "tags":     {"type": "array", "maxItems": 20, "items": {"type": "string"}},
    "priority": {"type": "integer", "minimum": 0, "maximum": 10},
    "vip":      {"type": "boolean"},
    "country":  {"type": "string", "minLength": 2, "maxLength": 2},
    "city":     {"type": "string", "maxLength": 100},
    "zip":      {"type": "string", "maxLength": 16},
    "phone":    {"type": "string", "maxLength": 32},
    "created":  {"type": "string", "maxLength": 40},
    "source":   {"type": "string", "maxLength": 50},
    "discount": {"type": "number", "minimum": 0, "maximum": 100},
    "metadata": {"type": "object"},
    "items":    {"type": "array", "minItems": 1,
                 "items": {"type": "object", "required": ["sku", "qty"],
                           "properties": {"sku": {"type": "string"}, "qty": {"type": "integer", "minimum": 1}}}}
  }
}$$);
INSERT INTO tenancy.field_mappings (tenant_id, action_id, source_path, target_path, transform_config, direction)
SELECT 'c0000000-0000-4000-8000-000000000001', 'e1000000-0000-4000-8000-000000000001', s, t, c::jsonb, 'input'
FROM (VALUES
    ('$.id',           '$.reference',           NULL),
    ('$.email',        '$.customer.email',      '{"trim": true, "case": "lower"}'),
    ('$.name',         '$.customer.name',       NULL),
    ('$.amount',       '$.total.amount',        '{"type": "string"}'),
    ('$.currency',     '$.total.currency',      '{"case": "lower"}'),
    ('$.quantity',     '$.qty',                 '{"type": "integer", "default": 1}'),
    ('$.status',       '$.state',               '{"map": {"pending": "open", "paid": "closed", "failed": "error"}}'),
    ('$.notes',        '$.memo',                NULL),
    ('$.tags',         '$.labels',              NULL),
    ('$.priority',     '$.priority',            '{"type": "integer", "default": 0}'),
    ('$.vip',          '$.flags.vip',           '{"type": "boolean", "default": false}'),
    ('$.country',      '$.address.country',     '{"case": "upper"}'),
    ('$.city',         '$.address.city',        '{"trim": true}'),
    ('$.zip',          '$.address.postal_code', NULL),
    ('$.phone',        '$.contact.phone',       NULL),
    ('$.created',      '$.created_at',          NULL),
    ('$.source',       '$.channel',             '{"default": "api"}'),
    ('$.discount',     '$.total.discount',      '{"type": "number", "default": 0}'),
    ('$.items[*].sku', '$.lines[*].code',       NULL),
    ('$.items[*].qty', '$.lines[*].quantity',   '{"type": "integer"}')
) AS m(s, t, c);

CREATE TABLE bench.action_docs (n int PRIMARY KEY, doc jsonb NOT NULL);
INSERT INTO bench.action_docs
SELECT n, jsonb_build_object(
    'id', 'ord_' || md5(n::text), 'email', 'Buyer' || n || '@Example.test', 'name', 'Buyer number ' || n,
    'amount', 19.99 + n, 'currency', (ARRAY['USD', 'EUR', 'GBP', 'JPY'])[1 + n % 4], 'quantity', 1 + n % 7,
    'status', (ARRAY['pending', 'paid', 'failed'])[1 + n % 3], 'notes', repeat('note ' || n || ' ', 45),
    'tags', jsonb_build_array('web', 'promo-' || n % 10), 'priority', n % 10, 'vip', n % 2 = 0,
    'country', 'de', 'city', '  Berlin ', 'zip', '10115', 'phone', '+49 30 ' || n, 'created', '2026-11-30T10:00:00Z',
    'source', 'web', 'discount', n % 50, 'metadata', jsonb_build_object('campaign', 'winter', 'ab', n % 2),
    'items', jsonb_build_array(jsonb_build_object('sku', 'SKU-' || n, 'qty', 1 + n % 3),
                               jsonb_build_object('sku', 'SKU-' || (n + 1), 'qty', 2)))
FROM generate_series(1, 1000) n;
CREATE TABLE bench.action_schema AS
SELECT input_schema AS schema FROM tenancy.actions WHERE id = 'e1000000-0000-4000-8000-000000000001';

-- The same 20 rules in plpgsql, as a user would check them without a JSON Schema validator.
CREATE FUNCTION bench.check_order(d jsonb) RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    e jsonb;
BEGIN
    IF jsonb_typeof(d) <> 'object' OR NOT d ?& ARRAY['id', 'email', 'name', 'amount', 'currency', 'items'] THEN RETURN false; END IF;
    IF jsonb_typeof(d->'id') <> 'string' OR length(d->>'id') NOT BETWEEN 8 AND 64 THEN RETURN false; END IF;
    IF jsonb_typeof(d->'email') <> 'string' OR length(d->>'email') > 254 OR d->>'email' !~ '^[^@\s]+@[^@\s]+$' THEN RETURN false; END IF;
    IF jsonb_typeof(d->'name') <> 'string' OR length(d->>'name') NOT BETWEEN 1 AND 200 THEN RETURN false; END IF;
    IF jsonb_typeof(d->'amount') <> 'number' OR (d->>'amount')::numeric < 0 THEN RETURN false; END IF;
    IF NOT (d->'currency' <@ '["USD", "EUR", "GBP", "JPY"]' AND jsonb_typeof(d->'currency') = 'string') THEN RETURN false; END IF;
    IF d ? 'quantity' AND (jsonb_typeof(d->'quantity') <> 'number' OR (d->>'quantity')::numeric % 1 <> 0
                           OR (d->>'quantity')::numeric NOT BETWEEN 1 AND 1000) THEN RETURN false; END IF;
    IF d ? 'status' AND NOT (jsonb_typeof(d->'status') = 'string' AND d->>'status' IN ('pending', 'paid', 'failed')) THEN RETURN false; END IF;
    IF d ? 'notes' AND (jsonb_typeof(d->'notes') <> 'string' OR length(d->>'notes') > 2000) THEN RETURN false; END IF;
    IF d ? 'tags' THEN
        IF jsonb_typeof(d->'tags') <> 'array' OR jsonb_array_length(d->'tags') > 20 THEN RETURN false; END IF;
        IF EXISTS (SELECT FROM jsonb_array_elements(d->'tags') t WHERE jsonb_typeof(t) <> 'string') THEN RETURN false; END IF;
    END IF;
    IF d ? 'priority' AND (jsonb_typeof(d->'priority') <> 'number' OR (d->>'priority')::numeric % 1 <> 0
                           OR (d->>'priority')::numeric NOT BETWEEN 0 AND 10) THEN RETURN false; END IF;
    IF d ? 'vip' AND jsonb_typeof(d->'vip') <> 'boolean' THEN RETURN false; END IF;
    IF d ? 'country' AND (jsonb_typeof(d->'country') <> 'string' OR length(d->>'country') <> 2) THEN RETURN false; END IF;
    IF d ? 'city' AND (jsonb_typeof(d->'city') <> 'string' OR length(d->>'city') > 100) THEN RETURN false; END IF;
    IF d ? 'zip' AND (jsonb_typeof(d->'zip') <> 'string' OR length(d->>'zip') > 16) THEN RETURN false; END IF;
    IF d ? 'phone' AND (jsonb_typeof(d->'phone') <> 'string' OR length(d->>'phone') > 32) THEN RETURN false; END IF;
    IF d ? 'created' AND (jsonb_typeof(d->'created') <> 'string' OR length(d->>'created') > 40) THEN RETURN false; END IF;
    IF d ? 'source' AND (jsonb_typeof(d->'source') <> 'string' OR length(d->>'source') > 50) THEN RETURN false; END IF;
    IF d ? 'discount' AND (jsonb_typeof(d->'discount') <> 'number' OR (d->>'discount')::numeric NOT BETWEEN 0 AND 100) THEN RETURN false; END IF;
    IF d ? 'metadata' AND jsonb_typeof(d->'metadata') <> 'object' THEN RETURN false; END IF;
    IF jsonb_typeof(d->'items') <> 'array' OR jsonb_array_length(d->'items') < 1 THEN RETURN false; END IF;
    FOR e IN SELECT * FROM jsonb_array_elements(d->'items') LOOP
        IF jsonb_typeof(e) <> 'object' OR NOT e ?& ARRAY['sku', 'qty'] OR jsonb_typeof(e->'sku') <> 'string'
           OR jsonb_typeof(e->'qty') <> 'number' OR (e->>'qty')::numeric % 1 <> 0 OR (e->>'qty')::numeric < 1 THEN
            RETURN false;
        END IF;
    END LOOP;
    RETURN true;
END
$$;

-- The same 20 mappings as one SQL expression (absent members left out, as the mappings do).
CREATE FUNCTION bench.map_order(d jsonb) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
SELECT jsonb_strip_nulls(jsonb_build_object(
    'reference', d->'id',
    'customer', jsonb_build_object('email', lower(trim(d->>'email')), 'name', d->'name'),
    'total', jsonb_build_object('amount', (d->'amount')::text, 'currency', lower(d->>'currency'),
                                'discount', coalesce((d->>'discount')::numeric, 0)),
    'qty', coalesce((d->>'quantity')::numeric::integer, 1),
    'state', CASE d->>'status' WHEN 'pending' THEN 'open' WHEN 'paid' THEN 'closed' WHEN 'failed' THEN 'error' ELSE d->>'status' END,
    'memo', d->'notes', 'labels', d->'tags', 'priority', coalesce((d->>'priority')::numeric::integer, 0),
    'flags', jsonb_build_object('vip', coalesce((d->>'vip')::boolean, false)),
    'address', jsonb_build_object('country', upper(d->>'country'), 'city', trim(d->>'city'), 'postal_code', d->'zip'),
    'contact', jsonb_build_object('phone', d->'phone'), 'created_at', d->'created', 'channel', coalesce(d->>'source', 'api'),
    'lines', (SELECT jsonb_agg(jsonb_build_object('code', e->'sku', 'quantity', (e->>'qty')::numeric::integer))
              FROM jsonb_array_elements(d->'items') e)))
$$;

-- Equal work: both checkers take every document, and both mappings give the same documents.
BEGIN;
SELECT tenancy.set_tenant('c0000000-0000-4000-8000-000000000001') IS NOT NULL AS entered;
DO $$
BEGIN
    IF EXISTS (SELECT FROM bench.action_docs, bench.action_schema
               WHERE NOT (tenancy.jsonb_matches_schema(schema, doc) AND bench.check_order(doc))) THEN
        RAISE EXCEPTION 'a bench document is not valid under both checkers';
    END IF;
    IF EXISTS (SELECT FROM bench.action_docs
               WHERE tenancy.apply_field_mappings('e1000000-0000-4000-8000-000000000001', 'input', doc)
                     IS DISTINCT FROM bench.map_order(doc)) THEN
        RAISE EXCEPTION 'the SQL mapping differs from the field mappings';
    END IF;
END
$$;
COMMIT;

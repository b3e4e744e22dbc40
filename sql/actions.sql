-- Actions' JSON Schemas must be schemas (src/actions/mod.rs): drafts 4, 6, 7, 2019-09 and
-- 2020-12, by $schema (2020-12 when absent).  The check raises 23514 naming the keyword and
-- where it is wrong.  Each check is written `f(...) IS NOT FALSE` rather than a bare call: the
-- same meaning (the function raises or returns true; NULL passes), and PostgreSQL then prints it
-- in double parentheses, which code generators (drizzle-kit pull) read back correctly.
ALTER TABLE tenancy.actions
    ADD CONSTRAINT actions_input_schema_valid CHECK (tenancy._jsonschema_check(input_schema, 'input_schema') IS NOT FALSE),
    ADD CONSTRAINT actions_output_schema_valid CHECK (tenancy._jsonschema_check(output_schema, 'output_schema') IS NOT FALSE);

-- Field mappings must be mappings we can apply (src/actions/mappings.rs): paths of the
-- documented JSONPath subset, as many [*] in the target as in the source, a transform_config
-- of known keys.  23514 naming the column and what is wrong.
ALTER TABLE tenancy.field_mappings
    ADD CONSTRAINT field_mappings_valid
    CHECK (tenancy._field_mapping_check(source_path, target_path, transform_config) IS NOT FALSE);

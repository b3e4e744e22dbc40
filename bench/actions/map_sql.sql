-- The same 20 mappings written as one SQL expression (bench.map_order).
-- Every script of this group: in the bench tenant's context (the action is the context's), one
-- statement over 50 documents of about 1 kB, each with its own schema text (a $comment), so
-- per call = (this script - floor) / 50.
\set c random(1, 4)
\set s random(1, 951)
\set entries 256
BEGIN;
SELECT tenancy.set_tenant('c0000000-0000-4000-8000-000000000001') IS NOT NULL AS entered,
       set_config('tenancy.schema_cache_entries', (:entries)::text, true) AS schema_cache_entries;
SELECT count(*) FROM bench.action_docs d, bench.action_schema s,
       LATERAL (SELECT s.schema || jsonb_build_object('$comment', (:c + d.n % 50)::text) AS schema OFFSET 0) x
 WHERE d.n BETWEEN :s AND :s + 49 AND x.schema IS NOT NULL
   AND bench.map_order(d.doc) IS NOT NULL;
COMMIT;

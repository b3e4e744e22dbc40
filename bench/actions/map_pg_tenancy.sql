-- tenancy.apply_field_mappings: the action's 20 input mappings read through SPI as the caller, applied.
-- Every script of this group: one statement over 50 documents of about 1 kB, each with its own
-- schema text (a $comment), so per call = (this script - floor) / 50.
\set c random(1, 4)
\set s random(1, 951)
SELECT count(*) FROM bench.action_docs d, bench.action_schema s
 WHERE d.n BETWEEN :s AND :s + 49 AND (s.schema || jsonb_build_object('$comment', (:c + d.n % 50)::text)) IS NOT NULL
   AND tenancy.apply_field_mappings('e1000000-0000-4000-8000-000000000001', 'input', d.doc) IS NOT NULL;

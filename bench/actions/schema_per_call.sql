-- tenancy.jsonb_matches_schema compiling on every call (what pg_jsonschema did before it cached): every schema new.
-- Every script of this group: one statement over 50 documents of about 1 kB, each with its own
-- schema text (a $comment), so per call = (this script - floor) / 50.
\set c random(1, 1000000000)
\set s random(1, 951)
SELECT count(*) FROM bench.action_docs d, bench.action_schema s
 WHERE d.n BETWEEN :s AND :s + 49 AND (s.schema || jsonb_build_object('$comment', (:c + d.n % 50)::text)) IS NOT NULL
   AND tenancy.jsonb_matches_schema(s.schema || jsonb_build_object('$comment', (:c + d.n % 50)::text), d.doc);

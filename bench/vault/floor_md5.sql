-- The per-call floor: one trivial statement over the same secret.
SELECT md5(v) FROM bench.secret;

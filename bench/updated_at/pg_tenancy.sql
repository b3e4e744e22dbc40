\set id random(1, 100000)
UPDATE bench.pg_tenancy SET v = v + 1 WHERE id = :id;

\set id random(1, 100000)
UPDATE bench.no_trigger SET v = v + 1 WHERE id = :id;

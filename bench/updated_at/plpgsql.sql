\set id random(1, 100000)
UPDATE bench.plpgsql SET v = v + 1 WHERE id = :id;

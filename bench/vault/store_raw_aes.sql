-- pgcrypto raw AES, stored.
INSERT INTO bench.aes_sink (secret) SELECT encrypt(convert_to(v, 'UTF8'), decode(repeat('ab', 32), 'hex'), 'aes') FROM bench.secret;

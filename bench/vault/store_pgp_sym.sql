-- pgcrypto OpenPGP symmetric encryption, stored.
INSERT INTO bench.pgp_sink (secret) SELECT pgp_sym_encrypt(v, 'bench-passphrase') FROM bench.secret;

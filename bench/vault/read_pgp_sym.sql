-- pgcrypto OpenPGP symmetric decryption of the same secret (passphrase, S2K).
\set i random(1, 10000)
SELECT pgp_sym_decrypt(secret, 'bench-passphrase') FROM bench.pgp_store WHERE n = :i;

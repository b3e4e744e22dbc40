#!/usr/bin/python3
"""Tokens for the JWT benchmark: for each of the 1000 bench users, its claims and one token per
algorithm (HS256 from an oct key, ES256, RS256), each in the request.headers form PostgREST sends,
signed with PyJWT and `cryptography`; and the JWKS holding the three keys.
Usage: tokens.py CSV_OUT JWKS_OUT"""
import csv
import json
import secrets
import sys

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

csv_out, jwks_out = sys.argv[1], sys.argv[2]
ec_key = ec.generate_private_key(ec.SECP256R1())
rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
hs = secrets.token_bytes(32)


def jwk(alg_class, key, kid, alg):
    j = json.loads(alg_class.to_jwk(key.public_key()))
    j.update(kid=kid, alg=alg, use="sig")
    return j


import base64

jwks = {"keys": [
    jwk(ECAlgorithm, ec_key, "ec-1", "ES256"),
    jwk(RSAAlgorithm, rsa_key, "rsa-1", "RS256"),
    {"kty": "oct", "kid": "hs-1", "alg": "HS256", "k": base64.urlsafe_b64encode(hs).rstrip(b"=").decode()},
]}
with open(jwks_out, "w") as f:
    f.write(json.dumps(jwks, separators=(",", ":")))
with open(csv_out, "w", newline="") as f:
    w = csv.writer(f)
    for i in range(1, 1001):
        claims = {"sub": f"d0000000-0000-4000-8000-{i:012d}", "tenant_id": f"c0000000-0000-4000-8000-{i:012d}",
                  "role": "authenticated", "aud": "authenticated", "exp": 4102444800}
        headers = lambda token: json.dumps({"authorization": f"Bearer {token}", "accept": "application/json"})
        w.writerow([i, json.dumps(claims),
                    headers(jwt.encode(claims, hs, algorithm="HS256", headers={"kid": "hs-1"})),
                    headers(jwt.encode(claims, ec_key, algorithm="ES256", headers={"kid": "ec-1"})),
                    headers(jwt.encode(claims, rsa_key, algorithm="RS256", headers={"kid": "rsa-1"}))])

#!/usr/bin/python3
"""Sign the tokens of pgrx-tests/tests/jwt.rs independently of pg_tenancy's code: PyJWT and
`cryptography` (OpenSSL) make the keys, the JWKS and the signatures; the odd tokens (alg none,
HMAC keyed with a public key, DER signatures, swapped parts) are put together here by hand.

Usage: jwt_tokens.py NOW SUB TENANT ISS  ->  JSON on stdout:
  {"jwks": {...}, "keys": {"<name>": <jwk>}, "secret": "<HS256 secret string>",
   "cases": [{"name": ..., "token": ..., "want": "ok" | "28000", "why": ...}],
   "standby": {"jwk": <jwk>, "token": ...}}
Debian: python3-jwt, python3-cryptography (scripts/common.sh installs them).
"""
import base64
import hashlib
import hmac
import json
import secrets
import sys

import jwt
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa, utils
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

now, sub, tenant, iss = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def public_jwk(alg_class, private, kid, **extra):
    jwk = json.loads(alg_class.to_jwk(private.public_key()))
    jwk.update(kid=kid, use="sig", **extra)
    return jwk


ec_key = ec.generate_private_key(ec.SECP256R1())
ec384_key = ec.generate_private_key(ec.SECP384R1())
rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ed_key = ed25519.Ed25519PrivateKey.generate()
foreign_ec = ec.generate_private_key(ec.SECP256R1())
standby_key = ec.generate_private_key(ec.SECP256R1())
hs_secret = secrets.token_bytes(32)
legacy_secret = "legacy-" + secrets.token_urlsafe(32)

keys = {
    "ec": public_jwk(ECAlgorithm, ec_key, "ec-1", alg="ES256"),
    "ec384": public_jwk(ECAlgorithm, ec384_key, "ec384-1"),
    "rsa": public_jwk(RSAAlgorithm, rsa_key, "rsa-1", alg="RS256"),
    "ed": public_jwk(OKPAlgorithm, ed_key, "ed-1"),
    "hs": {"kty": "oct", "kid": "hs-1", "alg": "HS256", "k": b64(hs_secret)},
}
# A key for encryption: listed, never used to verify (tenancy.jwt_keys() says why).
enc = public_jwk(RSAAlgorithm, rsa.generate_private_key(public_exponent=65537, key_size=2048), "enc-1")
enc["use"] = "enc"
jwks = {"keys": list(keys.values()) + [enc]}

claims = {
    "aud": "authenticated", "iss": iss, "sub": sub, "role": "authenticated", "aal": "aal1",
    "session_id": "6b1e7d2c-0000-4000-8000-00000000c0de", "is_anonymous": False,
    "email": "dave@acme.test", "phone": "", "amr": [{"method": "password", "timestamp": now - 10}],
    "app_metadata": {"provider": "email", "providers": ["email"], "tenant_id": tenant},
    "user_metadata": {"full_name": "Dave"}, "iat": now - 10, "exp": now + 3600,
}


def sign(key, alg, kid=None, payload=None, **headers):
    if kid is not None:
        headers["kid"] = kid
    return jwt.encode(payload or claims, key, algorithm=alg, headers=headers or None)


def by_hand(header: dict, payload: dict, signer) -> str:
    body = b64(json.dumps(header).encode()) + "." + b64(json.dumps(payload).encode())
    return body + "." + b64(signer(body.encode()))


def with_part(token: str, index: int, part: str) -> str:
    parts = token.split(".")
    parts[index] = part
    return ".".join(parts)


def es256_der(body: bytes) -> bytes:
    return ec_key.sign(body, ec.ECDSA(hashes.SHA256()))


def es256_raw(body: bytes) -> bytes:
    r, s = utils.decode_dss_signature(es256_der(body))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


rsa_pem = rsa_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
rsa_jwk_text = json.dumps(keys["rsa"]).encode()
good_es = sign(ec_key, "ES256", "ec-1")
good_rs = sign(rsa_key, "RS256", "rsa-1")
other_payload = b64(json.dumps(dict(claims, sub="00000000-0000-4000-8000-0000000000b1")).encode())

cases = [
    ("ES256 with kid", good_es, "ok"),
    ("ES256 without kid", sign(ec_key, "ES256"), "ok"),
    ("RS256 with kid", good_rs, "ok"),
    ("RS256 without kid", sign(rsa_key, "RS256"), "ok"),
    ("HS256 (oct JWK) with kid", sign(hs_secret, "HS256", "hs-1"), "ok"),
    ("HS256 (oct JWK) without kid", sign(hs_secret, "HS256"), "ok"),
    ("EdDSA with kid", sign(ed_key, "EdDSA", "ed-1"), "ok"),
    ("ES384 without kid", sign(ec384_key, "ES384"), "ok"),
    ("ES256, JOSE signature built by hand", by_hand({"alg": "ES256", "kid": "ec-1"}, claims, es256_raw), "ok"),
    ("alg none, no signature", by_hand({"alg": "none"}, claims, lambda b: b""), "28000"),
    ("alg none under a known kid", by_hand({"alg": "none", "kid": "ec-1"}, claims, lambda b: b""), "28000"),
    ("HS256 keyed with the RSA public key (PEM), its kid",
     by_hand({"alg": "HS256", "kid": "rsa-1"}, claims, lambda b: hmac.new(rsa_pem, b, hashlib.sha256).digest()), "28000"),
    ("HS256 keyed with the RSA public key (PEM), no kid",
     by_hand({"alg": "HS256"}, claims, lambda b: hmac.new(rsa_pem, b, hashlib.sha256).digest()), "28000"),
    ("HS256 keyed with the RSA JWK's text, its kid",
     by_hand({"alg": "HS256", "kid": "rsa-1"}, claims, lambda b: hmac.new(rsa_jwk_text, b, hashlib.sha256).digest()), "28000"),
    ("a foreign EC key under a known kid", sign(foreign_ec, "ES256", "ec-1"), "28000"),
    ("a foreign EC key, no kid", sign(foreign_ec, "ES256"), "28000"),
    ("an unknown kid", sign(ec_key, "ES256", "ec-9"), "28000"),
    ("the standby key, not yet published", sign(standby_key, "ES256", "ec-2"), "28000"),
    ("expired", sign(ec_key, "ES256", "ec-1", dict(claims, exp=now - 120)), "28000"),
    ("no exp", sign(ec_key, "ES256", "ec-1", {k: v for k, v in claims.items() if k != "exp"}), "28000"),
    ("not yet valid (nbf)", sign(ec_key, "ES256", "ec-1", dict(claims, nbf=now + 600)), "28000"),
    ("issued in the future (iat)", sign(ec_key, "ES256", "ec-1", dict(claims, iat=now + 600)), "28000"),
    ("wrong aud", sign(ec_key, "ES256", "ec-1", dict(claims, aud="billing-service")), "28000"),
    ("no aud", sign(ec_key, "ES256", "ec-1", {k: v for k, v in claims.items() if k != "aud"}), "28000"),
    ("wrong iss", sign(ec_key, "ES256", "ec-1", dict(claims, iss="https://evil.test/auth/v1")), "28000"),
    ("a swapped payload (ES256)", with_part(good_es, 1, other_payload), "28000"),
    ("a swapped payload (RS256)", with_part(good_rs, 1, other_payload), "28000"),
    ("an ES256 signature under a header claiming ES384",
     with_part(good_es, 0, b64(json.dumps({"alg": "ES384", "kid": "ec-1"}).encode())), "28000"),
    ("an RS256 signature under a header claiming RS512",
     with_part(good_rs, 0, b64(json.dumps({"alg": "RS512", "kid": "rsa-1"}).encode())), "28000"),
    ("an RS256 signature under a header claiming PS256",
     with_part(good_rs, 0, b64(json.dumps({"alg": "PS256", "kid": "rsa-1"}).encode())), "28000"),
    ("an RS256 signature under a header claiming HS256",
     with_part(good_rs, 0, b64(json.dumps({"alg": "HS256", "kid": "rsa-1"}).encode())), "28000"),
    ("a header with crit", sign(ec_key, "ES256", "ec-1", crit=["exp"]), "28000"),
    ("a header carrying its own jwk", by_hand({"alg": "ES256", "jwk": public_jwk(ECAlgorithm, foreign_ec, "x")}, claims,
                                             lambda b: (lambda r_s: r_s[0].to_bytes(32, "big") + r_s[1].to_bytes(32, "big"))(
                                                 utils.decode_dss_signature(foreign_ec.sign(b, ec.ECDSA(hashes.SHA256()))))), "28000"),
    ("an ES256 signature in DER", by_hand({"alg": "ES256", "kid": "ec-1"}, claims, es256_der), "28000"),
    ("a truncated signature", good_es[:-4], "28000"),
    ("no signature part", good_es.rsplit(".", 1)[0], "28000"),
]

print(json.dumps({
    "jwks": jwks,
    "keys": keys,
    "secret": legacy_secret,
    "secret_token": sign(legacy_secret.encode(), "HS256"),
    "cases": [{"name": n, "token": t, "want": w} for n, t, w in cases],
    "standby": {"jwk": public_jwk(ECAlgorithm, standby_key, "ec-2", alg="ES256"),
                "token": sign(standby_key, "ES256", "ec-2")},
}))

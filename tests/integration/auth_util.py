"""Keys, tokens and a configuration for the authentication tests: an HS256
secret inline, an RSA key as a PEM file, an EC key in a JWKS file, and two
API keys known by their SHA-256. Tokens are signed here with PyJWT."""
import base64
import hashlib
import json
import os
import time

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

ISSUER = "https://issuer.test"
AUDIENCE = "fpesa-test"
HS_SECRET = "a-shared-secret-of-the-test-suite-0123456789"
API_KEY_WRITER = "key-writer-5b0c1f0e8a7d4e2f"
API_KEY_READER = "key-reader-9d3e2c1b0a8f7e6d"


def sha256(text):
    return hashlib.sha256(text.encode()).hexdigest()


def b64url_uint(n):
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class Keys:
    """Writes the key files under folder and signs tokens with them."""

    def __init__(self, folder):
        self.folder = folder
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        self.rsa_pem_file = os.path.join(folder, "rsa.pem")
        with open(self.rsa_pem_file, "wb") as f:
            f.write(self.rsa.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
        nums = self.ec.public_key().public_numbers()
        rnums = self.rsa.public_key().public_numbers()
        self.jwks_file = os.path.join(folder, "jwks.json")
        with open(self.jwks_file, "w") as f:
            json.dump({"keys": [
                {"kty": "EC", "crv": "P-256", "kid": "ec1", "alg": "ES256", "use": "sig",
                 "x": base64.urlsafe_b64encode(nums.x.to_bytes(32, "big")).rstrip(b"=").decode(),
                 "y": base64.urlsafe_b64encode(nums.y.to_bytes(32, "big")).rstrip(b"=").decode()},
                {"kty": "RSA", "kid": "rsa-jwks", "alg": "RS256",
                 "n": b64url_uint(rnums.n), "e": b64url_uint(rnums.e)},
            ]}, f)

    def token(self, alg="HS256", scope="messages:write messages:read", sub="alice", exp=600,
              nbf=None, aud=AUDIENCE, iss=ISSUER, kid=None, roles=None, extra=None):
        now = int(time.time())
        claims = {"sub": sub, "iat": now}
        if exp is not None:
            claims["exp"] = now + exp
        if nbf is not None:
            claims["nbf"] = now + nbf
        if aud is not None:
            claims["aud"] = aud
        if iss is not None:
            claims["iss"] = iss
        if scope is not None:
            claims["scope"] = scope
        if roles is not None:
            claims["roles"] = roles
        claims.update(extra or {})
        headers = {}
        if alg == "HS256":
            key = HS_SECRET
            headers["kid"] = kid or "hs1"
        elif alg == "RS256":
            key = self.rsa
            headers["kid"] = kid or "rsa1"
        else:
            key = self.ec
            headers["kid"] = kid or "ec1"
        return jwt.encode(claims, key, algorithm=alg, headers=headers)


def config(keys, extra_http=""):
    """A configuration with one route per kind of rule; paths under /sec/."""
    return """
http:
  max_connections_per_client: 2000
%s
auth:
  realm: fpesa-test
  api_keys:
    - { name: writer, sha256: "%s", scopes: [messages:write, messages:read] }
    - { name: reader, sha256: "%s", scopes: [messages:read] }
  jwt:
    issuer: "%s"
    audience: "%s"
    leeway: 5s
    keys:
      - { kid: hs1, alg: HS256, secret: "%s" }
      - { kid: rsa1, alg: RS256, pem_file: "%s" }
    jwks_file: "%s"
  origins: ["http://allowed.test"]
endpoints:
  - path: /sec/open/
    method: POST
    mode: publish
    body: { type: object }
    auth: { anonymous: true }
  - path: /sec/any/
    method: POST
    mode: publish
    body: { type: object }
  - path: /sec/write/
    method: POST
    mode: publish
    body: { type: object }
    live: true
    auth: { scopes: [messages:write] }
    live_auth: { scopes: [messages:read] }
  - path: /sec/jwt-only/
    method: POST
    mode: publish
    body: { type: object }
    auth: { methods: [jwt], roles: [admin, ops] }
  - path: /sec/whoami/
    method: POST
    mode: rpc
    timeout: 5s
    body: { type: object }
handlers:
  - name: whoami
    plugin: echo.so
    queue: "/sec/whoami/:POST"
""" % (extra_http, sha256(API_KEY_WRITER), sha256(API_KEY_READER), ISSUER, AUDIENCE, HS_SECRET,
       keys.rsa_pem_file, keys.jwks_file)

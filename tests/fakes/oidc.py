"""A small OpenID Connect provider on 127.0.0.1 for the sign-in tests: the
discovery document, JWKS, an authorize endpoint that signs in whoever the
test says is signed in at the provider, a token endpoint that checks the
client secret and the PKCE verifier and returns RS256-signed ID tokens.

Each way a provider (or an attacker) can get it wrong is a switch:
`issuer`, `audience`, `expires_in`, `foreign_key` (sign with a key not in the
JWKS), `nonce` (a fixed nonce, as a replayed token would carry).
"""

import base64
import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlparse

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

CLIENT_ID = "triton-dashboard"
CLIENT_SECRET = "test-client-secret-0123456789"


@dataclass
class Person:
    sub: str
    username: str
    email: str
    groups: list[str] = field(default_factory=list)


class FakeOidcProvider:
    def __init__(self):
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.signed_in: Person | None = None
        self.codes: dict[str, dict] = {}
        self.authorize_requests: list[dict] = []
        self.token_requests: list[dict] = []
        self.reset_switches()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.issuer_url = f"http://127.0.0.1:{self._server.server_port}"
        # A short poll: shutdown() waits for the loop to look up (0.5 s by default).
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def reset_switches(self):
        self.issuer = None  # None: the real issuer
        self.audience = None  # None: CLIENT_ID
        self.expires_in = 300
        self.foreign_key = False
        self.nonce = None  # None: the nonce of the authorize request

    def close(self):
        self._server.shutdown()
        self._server.server_close()

    # --- what the endpoints answer -------------------------------------------

    def discovery(self) -> dict:
        base = self.issuer_url
        return {
            "issuer": base,
            "authorization_endpoint": f"{base}/authorize",
            "token_endpoint": f"{base}/token",
            "userinfo_endpoint": f"{base}/userinfo",
            "jwks_uri": f"{base}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
        }

    def jwks(self) -> dict:
        public = json.loads(RSAAlgorithm.to_jwk(self.key.public_key()))
        return {"keys": [{**public, "kid": "test-key", "use": "sig", "alg": "RS256"}]}

    def authorize(self, query: dict) -> tuple[int, dict, bytes]:
        self.authorize_requests.append(query)
        if query.get("client_id") != CLIENT_ID or query.get("response_type") != "code":
            return 400, {}, b"unknown client or response type"
        if self.signed_in is None:
            return 400, {}, b"nobody is signed in at the provider"
        code = secrets.token_urlsafe(16)
        self.codes[code] = {
            "person": self.signed_in,
            "redirect_uri": query["redirect_uri"],
            "nonce": query.get("nonce"),
            "challenge": query.get("code_challenge"),
            "method": query.get("code_challenge_method"),
        }
        location = query["redirect_uri"] + "?" + urlencode({"code": code, "state": query.get("state", "")})
        return 302, {"Location": location}, b""

    def token(self, form: dict) -> tuple[int, dict]:
        self.token_requests.append(form)
        grant = self.codes.pop(form.get("code", ""), None)  # single use
        if grant is None:
            return 400, {"error": "invalid_grant", "error_description": "unknown or used code"}
        if (form.get("client_id"), form.get("client_secret")) != (CLIENT_ID, CLIENT_SECRET):
            return 401, {"error": "invalid_client"}
        if form.get("redirect_uri") != grant["redirect_uri"]:
            return 400, {"error": "invalid_grant", "error_description": "redirect_uri differs"}
        verifier = form.get("code_verifier", "")
        digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if grant["method"] != "S256" or digest != grant["challenge"]:
            return 400, {"error": "invalid_grant", "error_description": "PKCE verification failed"}
        person, now = grant["person"], int(time.time())
        claims = {
            "iss": self.issuer or self.issuer_url,
            "aud": self.audience or CLIENT_ID,
            "sub": person.sub,
            "iat": now,
            "exp": now + self.expires_in,
            "nonce": self.nonce or grant["nonce"],
            "preferred_username": person.username,
            "email": person.email,
            "groups": list(person.groups),
        }
        key = self.other_key if self.foreign_key else self.key
        id_token = jwt.encode(claims, key, algorithm="RS256", headers={"kid": "test-key"})
        return 200, {"access_token": secrets.token_urlsafe(16), "token_type": "Bearer", "id_token": id_token}

    # --- HTTP plumbing --------------------------------------------------------

    def _handler(self):
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                url = urlparse(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                if url.path == "/.well-known/openid-configuration":
                    self._json(200, provider.discovery())
                elif url.path == "/jwks":
                    self._json(200, provider.jwks())
                elif url.path == "/authorize":
                    status, headers, body = provider.authorize(query)
                    self._send(status, headers, body)
                else:
                    self._json(404, {"error": "not_found"})

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                if urlparse(self.path).path == "/token":
                    status, body = provider.token(form)
                    self._json(status, body)
                else:
                    self._json(404, {"error": "not_found"})

            def _json(self, status, body):
                self._send(status, {"Content-Type": "application/json"}, json.dumps(body).encode())

            def _send(self, status, headers, body):
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        return Handler

#!/usr/bin/python3
"""Verify a treaty Txn-Token and read who is calling for whom.

For backend teams behind treaty (docs/downstream.md).  Needs only the
standard library and PyJWT with cryptography (Debian: python3-jwt,
python3-cryptography).

    downstream_verify.py --jwks-url http://gw:9191/.well-known/jwks.json \\
                         --audience trust-domain.example TOKEN
    downstream_verify.py --jwks-file jwks.json --audience td.example TOKEN
    downstream_verify.py --chain '"agent:planner", "agent:mailbot"'

Exit status 0 and the identity as JSON on stdout when the token is good,
1 with the reason on stderr when it is not.
"""

import argparse
import json
import sys

import jwt

TXN_TOKEN_TYP = "txntoken+jwt"


def verify_txn_token(token, audience, jwks_client=None, jwks=None,
                     leeway=0):
    """Return the verified claims of a Txn-Token, or raise
    jwt.InvalidTokenError (or PyJWKClientError) with the reason.

    Pass a jwt.PyJWKClient built once per process (it caches the key set
    and refetches once when a token names an unknown kid, which is how a
    rotated gateway key is picked up), or a parsed JWKS dict.
    """
    header = jwt.get_unverified_header(token)
    if header.get("typ") != TXN_TOKEN_TYP:
        raise jwt.InvalidTokenError("typ is not " + TXN_TOKEN_TYP)
    if header.get("alg") != "EdDSA":
        raise jwt.InvalidAlgorithmError("alg is not EdDSA")
    if jwks_client is not None:
        key = jwks_client.get_signing_key_from_jwt(token).key
    else:
        matches = [k for k in jwks.get("keys", [])
                   if k.get("kid") == header.get("kid")]
        if len(matches) != 1:
            raise jwt.InvalidTokenError("kid not in the JWKS")
        key = jwt.PyJWK(matches[0]).key
    return jwt.decode(
        token, key, algorithms=["EdDSA"], audience=audience, leeway=leeway,
        options={"require": ["exp", "iat", "aud", "sub", "txn", "scope"]})


def identity(claims):
    """The parts a backend usually authorizes on."""
    tctx = claims.get("tctx", {})
    return {
        "principal": claims["sub"],
        "principal_issuer": tctx.get("principal_issuer"),
        "actor": tctx.get("actor", claims["sub"]),
        "delegation_chain": tctx.get("delegation_chain", []),
        "caller_class": tctx.get("caller_class"),
        "scope": claims["scope"].split(),
        "request_id": claims["txn"],
        "client_address": claims.get("rctx", {}).get("req_ip"),
    }


def parse_sf_string_list(value):
    """Parse an RFC 9651 List of Strings, e.g. X-Delegation-Chain:
    '"agent:planner", "agent:mailbot"' -> ['agent:planner', 'agent:mailbot'].
    Strict: anything else (tokens, parameters, bad escapes) raises
    ValueError."""
    items, i, n = [], 0, len(value)
    while i < n and value[i] == " ":
        i += 1
    while i < n:
        if value[i] != '"':
            raise ValueError("expected a string at offset %d" % i)
        i += 1
        out = []
        while True:
            if i >= n:
                raise ValueError("unterminated string")
            c = value[i]
            if c == "\\":
                if i + 1 >= n or value[i + 1] not in '"\\':
                    raise ValueError("bad escape at offset %d" % i)
                out.append(value[i + 1])
                i += 2
            elif c == '"':
                i += 1
                break
            elif " " <= c <= "~":
                out.append(c)
                i += 1
            else:
                raise ValueError("bad character at offset %d" % i)
        items.append("".join(out))
        while i < n and value[i] in " \t":
            i += 1
        if i == n:
            break
        if value[i] != ",":
            raise ValueError("expected ',' at offset %d" % i)
        i += 1
        while i < n and value[i] in " \t":
            i += 1
        if i == n:
            raise ValueError("trailing comma")
    return items


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("token", nargs="?", help="the Txn-Token header value")
    ap.add_argument("--audience", help="your trust domain (treaty's "
                    "propagation.txn_token_audience)")
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--jwks-url", help="treaty's JWKS URL")
    src.add_argument("--jwks-file", help="a saved copy of the JWKS")
    ap.add_argument("--leeway", type=int, default=0,
                    help="clock skew allowed, seconds")
    ap.add_argument("--chain", help="parse an X-Delegation-Chain value "
                    "and print it")
    args = ap.parse_args()

    if args.chain is not None:
        try:
            print(json.dumps(parse_sf_string_list(args.chain)))
        except ValueError as e:
            print("refused: %s" % e, file=sys.stderr)
            return 1
        return 0
    if not args.token or not args.audience or not (args.jwks_url or
                                                   args.jwks_file):
        ap.error("TOKEN, --audience and --jwks-url or --jwks-file needed")
    try:
        if args.jwks_url:
            claims = verify_txn_token(args.token, args.audience,
                                      jwks_client=jwt.PyJWKClient(
                                          args.jwks_url),
                                      leeway=args.leeway)
        else:
            with open(args.jwks_file, encoding="utf-8") as f:
                claims = verify_txn_token(args.token, args.audience,
                                          jwks=json.load(f),
                                          leeway=args.leeway)
    except (jwt.PyJWTError, ValueError) as e:
        print("refused: %s" % e, file=sys.stderr)
        return 1
    print(json.dumps(identity(claims), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

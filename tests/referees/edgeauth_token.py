#!/usr/bin/env python3
"""Akamai's own token generator as a referee: prints an EdgeAuth (Auth Token
2.0) token made by the official `akamai-edgeauth` package from PyPI
(github.com/akamai/EdgeAuth-Token-Python), nothing of it re-implemented
here. Run with the venv's python that scripts/install-test-deps makes
(target/referees-venv/bin/python).

    edgeauth_token.py --key HEX --end N [--start N] --acl /live/news/* [--acl …]
                      [--ip A] [--session-id S] [--payload P] [--algorithm sha256|sha1|md5]
                      [--escape-early] [--salt S]
    edgeauth_token.py --key HEX --end N [--start N] --url /live/news/index.m3u8

It prints the token, the value of `__token__`, without the name. (EdgeAuth
generates tokens only; Akamai's verifier is the edge itself, not public.)
"""

import argparse
import sys

from akamai.edgeauth import EdgeAuth


def main(argv):
    parser = argparse.ArgumentParser()
    parser.add_argument("--key", required=True, help="the hex secret")
    parser.add_argument("--start", type=int)
    parser.add_argument("--end", type=int, required=True)
    parser.add_argument("--acl", action="append", default=[])
    parser.add_argument("--url")
    parser.add_argument("--ip")
    parser.add_argument("--session-id")
    parser.add_argument("--payload")
    parser.add_argument("--salt")
    parser.add_argument("--algorithm", default="sha256")
    parser.add_argument("--escape-early", action="store_true")
    args = parser.parse_args(argv)
    auth = EdgeAuth(
        key=args.key,
        algorithm=args.algorithm,
        start_time=args.start,
        end_time=args.end,
        ip=args.ip,
        session_id=args.session_id,
        payload=args.payload,
        salt=args.salt,
        escape_early=args.escape_early,
    )
    if args.url:
        print(auth.generate_url_token(args.url))
    else:
        acl = args.acl if len(args.acl) > 1 else args.acl[0]
        print(auth.generate_acl_token(acl))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

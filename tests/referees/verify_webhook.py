#!/usr/bin/env python3
"""The official Standard Webhooks library as a referee: verifies one
delivery playgate made with the PyPI package `standardwebhooks`
(github.com/standard-webhooks/standard-webhooks, libraries/python),
nothing of it re-implemented here. Run with the venv's python that
scripts/install-test-deps makes (target/referees-venv/bin/python).

    verify_webhook.py < {"secret": "whsec_…", "headers": {"webhook-id": …,
                         "webhook-timestamp": …, "webhook-signature": …},
                         "body": "<the body as received>"}

Prints the verified payload as JSON and exits 0, or prints why the library
refused it and exits 1.
"""

import json
import sys

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def main():
    given = json.load(sys.stdin)
    try:
        payload = Webhook(given["secret"]).verify(given["body"], given["headers"])
    except WebhookVerificationError as refused:
        print(f"refused: {refused}")
        return 1
    print(json.dumps(payload))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The SQS source's helper process: boto3 can only block, so it runs here, not in the daemon.

    python -m workerd.sources.sqs_probe --queue-url URL --region R [--endpoint-url U]
                                        [--include-in-flight] --timeout SECONDS

Prints `{"ready": true}` once boto3 is loaded, then answers each line read on stdin
with one JSON line: `{"depth": N}` or `{"error": "why"}`. It ends at EOF on stdin
(the daemon closed its end or is gone). Credentials come from boto3's usual chain
(environment, shared files, instance role). The client makes one attempt per request,
bounded by `--timeout` for the connect and again for the answer.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m workerd.sources.sqs_probe")
    parser.add_argument("--queue-url", required=True)
    parser.add_argument("--region", required=True)
    parser.add_argument("--endpoint-url")
    parser.add_argument("--include-in-flight", action="store_true")
    parser.add_argument("--timeout", type=float, default=5.0)
    args = parser.parse_args()

    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    client: Any = boto3.client(
        "sqs",
        region_name=args.region,
        endpoint_url=args.endpoint_url,
        config=Config(
            connect_timeout=args.timeout,
            read_timeout=args.timeout,
            retries={"max_attempts": 1, "mode": "standard"},
        ),
    )
    names = ["ApproximateNumberOfMessages"]
    if args.include_in_flight:
        names.append("ApproximateNumberOfMessagesNotVisible")
    answer({"ready": True})
    for _ in sys.stdin:
        try:
            attributes = client.get_queue_attributes(QueueUrl=args.queue_url, AttributeNames=names)["Attributes"]
            answer({"depth": sum(int(attributes[name]) for name in names)})
        except (BotoCoreError, ClientError, KeyError, ValueError) as exc:
            answer({"error": " ".join(str(exc).split()) or type(exc).__name__})
    return 0


def answer(message: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())

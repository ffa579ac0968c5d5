"""moto_server, with its DynamoDB made linearizable.

moto_server serves each request on a thread of its own, and moto's DynamoDB
is not safe under threads: TransactWriteItems snapshots the table, applies
its items one by one and, when a condition fails, puts the snapshot back,
erasing what other requests wrote meanwhile (a committed rotation vanishes);
UpdateItem serializes the item it returns after the update, unguarded, so a
concurrent update can make two atomic ADDs answer the same total, or fail
the answer after the write committed (the SDK retries, and the ADD counts
twice). DynamoDB itself serializes each request against every other write.
So each DynamoDB request here is handled, answer included, under one lock;
everything else (KMS included) is moto_server unchanged. Same flags as
moto_server.
"""

import functools
import threading

from moto.dynamodb.responses import DynamoHandler
from moto.server import main

_lock = threading.Lock()
_call_action = DynamoHandler.call_action


@functools.wraps(_call_action)
def _locked_call_action(self):
    with _lock:
        return _call_action(self)


DynamoHandler.call_action = _locked_call_action

if __name__ == "__main__":
    main()

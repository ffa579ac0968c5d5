"""moto_server, with its DynamoDB back end made linearizable.

moto_server serves each request on a thread of its own, and moto's DynamoDB
TransactWriteItems is not atomic under threads: it snapshots the table,
applies the items one by one and, when a condition fails, puts the snapshot
back, erasing whatever other requests wrote meanwhile (a committed rotation
vanishes) and letting readers see a half-applied transaction. DynamoDB
itself serializes transactions against every other write. So every call
into the DynamoDB back end here holds one lock; everything else (KMS
included) is moto_server unchanged. Same flags as moto_server.
"""

import functools
import inspect
import threading

from moto.dynamodb.models import DynamoDBBackend
from moto.server import main

_lock = threading.RLock()


def _locked(method):
    @functools.wraps(method)
    def call(*args, **kwargs):
        with _lock:
            return method(*args, **kwargs)

    return call


for _name, _attr in list(vars(DynamoDBBackend).items()):
    if inspect.isfunction(_attr) and not _name.startswith("_"):
        setattr(DynamoDBBackend, _name, _locked(_attr))

if __name__ == "__main__":
    main()

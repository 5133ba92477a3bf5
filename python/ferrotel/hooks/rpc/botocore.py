"""botocore (and boto3, which calls through it): one CLIENT span per AWS API call (issue 16).

``botocore.client.BaseClient._make_api_call`` is replaced by the native hook (``BotocoreHook``,
``src/hooks/rpc/botocore.rs``): every client operation of every service passes there once, its
retries inside. The span (``S3.GetObject``, the AWS SDK conventions) is current while the call
runs and is a leaf: the HTTP request botocore sends through urllib3 makes no second span and no
header is added to it (the request's signature is botocore's alone). Nothing is injected into
the call's parameters (SQS message attributes stay the application's).
"""

from ferrotel import _native

_SCOPE = "ferrotel.botocore"


def instrument(client_module):
    cls = getattr(client_module, "BaseClient", None)
    original = cls.__dict__.get("_make_api_call") if cls is not None else None
    if original is None or isinstance(original, _native.MethodHook):
        return
    cls._make_api_call = _native.BotocoreHook(_SCOPE).wrap(original)

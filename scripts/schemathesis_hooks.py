"""Schemathesis hooks for scripts/schemathesis.sh (loaded through SCHEMATHESIS_HOOKS).

NDJSON uploads get a serializer, and the YAML exports a deserializer (below).

The run authenticates with the bootstrap admin token. Fuzzing `POST /tokens` creates further
admin tokens, after which `DELETE /tokens/{id}` could revoke the run's own token and turn every
later request into a 401. A request that would revoke it is sent for a sacrificial token instead
(ids taken from the environment, set by the script after seeding).
"""

import json
import os

import schemathesis
import yaml
from schemathesis.core.media_types import YAML_MEDIA_TYPES

PROTECTED = int(os.environ["SCHEMATHESIS_PROTECTED_TOKEN_ID"])
SACRIFICIAL = int(os.environ["SCHEMATHESIS_SACRIFICIAL_TOKEN_ID"])


def _as_id(value):
    try:
        return int(str(value).strip())
    except ValueError:
        return None


@schemathesis.hook
def before_call(context, case, kwargs):
    if case.method.upper() != "DELETE" or not case.path.endswith("/tokens/{id}"):
        return
    params = case.path_parameters or {}
    if _as_id(params.get("id")) == PROTECTED:
        params["id"] = SACRIFICIAL


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx, value):
    """An upload as NDJSON: the schema describes one line (a row); a list is sent as many lines."""
    if isinstance(value, bytes):
        return value
    rows = value if isinstance(value, list) else [value]
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


@schemathesis.deserializer(*YAML_MEDIA_TYPES)
def yaml_text(ctx, response):
    """The YAML exports (OpenSLO, Prometheus rules) are declared as `type: string`: the body is
    checked to be YAML, then validated as the text it is rather than as the parsed document."""
    text = response.content.decode(response.encoding or "utf-8")
    yaml.safe_load(text)
    return text

"""Loads a kubeconfig with the official Kubernetes Python client and lists namespaces, several
times in one process, as a long-lived program on that client does (an automation service, a
scheduler, a notebook). The client runs the exec plugin on every `load_kube_config` and keeps no
credential between loads.

    python3 load_kube_config.py KUBECONFIG LOADS INTERVAL_SECONDS

Prints one JSON line per load on stdout: the SHA-256 of the bearer token the client used (never
the token), the HTTP status of the list (200, or the API server's error status) and the
namespaces listed. Nothing else is printed on stdout; the client's own log goes to stderr.
"""

import hashlib
import json
import sys
import time

import kubernetes
from kubernetes import client, config


def main():
    path, loads, interval = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    for load in range(loads):
        if load:
            time.sleep(interval)
        result = {"load": load + 1, "client_version": kubernetes.__version__}
        try:
            config.load_kube_config(config_file=path)
            bearer = client.Configuration.get_default_copy().api_key.get("BearerToken", "")
            token = bearer.removeprefix("Bearer ")
            result["token_sha256"] = (
                hashlib.sha256(token.encode()).hexdigest() if token else None
            )
            names = [ns.metadata.name for ns in client.CoreV1Api().list_namespace().items]
            result.update(status=200, namespaces=names)
        except client.exceptions.ApiException as e:
            result.update(status=e.status, error=str(e.reason))
        except Exception as e:  # a failed load: reported, the next load still runs
            result.update(status=None, error=f"{type(e).__name__}: {e}")
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()

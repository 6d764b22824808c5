#!/usr/bin/python3
"""Everyday CRUD and a watch with the official Python client (Debian's python3-kubernetes).

Usage: /usr/bin/python3 crud.py KUBECONFIG

Prints one line per step ("step: detail") and exits non-zero on the first failure.
apiserver/clients_test.go runs it against a test API server and reads those lines.
"""

import json
import sys
import threading
import time
import uuid

import kubernetes
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException


def step(name, detail):
    print(f"{name}: {detail}", flush=True)


def entries(data):
    """Data as sorted [key, value] pairs in compact JSON, printed the same by crud.mjs."""
    return json.dumps(sorted((data or {}).items()), separators=(",", ":"))


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def main(kubeconfig):
    api_client = config.new_client_from_config(config_file=kubeconfig)
    v1 = client.CoreV1Api(api_client)
    step("client", f"kubernetes {kubernetes.__version__} on python {sys.version.split()[0]}")

    ns = "crud-py-" + uuid.uuid4().hex[:6]
    v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    step("namespace", f"created {ns}")

    cm = v1.create_namespaced_config_map(ns, client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="crud", labels={"app": "crud"}),
        data={"a": "b"}))
    check(cm.metadata.resource_version, "created object has no resourceVersion")
    v1.create_namespaced_config_map(ns, client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="other", labels={"app": "else"}), data={"x": "y"}))
    step("create", f"configmap crud uid={str(bool(cm.metadata.uid)).lower()} data.a={cm.data['a']}")

    got = v1.read_namespaced_config_map("crud", ns)
    check(got.data == {"a": "b"}, f"get returned data {got.data}")
    check(got.metadata.labels == {"app": "crud"}, f"get returned labels {got.metadata.labels}")
    step("get", f"configmap crud data.a={got.data['a']}")

    lst = v1.list_namespaced_config_map(ns, label_selector="app=crud")
    names = [i.metadata.name for i in lst.items]
    check(names == ["crud"], f"list app=crud returned {names}")
    check(lst.metadata.resource_version, "list has no resourceVersion")
    list_rv = lst.metadata.resource_version
    step("list", f"app=crud -> {','.join(names)}")

    # The generated patch method sends a dict as a strategic merge patch; a client whose
    # default Content-Type header is merge-patch sends a JSON merge patch instead.
    merge_client = config.new_client_from_config(config_file=kubeconfig)
    merge_client.set_default_header("Content-Type", "application/merge-patch+json")
    patched = client.CoreV1Api(merge_client).patch_namespaced_config_map(
        "crud", ns, {"data": {"c": "d", "a": None}, "metadata": {"labels": {"patched": "yes"}}})
    check(patched.data == {"c": "d"}, f"merge patch gave data {patched.data}")
    check(patched.metadata.labels == {"app": "crud", "patched": "yes"},
          f"merge patch gave labels {patched.metadata.labels}")
    step("patch", f"merge data={entries(patched.data)} labels.patched={patched.metadata.labels['patched']}")

    # Watch from the list's resourceVersion (before the patch above): the patch replays as
    # MODIFIED; a second patch made meanwhile arrives live as another MODIFIED.
    def patch_later():
        time.sleep(1)
        v1.patch_namespaced_config_map("crud", ns, {"data": {"e": "f"}})

    t = threading.Thread(target=patch_later)
    t.start()
    w = watch.Watch()
    seen = []
    try:
        for ev in w.stream(v1.list_namespaced_config_map, ns, resource_version=list_rv,
                           field_selector="metadata.name=crud", timeout_seconds=20,
                           _request_timeout=30):
            obj = ev["object"]
            seen.append((ev["type"], obj.metadata.name, dict(obj.data or {})))
            step("watch", f"{ev['type']} {obj.metadata.name} data={entries(obj.data)}")
            if obj.data and obj.data.get("e") == "f":
                w.stop()
    except Exception as e:
        # KeyError 'object' here means the server answered with something other than
        # watch events (a list, say).
        raise AssertionError(f"watch stream: {type(e).__name__}: {e}") from e
    finally:
        t.join()
    check(any(s[0] == "MODIFIED" and s[2] == {"c": "d"} for s in seen),
          f"watch did not replay the merge patch: {seen}")
    check(any(s[0] == "MODIFIED" and s[2].get("e") == "f" for s in seen),
          f"watch did not see the patch made meanwhile: {seen}")

    v1.delete_namespaced_config_map("crud", ns)
    try:
        v1.read_namespaced_config_map("crud", ns)
        raise AssertionError("configmap still there after delete")
    except ApiException as e:
        check(e.status == 404, f"get after delete: {e.status} {e.reason}")
    step("delete", "configmap crud, then get -> 404")

    v1.delete_namespace(ns)
    step("cleanup", f"deleted namespace {ns}")
    step("done", "ok")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: crud.py KUBECONFIG", file=sys.stderr)
        sys.exit(2)
    try:
        main(sys.argv[1])
    except Exception as e:  # any failure: say what, exit non-zero
        print(f"FAIL: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        sys.exit(1)

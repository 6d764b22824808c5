#!/usr/bin/python3
"""Custom resources with the official Python client's CustomObjectsApi (python3-kubernetes).

Usage: /usr/bin/python3 customobjects.py KUBECONFIG

Defines a CronTab CustomResourceDefinition through ApiextensionsV1Api, waits for it to be
Established, then creates, gets, lists, merge-patches, writes the status of, watches and
deletes CronTabs, and deletes the definition. Prints one line per step ("step: detail") and
exits non-zero on the first failure; apiserver/clients_test.go reads those lines.
"""

import sys
import threading
import time

import kubernetes
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

GROUP, VERSION, PLURAL, NS = "stable.example.com", "v1", "crontabs", "default"


def step(name, detail):
    print(f"{name}: {detail}", flush=True)


def check(cond, what):
    if not cond:
        raise AssertionError(what)


CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"{PLURAL}.{GROUP}"},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {"plural": PLURAL, "singular": "crontab", "kind": "CronTab", "shortNames": ["ct"]},
        "versions": [{
            "name": VERSION, "served": True, "storage": True,
            "subresources": {"status": {}},
            "schema": {"openAPIV3Schema": {
                "type": "object",
                "properties": {
                    "spec": {"type": "object", "properties": {
                        "cronSpec": {"type": "string"},
                        "image": {"type": "string", "default": "busybox"},
                        "replicas": {"type": "integer", "minimum": 1},
                    }},
                    "status": {"type": "object", "properties": {"replicas": {"type": "integer"}}},
                },
            }},
        }],
    },
}


def crontab(name, spec, replicas):
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "CronTab",
            "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"cronSpec": spec, "replicas": replicas}}


def main(kubeconfig):
    api_client = config.new_client_from_config(config_file=kubeconfig)
    ext = client.ApiextensionsV1Api(api_client)
    custom = client.CustomObjectsApi(api_client)
    step("client", f"kubernetes {kubernetes.__version__} on python {sys.version.split()[0]}")

    ext.create_custom_resource_definition(CRD)
    for _ in range(300):
        crd = ext.read_custom_resource_definition(f"{PLURAL}.{GROUP}")
        conds = {c.type: c.status for c in (crd.status.conditions or [])}
        if conds.get("Established") == "True":
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"CRD never established: {conds}")
    step("crd", f"{PLURAL}.{GROUP} established, accepted plural {crd.status.accepted_names.plural}")

    created = custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, crontab("nightly", "0 0 * * *", 2))
    check(created["metadata"]["uid"], "created object has no uid")
    step("create", f"crontab nightly image={created['spec']['image']} generation={created['metadata']['generation']}")
    custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, crontab("hourly", "0 * * * *", 1))

    got = custom.get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "nightly")
    step("get", f"{got['kind']} {got['metadata']['name']} cronSpec={got['spec']['cronSpec']}")

    lst = custom.list_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, label_selector="app=hourly")
    step("list", f"app=hourly -> {','.join(i['metadata']['name'] for i in lst['items'])}")
    every = custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)
    step("list", f"all namespaces -> {','.join(sorted(i['metadata']['name'] for i in every['items']))}")
    list_rv = lst["metadata"]["resourceVersion"]

    try:
        custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, crontab("bad", "* * * * *", 0))
        raise AssertionError("a CronTab with replicas 0 was accepted")
    except ApiException as e:
        check(e.status == 422, f"invalid create: {e.status} {e.body}")
        step("invalid", f"{e.status} {e.reason}")

    patched = custom.patch_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "nightly", {"spec": {"replicas": 3}})
    step("patch", f"replicas={patched['spec']['replicas']} generation={patched['metadata']['generation']}")

    status = custom.patch_namespaced_custom_object_status(GROUP, VERSION, NS, PLURAL, "nightly",
                                                          {"status": {"replicas": 3}})
    step("status", f"replicas={status['status']['replicas']} generation={status['metadata']['generation']}")

    # Watch from the list's resourceVersion: the patches above replay as MODIFIED, and a
    # delete made meanwhile arrives as DELETED.
    def delete_later():
        time.sleep(1)
        custom.delete_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "nightly")

    t = threading.Thread(target=delete_later)
    t.start()
    w = watch.Watch()
    events = []
    try:
        for ev in w.stream(custom.list_namespaced_custom_object, GROUP, VERSION, NS, PLURAL,
                           resource_version=list_rv, field_selector="metadata.name=nightly",
                           timeout_seconds=20, _request_timeout=30):
            events.append(ev["type"])
            if ev["type"] == "DELETED":
                w.stop()
    finally:
        t.join()
    step("watch", " ".join(events))

    try:
        custom.get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "nightly")
        raise AssertionError("crontab still there after delete")
    except ApiException as e:
        check(e.status == 404, f"get after delete: {e.status} {e.reason}")
    step("delete", "crontab nightly, then get -> 404")

    ext.delete_custom_resource_definition(f"{PLURAL}.{GROUP}")
    for _ in range(300):
        try:
            custom.list_namespaced_custom_object(GROUP, VERSION, NS, PLURAL)
        except ApiException as e:
            if e.status == 404:
                break
        time.sleep(0.1)
    else:
        raise AssertionError("crontabs still served after the CRD was deleted")
    step("cleanup", "deleted the CRD, crontabs -> 404")
    step("done", "ok")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: customobjects.py KUBECONFIG", file=sys.stderr)
        sys.exit(2)
    try:
        main(sys.argv[1])
    except Exception as e:  # any failure: say what, exit non-zero
        print(f"FAIL: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        sys.exit(1)

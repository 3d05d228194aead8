"""The re-check lists objects in pages: every object of every page is seen (a real API server's continue tokens)."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from storage.provisioner import recheck


def test_paged_lists_every_object_across_pages(api: Any, namespace: str, monkeypatch: pytest.MonkeyPatch) -> None:
    core = client.CoreV1Api(api)
    for n in range(7):
        core.create_namespaced_config_map(namespace, {"metadata": {"name": f"cm-{n}", "labels": {"paging": "yes"}}})
    monkeypatch.setattr(recheck, "PAGE", 3)
    calls: list[dict[str, Any]] = []

    def listing(**kw: Any) -> Any:
        calls.append(kw)
        # only this test's: the controller-manager adds kube-root-ca.crt to every namespace, at a time of its own
        return core.list_namespaced_config_map(namespace, label_selector="paging=yes", **kw)

    names = [cm.metadata.name for cm in recheck.paged(listing)]

    assert sorted(names) == [f"cm-{n}" for n in range(7)]
    assert len(calls) == 3 and all(c["limit"] == 3 for c in calls) and "_continue" in calls[-1]

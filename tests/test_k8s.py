"""The Kubernetes Job backend on paper: generated manifests, validated offline.

kubernetes-validate bundles Kubernetes' own JSON schemas (strict: unknown fields are
errors), so a manifest that a cluster would reject fails here without a cluster.
"""

from __future__ import annotations

import time

import kubernetes_validate
import pytest
from pydantic import ValidationError

from runner.distributed.k8s import K8sPhase, manifests, phase_job
from runner.models import Limits

K8S_VERSION = "1.33"
DIGEST = "fixrunner-env@sha256:" + "ab" * 32


def _phases() -> list[K8sPhase]:
    limits = Limits(cpus=1.5, memory_mb=1024, timeout_s=300, tmpfs_mb=256)
    return [
        K8sPhase(job_id="20261125T110000-abc123", phase=phase, image=DIGEST,
                 command=["python", "-m", "pytest", "-q"], limits=limits, owner="default")
        for phase in ("baseline", "candidate", "lint")
    ]  # fmt: skip


@pytest.fixture
def docs() -> list[dict]:
    return manifests(_phases(), deadline_epoch=time.time() + 600)


def test_every_manifest_validates_against_the_kubernetes_schemas(docs: list[dict]) -> None:
    kinds = [d["kind"] for d in docs]
    assert kinds == ["Namespace", "NetworkPolicy", "RuntimeClass", "Job", "Job", "Job"]
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_an_unknown_field_is_caught_by_the_strict_schema(docs: list[dict]) -> None:
    job = docs[3]
    job["spec"]["template"]["spec"]["containers"][0]["securityContxt"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(job, K8S_VERSION, strict=True)


def test_a_phase_job_runs_once_with_a_deadline_and_a_ttl() -> None:
    job = phase_job(_phases()[0], deadline_epoch=1.0)
    assert job["spec"]["backoffLimit"] == 0
    assert job["spec"]["activeDeadlineSeconds"] == 300
    assert job["spec"]["ttlSecondsAfterFinished"] == 300
    assert job["metadata"]["name"] == "fxr-20261125t110000-abc123-baseline"
    assert job["metadata"]["labels"]["io.fixrunner/job"] == "20261125T110000-abc123"


def test_the_pod_is_locked_down() -> None:
    pod = phase_job(_phases()[1], deadline_epoch=1.0)["spec"]["template"]["spec"]
    assert pod["runtimeClassName"] == "gvisor"
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert container["resources"]["requests"] == container["resources"]["limits"]
    assert container["resources"]["limits"]["cpu"] == "1500m"
    assert {m["mountPath"]: m.get("readOnly", False) for m in container["volumeMounts"]} == {
        "/work": True, "/results": False, "/tmp": False,
    }  # fmt: skip


def test_the_namespace_is_restricted_and_denies_all_traffic(docs: list[dict]) -> None:
    namespace, policy = docs[0], docs[1]
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert policy["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}


def test_images_are_referenced_by_digest_only() -> None:
    with pytest.raises(ValidationError, match="digest"):
        K8sPhase(job_id="j", phase="baseline", image="fixrunner-env:latest", command=["true"])


def test_without_gvisor_there_is_no_runtime_class() -> None:
    phase = _phases()[0].model_copy(update={"runtime_class": None})
    docs = manifests([phase], deadline_epoch=1.0)
    assert [d["kind"] for d in docs] == ["Namespace", "NetworkPolicy", "Job"]
    assert "runtimeClassName" not in docs[-1]["spec"]["template"]["spec"]
    kubernetes_validate.validate(docs[-1], K8S_VERSION, strict=True)

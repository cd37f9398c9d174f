"""``deploy/``: the local cluster (nginx + two muxtrio nodes + Redis + Postgres, real processes on loopback) serves
through nginx with the official SDK, and ``compose.yaml`` names the same services and ports (containers cannot be
built here: docs/deploy.md)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2
import openai
import psycopg
import pytest
import yaml

from deploy.local_cluster import DEPLOY, SERVICES, Cluster, compose_nginx
from tests.services import free_port, postgres_bin

MISSING = [name for name in ("nginx", "redis-server") if shutil.which(name) is None and not Path(
    f"/usr/sbin/{name}").exists()] + ([] if postgres_bin() else ["postgresql"])


def test_compose_names_the_local_clusters_services_and_ports() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == set(SERVICES)
    assert services["nginx"]["ports"] == [f"{SERVICES['nginx']}:{SERVICES['nginx']}"]
    for name in ("muxtrio-1", "muxtrio-2"):
        node = services[name]
        env = node["environment"]
        assert env["MUXTRIO_PORT"] == str(SERVICES[name]) and node["expose"] == [str(SERVICES[name])]
        assert env["MUXTRIO_STATE_URL"] == f"redis://redis:{SERVICES['redis']}/0"
        assert env["MUXTRIO_USAGE_DSN"].startswith(f"postgresql://muxtrio@postgres:{SERVICES['postgres']}/")
        assert node["build"]["dockerfile"] == "deploy/Dockerfile"
        assert node["volumes"] == ["./muxtrio.yaml:/etc/muxtrio/muxtrio.yaml:ro"]  # the local cluster's config
    assert services["redis"]["command"][:3] == ["redis-server", "--port", str(SERVICES["redis"])]
    assert services["postgres"]["command"] == ["postgres", "-p", str(SERVICES["postgres"])]
    # nginx: the same template as the local cluster's, rendered for service names
    assert (DEPLOY / "nginx.compose.conf").read_text() == compose_nginx()
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert dockerfile.count("FROM ") == 2 and "USER muxtrio" in dockerfile and "HEALTHCHECK" in dockerfile


MANAGEMENT_KEY = "mgmt-key-cluster-test-0001"


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    if MISSING:
        pytest.skip(f"Debian packages not installed: {', '.join(MISSING)}")
    run_dir = Path(tempfile.mkdtemp(prefix="muxtrio-cluster-"))
    run_dir.chmod(0o755)  # postgres runs as its own user when the tests run as root: it must reach its data dir
    running = Cluster(run_dir, ports={name: free_port() for name in SERVICES},
                      env={"MUXTRIO_MANAGEMENT_KEY": MANAGEMENT_KEY})
    running.start()
    try:
        yield running
    finally:
        running.stop_all()
        shutil.rmtree(run_dir, ignore_errors=True)


def test_local_cluster_serves_through_nginx_on_both_nodes(cluster: Cluster) -> None:
    sdk = openai.OpenAI(base_url=cluster.url + "/v1", api_key=cluster.api_key, max_retries=0, timeout=30)
    nodes = set()
    for _ in range(6):
        raw = sdk.chat.completions.with_raw_response.create(
            model="muxtrio-echo", messages=[{"role": "user", "content": "ping"}])
        assert raw.parse().choices[0].message.content == "ping"
        nodes.add(raw.headers["x-muxtrio-node"])
    assert nodes == {f"127.0.0.1:{cluster.ports['muxtrio-1']}", f"127.0.0.1:{cluster.ports['muxtrio-2']}"}
    stream = sdk.chat.completions.create(model="muxtrio-echo", messages=[{"role": "user", "content": "a b c"}],
                                         stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "a b c"
    live = subprocess.run(["redis-cli", "-p", str(cluster.ports["redis"]), "ZCARD", "muxtrio:nodes"],
                          capture_output=True, text=True, check=True).stdout.strip()
    assert live == "2"
    with psycopg.connect(cluster.postgres_dsn) as db:  # both nodes write usage to the one Postgres
        for _ in range(300):  # a hang detector (60 s), not a timing requirement: records flush every few seconds
            rows = db.execute("select count(*) from usage_records").fetchone()
            if rows and rows[0] >= 7:
                break
            subprocess.run(["sleep", "0.2"], check=True)
        assert rows is not None and rows[0] >= 7
    cluster.stop("muxtrio-1")  # one node gone: nginx sends everything to the other
    for _ in range(3):
        raw = sdk.chat.completions.with_raw_response.create(
            model="muxtrio-echo", messages=[{"role": "user", "content": "still"}])
        assert raw.parse().choices[0].message.content == "still"
    assert raw.headers["x-muxtrio-node"].endswith(f":{cluster.ports['muxtrio-2']}")


def test_a_client_key_rpm_limit_holds_across_two_nodes_behind_nginx(cluster: Cluster) -> None:
    """30 requests per minute admits 30 (± 1) through nginx over both nodes, not 60: both nodes lease the key's
    permits from the one Postgres."""
    created = httpx2.post(cluster.url + "/v1/management/client-keys",
                          headers={"Authorization": f"Bearer {MANAGEMENT_KEY}"},
                          json={"name": "team-a", "limits": {"rpm": 30}}, timeout=30.0)
    assert created.status_code == 201, created.text
    secret = created.json()["data"]["secret"]

    def one_request(_: int) -> tuple[int, str]:
        with httpx2.Client(timeout=30.0) as client:
            response = client.post(cluster.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {secret}"},
                                   json={"model": "muxtrio-echo", "messages": [{"role": "user", "content": "hi"}]})
        return response.status_code, response.headers.get("x-muxtrio-node", "")

    for _attempt in range(2):  # a burst that straddles a minute boundary counts two windows: run it again
        left = 60.0 - time.time() % 60.0
        if left < 20:
            time.sleep(left + 0.05)
        minute = int(time.time() // 60)
        with ThreadPoolExecutor(max_workers=6) as pool:
            answers = list(pool.map(one_request, range(60)))
        if int(time.time() // 60) == minute:
            break
        time.sleep(60.0 - time.time() % 60.0 + 0.05)  # the next attempt starts in a fresh minute
    statuses = [status for status, _ in answers]
    assert set(statuses) <= {200, 429}
    assert 29 <= statuses.count(200) <= 31, statuses.count(200)
    served_by = {node for status, node in answers if status == 200}
    assert len(served_by) == 2  # both nodes admitted some


def test_a_key_revoked_on_one_node_is_refused_by_the_other_through_the_notification(tmp_path: Path) -> None:
    """Keys are reloaded every hour here (client-keys.refresh-interval: 1h), so only the shared-state notification
    can carry a revocation made through node 1 to node 2 while the test runs."""
    if MISSING:
        pytest.skip(f"Debian packages not installed: {', '.join(MISSING)}")
    config = yaml.safe_load((DEPLOY / "muxtrio.yaml").read_text())
    config["client-keys"] = {"refresh-interval": "1h"}
    path = tmp_path / "muxtrio.yaml"
    path.write_text(yaml.safe_dump(config))
    run_dir = Path(tempfile.mkdtemp(prefix="muxtrio-cluster-"))
    run_dir.chmod(0o755)
    running = Cluster(run_dir, path, ports={name: free_port() for name in SERVICES},
                      env={"MUXTRIO_MANAGEMENT_KEY": MANAGEMENT_KEY})
    running.start()
    try:
        one, two = (f"http://127.0.0.1:{running.ports[n]}" for n in ("muxtrio-1", "muxtrio-2"))
        management = {"Authorization": f"Bearer {MANAGEMENT_KEY}"}
        created = httpx2.post(one + "/v1/management/client-keys", headers=management, json={"name": "team-b"},
                              timeout=30.0)
        assert created.status_code == 201, created.text
        secret, key_id = created.json()["data"]["secret"], created.json()["data"]["key"]["id"]

        def status_on_two() -> int:
            return httpx2.post(two + "/v1/chat/completions", headers={"Authorization": f"Bearer {secret}"},
                               json={"model": "muxtrio-echo", "messages": [{"role": "user", "content": "hi"}]},
                               timeout=30.0).status_code

        assert status_on_two() == 200  # node 2 knows the key (and caches it for an hour)
        revoked = httpx2.post(f"{one}/v1/management/client-keys/{key_id}/revoke", headers=management, timeout=30.0)
        assert revoked.status_code == 200, revoked.text
        for _ in range(100):  # bounded: 20 s, far below the hour node 2 would otherwise keep the key
            if status_on_two() == 401:
                break
            time.sleep(0.2)
        assert status_on_two() == 401
    finally:
        running.stop_all()
        shutil.rmtree(run_dir, ignore_errors=True)

"""Video chunks on a real Ray cluster on this machine: two nodes (``ray.cluster_utils.Cluster``), one CPU each,
small object stores. The cluster's output must be byte for byte the local run's, also when a worker is killed in
the middle of a chunk (Ray retries the task; the half-written segment never counts)."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys

import pytest
from ray_helpers import two_node_cluster
from video_helpers import REPO, WEIGHTS, decoded, make_clip

from hat_plugin.options import EngineOptions
from hat_plugin.video import EncoderSettings, VideoJob
from hat_plugin.workers import RayRunner, ray_runner

ray = pytest.importorskip("ray")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster():
    with two_node_cluster() as nodes:
        yield nodes


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def local_reference(clip, out, chunk_frames):
    """The same job on this machine, as each single-CPU worker runs it: a fresh process on one thread. (In this test
    process, after the suite's other tests, two x264 runs of the same job have given different bytes, a state
    not isolated; the workers are fresh processes too.)"""
    script = (
        "import sys, torch\n"
        "from hat_plugin.options import EngineOptions\n"
        "from hat_plugin.video import EncoderSettings, VideoJob\n"
        "torch.set_num_threads(1)\n"
        "VideoJob(sys.argv[1], sys.argv[2], sys.argv[3], encoder=EncoderSettings('x264', preset='veryfast'),\n"
        "         chunk_frames=int(sys.argv[4]), engine=EngineOptions(device='cpu', precision='fp32')).run()\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    subprocess.run(
        [sys.executable, "-c", script, str(clip), str(out), str(WEIGHTS), str(chunk_frames)],
        env=env,
        check=True,
        timeout=600,
    )


def cluster_job(clip, out, chunk_frames, runner):
    return VideoJob(
        clip,
        out,
        WEIGHTS,
        encoder=EncoderSettings("x264", preset="veryfast"),
        chunk_frames=chunk_frames,
        engine=EngineOptions(device="cpu", precision="fp32"),
        ray=runner,
    )


def test_cluster_output_is_the_local_output(tmp_path, cluster):
    clip = make_clip(tmp_path / "in.mkv", frames=9, audio=True)
    local = tmp_path / "local.mkv"
    local_reference(clip.path, local, 3)
    out = tmp_path / "cluster.mkv"
    seen = []
    result = cluster_job(clip.path, out, 3, RayRunner("auto")).run(lambda done, total: seen.append((done, total)))
    assert (result.frames, result.chunks) == (9, 3)
    assert seen[-1] == (9, 9) and all(a[0] <= b[0] for a, b in zip(seen, seen[1:], strict=False))
    assert [pts for pts, _ in decoded(out)] == clip.pts
    assert digest(out) == digest(local)


def test_a_worker_killed_mid_chunk_is_retried_and_the_output_is_unchanged(tmp_path, cluster, monkeypatch):
    monkeypatch.setattr(ray_runner, "_POLL", 0.03)  # the driver looks often, to catch a chunk under way
    clip = make_clip(tmp_path / "in.mkv", frames=16, width=192, height=128)  # frames slow enough to be caught
    local = tmp_path / "local.mkv"
    local_reference(clip.path, local, 8)
    runner = RayRunner("auto")
    killed: list[int] = []

    def progress(done, total):
        for status in runner.workers.values():
            if not killed and 0 < status.done < 8 and status.pid != os.getpid():
                os.kill(status.pid, signal.SIGKILL)
                killed.append(status.unit)

    out = tmp_path / "cluster.mkv"
    result = cluster_job(clip.path, out, 8, runner).run(progress)
    assert killed, "no worker was seen in the middle of a chunk"
    assert result.frames == 16
    assert digest(out) == digest(local)

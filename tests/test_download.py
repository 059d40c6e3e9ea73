"""Downloads against a real HTTP server on 127.0.0.1 with injected faults (see ``weights_server.py``)."""

from __future__ import annotations

import hashlib
import random
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from hat_plugin import weights
from hat_plugin.cli import models as commands
from hat_plugin.errors import Cancelled, DownloadError
from hat_plugin.weights import cache
from hat_plugin.weights.download import download

pytest_plugins = ["weights_server"]

SIZE = 300_000
DATA = random.Random(3).randbytes(SIZE)
OTHER = random.Random(4).randbytes(SIZE)
SHA = hashlib.sha256(DATA).hexdigest()
REPO = Path(__file__).resolve().parents[1]


def test_good_download_reports_progress_and_is_cached(wenv):
    url = wenv.server.add("/m.pth", DATA)
    wenv.add_model("m", DATA, [url])
    calls = []
    path = weights.fetch("m", progress=lambda done, total: calls.append((done, total)))
    assert path == wenv.cache / "m.pth"
    assert path.read_bytes() == DATA
    assert calls[-1] == (SIZE, SIZE)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert weights.is_cached("m")
    assert weights.fetch("M") == path  # cached: names ignore case, and no second request
    assert len(wenv.server.hits("/m.pth")) == 1


def test_unknown_size_is_verified_by_sha256_alone(wenv):
    wenv.add_model("m", DATA, [wenv.server.add("/m.pth", DATA)], known_size=False)
    assert weights.fetch("m").read_bytes() == DATA


BAD_SOURCES = {  # id: (fault, route options, size in the manifest?, the reason the error must give)
    "404": ("404", {}, True, "HTTP 404"),
    "truncated": ("truncate", {"cut": 1000}, True, "the server closed the connection early"),
    "truncated-size-unknown": ("truncate", {"cut": 200_000}, False, "closed the connection early"),
    "wrong-bytes": ("ok", {"body": OTHER}, True, "wrong content: sha256"),
    "html": ("html", {}, True, "web page instead of the weights"),
    "html-as-binary": ("html_as_binary", {}, True, "web page instead of the weights"),
    "html-as-binary-size-unknown": ("html_as_binary", {}, False, "web page instead of the weights"),
    "empty": ("empty", {}, True, "empty file"),
    "empty-size-unknown": ("empty", {}, False, "empty file"),
    "overlong": ("overlong", {}, True, "more than the 300,000 bytes expected"),
    "announces-more": ("announce_more", {}, True, "offers 301,000 bytes but the file has 300,000"),
}


@pytest.mark.parametrize(("fault", "options", "known_size", "reason"), BAD_SOURCES.values(), ids=BAD_SOURCES)
def test_bad_source_is_rejected_and_next_url_used(wenv, fault, options, known_size, reason):
    bad = wenv.server.add("/bad.pth", options.pop("body", DATA), fault, **options)
    wenv.add_model("m", DATA, [bad], known_size=known_size)
    with pytest.raises(DownloadError) as caught:
        weights.fetch("m")
    assert reason in str(caught.value)
    assert bad in str(caught.value)
    assert wenv.files() <= {".state/m.pth.lock"}  # nothing kept under the real name, no .part

    good = wenv.server.add("/good.pth", DATA)
    wenv.add_model("m", DATA, [bad, good], known_size=known_size)
    assert weights.fetch("m").read_bytes() == DATA


def test_unreachable_host_is_skipped(wenv):
    with socket.socket() as probe:  # a port nothing listens on any more
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}/m.pth"
    wenv.add_model("m", DATA, [closed])
    with pytest.raises(DownloadError, match="cannot connect .*Connection refused"):
        weights.fetch("m")
    wenv.add_model("m", DATA, [closed, wenv.server.add("/m.pth", DATA)])
    assert weights.fetch("m").read_bytes() == DATA


def test_error_lists_every_url_tried(wenv):
    urls = [wenv.server.add("/a.pth", fault="404"), wenv.server.add("/b.pth", fault="html")]
    wenv.add_model("m", DATA, urls)
    with pytest.raises(DownloadError) as caught:
        weights.fetch("m")
    message = str(caught.value)
    assert "1. " + urls[0] in message and "2. " + urls[1] in message
    assert "HAT_PLUGIN_MIRROR" in message


def test_dropped_connection_resumes_with_range(wenv):
    wenv.add_model("m", DATA, [wenv.server.add("/m.pth", DATA, "drop_once", cut=100_000)])
    assert weights.fetch("m").read_bytes() == DATA
    first, second = wenv.server.hits("/m.pth")
    assert first.sent == 100_000
    assert second.range == "bytes=100000-" and second.status == 206
    assert second.sent == SIZE - 100_000


def test_server_ignoring_range_restarts_from_zero(wenv):
    wenv.add_model("m", DATA, [wenv.server.add("/m.pth", DATA, "drop_once_norange", cut=100_000)])
    assert weights.fetch("m").read_bytes() == DATA
    second = wenv.server.hits("/m.pth")[1]
    assert second.range == "bytes=100000-" and second.status == 200 and second.sent == SIZE


@pytest.mark.parametrize("known_size", [True, False])
def test_chunked_transfer_without_length(wenv, known_size):
    wenv.add_model("m", DATA, [wenv.server.add("/m.pth", DATA, "chunked")], known_size=known_size)
    assert weights.fetch("m").read_bytes() == DATA


def test_chunked_transfer_cut_short_resumes(wenv):
    wenv.add_model("m", DATA, [wenv.server.add("/m.pth", DATA, "chunked_drop_once", cut=96 * 1024)])
    assert weights.fetch("m").read_bytes() == DATA
    second = wenv.server.hits("/m.pth")[1]
    assert second.range == f"bytes={96 * 1024}-" and second.sent == SIZE - 96 * 1024


def test_resumed_bytes_that_do_not_fit_are_fetched_whole_again(wenv):
    wenv.add_model("m", DATA, [wenv.server.add("/m.pth", DATA, "bad_range", cut=100_000)])
    assert weights.fetch("m").read_bytes() == DATA
    assert [(h.range, h.status) for h in wenv.server.hits("/m.pth")] == [
        (None, 200),
        ("bytes=100000-", 206),
        (None, 200),
    ]


def test_slow_server_hits_read_timeout(wenv):
    url = wenv.server.add("/slow.pth", DATA, "paced", delay=3.0)
    wenv.cache.mkdir()
    started = time.monotonic()
    with pytest.raises(DownloadError, match=r"no data for 0.3 s \(read timeout\)"):
        download([url], wenv.cache / "m.pth", sha256=SHA, size=SIZE, timeout=(2, 0.3))
    assert time.monotonic() - started < 2.5
    assert not list(wenv.cache.iterdir())


def test_stall_mid_body_times_out_then_resumes(wenv):
    url = wenv.server.add("/m.pth", DATA, "stall_once", cut=50_000, delay=3.0)
    wenv.add_model("m", DATA, [url])
    wenv.cache.mkdir()
    download([url], wenv.cache / "m.pth", sha256=SHA, size=SIZE, timeout=(2, 0.3))
    assert (wenv.cache / "m.pth").read_bytes() == DATA
    assert wenv.server.hits("/m.pth")[1].range == "bytes=50000-"


def test_partial_file_from_an_earlier_run_is_resumed(wenv):
    wenv.add_model("m", DATA, [wenv.server.add("/m.pth", DATA)])
    wenv.cache.mkdir()
    (wenv.cache / "m.pth.part").write_bytes(DATA[:120_000])
    assert weights.fetch("m").read_bytes() == DATA
    (hit,) = wenv.server.hits("/m.pth")
    assert hit.range == "bytes=120000-" and hit.sent == SIZE - 120_000


def test_bad_partial_file_is_discarded_and_fetched_again(wenv):
    wenv.add_model("m", DATA, [wenv.server.add("/m.pth", DATA)])
    wenv.cache.mkdir()
    (wenv.cache / "m.pth.part").write_bytes(OTHER[:120_000])
    assert weights.fetch("m").read_bytes() == DATA
    resumed, clean = wenv.server.hits("/m.pth")
    assert resumed.range == "bytes=120000-" and clean.range is None and clean.sent == SIZE


def test_cancel_keeps_partial_and_next_fetch_resumes(wenv):
    wenv.add_model("m", DATA, [wenv.server.add("/m.pth", DATA)])
    stop = threading.Event()
    with pytest.raises(Cancelled):
        weights.fetch("m", progress=lambda done, total: stop.set(), cancel=stop)
    kept = (wenv.cache / "m.pth.part").stat().st_size
    assert 0 < kept < SIZE
    assert not (wenv.cache / "m.pth").exists()
    assert weights.fetch("m", cancel=lambda: False).read_bytes() == DATA
    assert wenv.server.hits("/m.pth")[1].range == f"bytes={kept}-"


def test_cancel_while_waiting_for_another_download(wenv):
    wenv.add_model("m", DATA, [wenv.server.add("/m.pth", DATA)])
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    with cache.locked(wenv.cache, "m.pth"), pytest.raises(Cancelled, match="waiting for another download"):
        weights.fetch("m", cancel=stop)
    assert wenv.server.all_hits == []


def test_google_drive_confirmation_page_is_followed(wenv):
    target = wenv.server.add("/drive-file", DATA, "drive_file")
    wenv.add_model("m", DATA, [wenv.server.add("/drive", fault="drive_form", to=target)])
    assert weights.fetch("m").read_bytes() == DATA
    assert wenv.server.hits("/drive-file")[0].status == 200


def test_redirect_within_allowed_urls_is_followed(wenv):
    target = wenv.server.add("/real.pth", DATA)
    wenv.add_model("m", DATA, [wenv.server.add("/r", fault="redirect", to=target)])
    assert weights.fetch("m").read_bytes() == DATA


@pytest.mark.parametrize("target", ["http://example.com/m.pth", "file:///etc/passwd", "ftp://example.com/m.pth"])
def test_redirect_to_insecure_url_is_refused(wenv, target):
    wenv.add_model("m", DATA, [wenv.server.add("/r", fault="redirect", to=target)])
    with pytest.raises(DownloadError, match="redirect refused"):
        weights.fetch("m")


def test_proxy_from_environment_is_used(wenv, monkeypatch):
    wenv.server.add("/via-proxy.pth", DATA)
    wenv.add_model("m", DATA, ["http://127.0.0.1:9/via-proxy.pth"])  # nothing listens on port 9
    monkeypatch.setenv("HTTP_PROXY", wenv.server.base)
    assert weights.fetch("m").read_bytes() == DATA
    (hit,) = wenv.server.hits("/via-proxy.pth")
    assert hit.proxied


@pytest.mark.slow
def test_two_processes_download_once_and_both_get_the_file(wenv):
    wenv.add_model("m", DATA, [wenv.server.add("/m.pth", DATA, "paced", delay=0.05)])
    # The children import only hat_plugin.weights (not the torch-based engine the package __init__ loads),
    # so they start in a fraction of a second; the download, lock and cache code is the real one.
    child = (
        "import sys, types\n"
        f"sys.modules['hat_plugin'] = types.ModuleType('hat_plugin', '')\nsys.modules['hat_plugin'].__path__ = "
        f"[{str(REPO / 'hat_plugin')!r}]\n"
        "from hat_plugin import weights\nprint('ready', flush=True)\nsys.stdin.readline()\n"
        "print(weights.fetch('m'), flush=True)\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", child], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    for proc in procs:
        assert proc.stdout.readline().strip() == "ready"
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    outputs = [proc.communicate(timeout=60)[0].strip() for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0]
    assert outputs == [str(wenv.cache / "m.pth")] * 2
    (hit,) = wenv.server.hits("/m.pth")
    assert hit.sent == SIZE
    assert (wenv.cache / "m.pth").read_bytes() == DATA


def test_two_threads_download_once(wenv):
    wenv.add_model("m", DATA, [wenv.server.add("/m.pth", DATA, "paced", delay=0.02)])
    results: list[Path] = []
    threads = [threading.Thread(target=lambda: results.append(weights.fetch("m"))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert results == [wenv.cache / "m.pth"] * 2
    assert len(wenv.server.hits("/m.pth")) == 1


def test_download_command_fetches_and_prints_paths(wenv, capsys):
    wenv.add_model("m", DATA, [wenv.server.add("/m.pth", DATA)])
    wenv.add_model("n", OTHER, [wenv.server.add("/n.pth", fault="404")])
    assert commands.run_download(["m", "n", "mm"]) == 1
    out, err = capsys.readouterr()
    assert out.splitlines() == [str(wenv.cache / "m.pth")]
    assert "HTTP 404" in err and "unknown model 'mm'. Did you mean 'm'" in err
    assert "2 of 3 failed: n, mm" in err
    assert commands.run_download(["--all", "-q"]) == 1  # 'n' still fails; 'm' is cached
    assert len(wenv.server.hits("/m.pth")) == 1

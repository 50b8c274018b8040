"""The studio's guards against a real `corolla studio` process: each test sends the attack itself.

DNS rebinding (Host), cross-site requests (Origin, CSRF), the access token off loopback, folders
outside --root, hostile uploads, class names that are paths, and jobs: two trainings of a project
queue, and a closed tab (a dropped event stream) loses no progress event.
"""

from __future__ import annotations

import os
import re
import socket
import struct
import zlib

import httpx
import pytest

from tests.studiokit import BLUE, RED, Studio, StudioClient, alive, job_record, pictures, progress_events, sse_events, wait_for


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """base/root/{photos,more}/{red,blue}: readable; base/outside and base/root-secret (a prefix sibling): not; root/escape → outside."""
    base = tmp_path_factory.mktemp("studio-folders")
    for folder, seed in (("root/photos", 1), ("root/more", 2), ("outside", 3), ("root-secret", 4)):
        for class_name, colour in (("red", RED), ("blue", BLUE)):
            (base / folder / class_name).mkdir(parents=True)
            for index, data in enumerate(pictures(colour, 2, seed=seed)):
                (base / folder / class_name / f"{index}.png").write_bytes(data)
    (base / "root" / "escape").symlink_to(base / "outside", target_is_directory=True)
    return base


@pytest.fixture(scope="module")
def studio(folders, tmp_path_factory):
    with Studio(tmp_path_factory.mktemp("studio-work"), "--root", folders / "root") as running:
        yield running


@pytest.fixture(scope="module")
def client(studio):
    with studio.client() as browser:
        yield browser


@pytest.fixture(scope="module")
def shapes(client):
    """Project "shapes": classes red and blue, 2 pictures each."""
    return client.project("shapes", {"red": pictures(RED, 2, seed=10), "blue": pictures(BLUE, 2, seed=11)})


# --- Host (DNS rebinding) ----------------------------------------------------------------------


def test_a_foreign_host_header_is_refused_and_the_studios_own_names_are_not(studio):
    for path in ("/", "/api/projects"):
        # A rebinding page: evil.example resolves to 127.0.0.1, so the browser sends its own name.
        response = httpx.get(studio.url + path, headers={"Host": f"evil.example:{studio.port}"})
        assert response.status_code == 403, response.text
        assert "DNS-rebinding" in response.json()["error"] and f"127.0.0.1:{studio.port}" in response.json()["error"]
        assert response.headers["x-content-type-options"] == "nosniff"
        for host in (f"127.0.0.1:{studio.port}", f"localhost:{studio.port}", f"LOCALHOST:{studio.port}"):
            assert httpx.get(studio.url + path, headers={"Host": host}).status_code == 200, host
    for host in (f"127.0.0.1.evil.example:{studio.port}", "127.0.0.1", f"127.0.0.1:{studio.port + 1}", ""):
        assert httpx.get(studio.url + "/api/projects", headers={"Host": host}).status_code == 403, host


# --- Origin and CSRF -----------------------------------------------------------------------------


def test_a_cross_site_upload_is_refused_even_with_a_valid_csrf_token(client, shapes):
    """The Gradio/Jupyter pattern: a page elsewhere posts a file form to the local app."""
    before = client.counts("shapes")
    data = pictures(RED, 1, seed=20)[0]
    files = [("files", ("x.png", data, "image/png"))]
    for origin in ("http://evil.example", "null", f"http://127.0.0.1:{client.studio.port + 1}"):
        response = client.post("/api/projects/shapes/classes/red/pictures", files=files, headers={"Origin": origin})
        assert response.status_code == 403, (origin, response.text)
        assert "Cross-site request refused" in response.json()["error"]
    assert client.counts("shapes") == before
    # The same request from the studio's own page goes through: only the Origin made the difference.
    response = client.post("/api/projects/shapes/classes/red/pictures", files=files, headers={"Origin": client.studio.url})
    assert response.status_code == 200 and len(response.json()["added"]) == 1
    assert client.counts("shapes")["red"] == before["red"] + 1


def test_a_get_with_a_foreign_origin_is_refused(client, shapes):
    assert client.get("/api/projects/shapes", headers={"Origin": "http://evil.example"}).status_code == 403
    assert client.get("/api/projects/shapes", headers={"Origin": client.studio.url}).status_code == 200


def test_state_changes_need_the_csrf_token_of_this_session(studio, shapes):
    with studio.client() as mine, studio.client() as other:
        assert mine.cookies.get("corolla_studio_session") != other.cookies.get("corolla_studio_session")
        assert mine.csrf != other.csrf
        page = httpx.get(studio.url + "/")
        cookie = page.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        requests = [
            ("POST", "/api/projects", {"name": "csrf-made"}),
            ("PATCH", "/api/projects/shapes/classes/blue", {"name": "navy"}),
            ("DELETE", "/api/projects/shapes/classes/blue", None),
        ]
        for method, url, body in requests:
            for token in (None, "0" * 64, other.csrf, mine.csrf.upper()):  # none, wrong, another session's, altered
                headers = {"X-CSRF-Token": token} if token is not None else {}
                mine.headers.pop("X-CSRF-Token", None)
                response = mine.request(method, url, json=body, headers=headers)
                assert response.status_code == 403, (method, url, token, response.text)
                assert "X-CSRF-Token" in response.json()["error"]
            # A cookie-less request with a real token: the token belongs to no session.
            assert httpx.request(method, studio.url + url, json=body, headers={"X-CSRF-Token": mine.csrf}).status_code == 403
        assert "csrf-made" not in [p["name"] for p in mine.ok("GET", "/api/projects")["projects"]]
        assert {"red", "blue"} <= set(mine.counts("shapes"))
        # With the right token each works.
        mine.headers["X-CSRF-Token"] = mine.csrf
        assert mine.post("/api/projects", json={"name": "csrf-made"}).status_code == 201
        assert mine.patch("/api/projects/shapes/classes/blue", json={"name": "navy"}).status_code == 200
        assert mine.delete("/api/projects/shapes/classes/navy").status_code == 200
        assert mine.post("/api/projects/shapes/classes", json={"name": "navy"}).status_code == 201  # back
        assert mine.patch("/api/projects/shapes/classes/navy", json={"name": "blue"}).status_code == 200
        assert mine.counts("shapes")["blue"] == 2


# --- the access token --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def open_studio(tmp_path_factory):
    """Bound to every address (0.0.0.0): a token is made and required."""
    with Studio(tmp_path_factory.mktemp("studio-open"), "--host", "0.0.0.0") as running:
        yield running


@pytest.fixture(scope="module")
def token_studio(tmp_path_factory):
    """On loopback with an explicit --token, and without --root."""
    with Studio(tmp_path_factory.mktemp("studio-token"), "--token", "given-token-123") as running:
        yield running


def printed_token(studio) -> str:
    match = re.search(rf"open (http://127\.0\.0\.1:{studio.port}/\?token=(\S+))", studio.output())
    assert match, studio.output()
    return match.group(2)


def test_off_loopback_the_studio_needs_its_token(open_studio):
    url, token = open_studio.url, printed_token(open_studio)
    assert len(token) >= 24
    for path in ("/", "/api/projects"):
        response = httpx.get(url + path)
        assert response.status_code == 401 and "access token" in response.json()["error"]
        assert httpx.get(url + path, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert httpx.get(url + path, params={"token": token[:-1]}).status_code == 401
    assert httpx.get(url + "/api/projects", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    # The printed URL works in a browser: ?token= on the page sets a cookie that then does.
    with StudioClient(open_studio, page=f"/?token={token}") as browser:
        assert browser.cookies.get("corolla_studio_token") == token
        assert browser.get("/api/projects").status_code == 200
        assert browser.post("/api/projects", json={"name": "remote"}).status_code == 201
        browser.headers.pop("X-CSRF-Token")  # the token does not replace CSRF
        assert browser.post("/api/projects", json={"name": "remote2"}).status_code == 403
    # Bound to 0.0.0.0 it answers to the machine's own name (as a colleague's browser sends it), never to a rebinding one.
    bearer = {"Authorization": f"Bearer {token}"}
    assert httpx.get(url + "/api/projects", headers={**bearer, "Host": f"{socket.gethostname()}:{open_studio.port}"}).status_code == 200
    assert httpx.get(url + "/api/projects", headers={**bearer, "Host": f"evil.example:{open_studio.port}"}).status_code == 403


def test_an_explicit_token_is_required_on_loopback_too(token_studio):
    url = token_studio.url
    assert printed_token(token_studio) == "given-token-123"
    assert httpx.get(url + "/api/projects").status_code == 401
    assert httpx.get(url + "/api/projects", headers={"Authorization": "Bearer given-token-123"}).status_code == 200
    with StudioClient(token_studio, page="/?token=given-token-123") as browser:
        assert browser.get("/api/projects").status_code == 200


# --- --root confinement --------------------------------------------------------------------------


def test_folders_outside_root_are_refused_whatever_the_spelling(client, folders):
    client.project("linked")
    root = folders / "root"
    for path in ("../outside", "photos/../../outside", str(folders / "outside"), "/etc", "escape", "escape/red",
                 str(folders / "root-secret"), "../root-secret", str(root) + "-secret", "~"):
        response = client.post("/api/projects/linked/sources", json={"path": path})
        assert response.status_code == 403, (path, response.text)
        assert "outside the folder the studio may read" in response.json()["error"]
    assert client.ok("GET", "/api/projects/linked")["sources"] == []
    # A real folder of class sub-folders inside the root, relative or absolute.
    linked = client.ok("POST", "/api/projects/linked/sources", 201, json={"path": "photos"})
    assert linked["source"] == str((root / "photos").resolve()) and linked["classes"] == ["blue", "red"]
    assert client.ok("POST", "/api/projects/linked/sources", 201, json={"path": str(root / "more")})["source"] == str((root / "more").resolve())
    assert client.counts("linked") == {"blue": 4, "red": 4}
    assert client.post("/api/projects/linked/sources", json={"path": "missing"}).status_code == 404


def test_without_root_no_folder_can_be_linked(token_studio, folders):
    with StudioClient(token_studio, page="/?token=given-token-123") as browser:
        browser.project("p")
        for path in (str(folders / "root" / "photos"), "."):
            response = browser.post("/api/projects/p/sources", json={"path": path})
            assert response.status_code == 403 and "--root" in response.json()["error"]


# --- uploads ---------------------------------------------------------------------------------------


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares width × height but holds one tiny IDAT: decoding it would fail, reading its header does not."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def test_hostile_uploads_are_refused_with_their_reason(client, shapes):
    from corolla.studio.app import MAX_UPLOAD_BYTES

    before = client.counts("shapes")
    small = pictures(RED, 1, seed=30)[0]
    cases = {
        "notes.jpg": (b"<html><script>alert(1)</script></html>", "not an image"),
        "bomb.png": (png_header(20000, 20000), "too large"),  # 400 M pixels: PIL's own limit
        "big.png": (png_header(8000, 6000), "8000x6000 pixels exceeds the limit of 40,000,000"),  # 48 M: only corolla's limit
        "huge.png": (small + b"\0" * (MAX_UPLOAD_BYTES + 1 - len(small)), "larger than 20 MB"),  # a valid PNG, too long
        "empty.png": (b"", "empty file"),
    }
    response = client.upload("shapes", "red", [data for data, _ in cases.values()], list(cases))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["added"] == []
    reasons = {row["file"]: row["reason"] for row in body["refused"]}
    assert set(reasons) == set(cases)
    for name, (_, expected) in cases.items():
        assert expected in reasons[name], (name, reasons[name])
    assert "pixels" in reasons["bomb.png"]
    assert client.counts("shapes") == before
    assert not [path for path in (client.studio.workdir / "shapes" / "pictures").rglob("*") if path.is_file() and path.stat().st_size > 10_000_000]


def test_more_files_than_the_limit_in_one_upload_is_413(client, shapes):
    from corolla.studio.app import MAX_UPLOAD_FILES

    before = client.counts("shapes")
    data = pictures(BLUE, 1, seed=31)[0]  # a valid picture: only the count is wrong
    response = client.upload("shapes", "blue", [data] * (MAX_UPLOAD_FILES + 1))
    assert response.status_code == 413, response.text
    assert f"At most {MAX_UPLOAD_FILES} files" in response.json()["error"]
    assert client.counts("shapes") == before
    assert client.upload("shapes", "blue", [data] * 3).status_code == 200  # within the limit: fine (one file, same bytes)


def test_thumbnails_are_jpeg_never_sniffed_and_only_of_the_projects_pictures(client, shapes):
    key = client.ok("GET", "/api/projects/shapes")["classes"][0]["samples"][0]
    response = client.get("/api/projects/shapes/thumbnail", params={"key": key})
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/jpeg"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.content[:3] == b"\xff\xd8\xff"
    project_json = client.studio.workdir / "shapes" / "project.json"
    for other in ("/etc/passwd", str(project_json), os.path.join(os.path.dirname(key), "..", "..", "project.json"), key + "x", "", "../../etc/passwd"):
        response = client.get("/api/projects/shapes/thumbnail", params={"key": other})
        assert response.status_code == 404, (other, response.status_code)
        assert "is not a picture of project shapes" in response.json()["error"]


# --- class names -----------------------------------------------------------------------------------


def test_class_names_that_cannot_be_folders_or_labels_are_400(client, shapes):
    cases = {
        "": "cannot be empty", "   ": "cannot be empty", "RED": "there is already a class", " Red ": "there is already a class",
        "a/b": "cannot hold", "..": "cannot start with '.'", "a\\b": "cannot hold", ".x": "cannot start with '.'",
        "../../etc": "cannot start with '.'", "x/../../y": "cannot hold", "tab\there": "control characters", "n" * 65: "at most 64",
    }
    pictures_dir = client.studio.workdir / "shapes" / "pictures"
    before = sorted(path.name for path in pictures_dir.iterdir())
    for name, problem in cases.items():
        for method, url in (("POST", "/api/projects/shapes/classes"), ("PATCH", "/api/projects/shapes/classes/blue")):
            response = client.request(method, url, json={"name": name})
            assert response.status_code == 400, (method, name, response.text)
            error = response.json()["error"]
            assert error.startswith("Cannot use this class name:") and problem in error and repr(name) in error, error
    assert sorted(path.name for path in pictures_dir.iterdir()) == before
    assert not (client.studio.workdir / "etc").exists() and not (pictures_dir / "a").exists()
    assert set(client.counts("shapes")) == {"red", "blue"}


# --- jobs: a queue per project, and progress that survives a closed tab -----------------------------


@pytest.fixture(scope="module")
def two_runs(client):
    """Project "race": run A (3 epochs) started, then run B while A runs."""
    client.project("race", {"red": pictures(RED, 12, seed=40), "blue": pictures(BLUE, 12, seed=41)})
    settings = {"model": "convnet", "epochs": 3, "image_size": 16, "batch_size": 8}
    first = client.ok("POST", "/api/projects/race/runs", 202, json=settings)
    client.wait_state("race", first["run"], "running", timeout=60)
    second = client.ok("POST", "/api/projects/race/runs", 202, json={**settings, "epochs": 1})
    return {"first": first["run"], "second": second["run"], "second_state_at_start": second["job"]["state"], "runs": client.studio.workdir / "race" / "runs"}


@pytest.mark.slow
def test_a_closed_tab_loses_no_progress_event(client, two_runs):
    run, run_dir = two_runs["first"], two_runs["runs"] / two_runs["first"]
    url = f"/api/projects/race/runs/{run}/events"
    seen = []
    with client.stream("GET", url, timeout=httpx.Timeout(240)) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for event in sse_events(response):
            if event.get("event") == "progress":
                assert int(event["id"]) == event["data"]["id"]
                seen.append(event["data"])
                if len(seen) == 2:
                    break  # the tab closes
    last = seen[-1]["id"]
    # Training goes on while nobody listens.
    wait_for(lambda: len(progress_events(run_dir)) >= last + 2, timeout=120, what="progress while disconnected")
    states = []
    with client.stream("GET", url, headers={"Last-Event-ID": str(last)}, timeout=httpx.Timeout(240)) as response:
        for event in sse_events(response):
            if event.get("event") == "progress":
                seen.append(event["data"])
            else:
                states.append(event["data"]["state"])
    ids = [event["id"] for event in seen]
    assert ids[2] == last + 1, ids
    assert ids == list(range(1, len(ids) + 1)), ids  # none lost, none twice
    assert seen == progress_events(run_dir)
    assert seen[-1]["event"] == "end" and seen[-1]["status"] == "finished"
    assert states[-1] == "finished", states
    assert client.run("race", run)["state"] == "finished"


@pytest.mark.slow
def test_two_trainings_of_a_project_queue_and_never_interleave(client, two_runs):
    first, second = two_runs["runs"] / two_runs["first"], two_runs["runs"] / two_runs["second"]
    assert two_runs["second_state_at_start"] == "queued"

    def first_ended_second_untouched() -> bool:  # while the first runs, the second waits and does nothing
        b, progress = job_record(second), (second / "progress.jsonl").exists()  # read before the first's state: no race
        if job_record(first).get("state") != "running":
            return True
        assert b["state"] == "queued" and "started" not in b and not progress, b
        return False

    wait_for(first_ended_second_untouched, timeout=240, what=lambda: f"the first training to end: {job_record(first)}")
    client.wait_state("race", two_runs["first"], "finished")
    a = job_record(first)
    b = client.wait_state("race", two_runs["second"], ("running", "finished"), timeout=60)
    b = job_record(second)
    assert b["queued"] < a["ended"] <= b["started"], (a, b)
    assert min(event["time"] for event in progress_events(second) or [{"time": b["started"]}]) >= a["ended"]
    assert client.run("race", two_runs["first"])["state"] == "finished"
    client.ok("POST", f"/api/projects/race/runs/{two_runs['second']}/stop")  # the second is not needed to its end
    assert client.wait_state("race", two_runs["second"], ("stopped", "finished"), timeout=60)
    assert not alive(job_record(second).get("pid"))

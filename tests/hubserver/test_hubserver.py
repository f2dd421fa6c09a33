"""The loopback hub itself, exercised with plain huggingface_hub (no ticketzoo code).

Everything talks to 127.0.0.1 only: ``endpoint=`` and ``cache_dir=`` are passed
explicitly, so huggingface_hub's import-time constants never matter here.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap

import pytest

hf = pytest.importorskip("huggingface_hub")
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi  # noqa: E402
from huggingface_hub.errors import (  # noqa: E402
    RemoteEntryNotFoundError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

README = b"---\nlicense: apache-2.0\ntags: [lottery-ticket]\n---\n# A ticket\n"


def blob(n: int = 200_000, seed: bytes = b"t") -> bytes:
    """Deterministic incompressible-ish bytes (a stand-in for ticket.safetensors)."""
    out, block = bytearray(), seed
    while len(out) < n:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[:n])


@pytest.fixture
def api(hub_server) -> HfApi:
    return HfApi(endpoint=hub_server.endpoint, token=hub_server.token)


def download(hub_server, tmp_path, repo_id, filename, revision=None, cache="cache"):
    path = hf.hf_hub_download(repo_id, filename, revision=revision, endpoint=hub_server.endpoint,
                              cache_dir=tmp_path / cache, token=False)
    with open(path, "rb") as f:
        return f.read()


def test_push_with_create_commit_then_pull_identical_bytes(hub_server, api, tmp_path):
    repo_id = hub_server.new_repo_id("push")
    url = api.create_repo(repo_id)
    assert url.repo_id == repo_id and url.endpoint == hub_server.endpoint
    payload = blob()
    info = api.create_commit(
        repo_id,
        [CommitOperationAdd("ticket.safetensors", payload), CommitOperationAdd("README.md", README)],
        commit_message="Add ticket",
        commit_description="pushed by the hubserver self-test",
    )
    assert len(info.oid) == 40

    assert download(hub_server, tmp_path, repo_id, "ticket.safetensors") == payload
    assert download(hub_server, tmp_path, repo_id, "README.md", cache="other") == README
    snap = hf.snapshot_download(repo_id, endpoint=hub_server.endpoint, cache_dir=tmp_path / "snap", token=False)
    assert snap.endswith(info.oid)
    assert sorted(os.listdir(snap)) == [".gitattributes", "README.md", "ticket.safetensors"]
    with open(os.path.join(snap, "ticket.safetensors"), "rb") as f:
        assert f.read() == payload

    # the commit is a real git commit in the repo olah serves
    repo = hub_server.repo_path(repo_id)
    log = subprocess.run(["git", "--git-dir", str(repo), "log", "--format=%H %an %s", "main"],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    assert log[0] == f"{info.oid} {hub_server.user} Add ticket"
    assert log[-1].endswith("initial commit")
    # metadata served by olah from the same repo
    mi = api.model_info(repo_id)
    assert mi.sha == info.oid and mi.card_data["license"] == "apache-2.0"
    assert api.repo_exists(repo_id) and not api.repo_exists(hub_server.new_repo_id("nope"))
    # unchanged files are skipped client-side (preupload returns the remote git oid)
    again = api.create_commit(repo_id, [CommitOperationAdd("README.md", README)], commit_message="noop")
    assert again.oid == info.oid


def test_upload_folder_tags_branches_and_pinned_downloads(hub_server, api, tmp_path):
    repo_id = hub_server.new_repo_id("refs")
    api.create_repo(repo_id)
    v1, v2 = blob(seed=b"v1"), blob(150_000, seed=b"v2")
    folder = tmp_path / "ticket"
    folder.mkdir()
    (folder / "ticket.safetensors").write_bytes(v1)
    (folder / "README.md").write_bytes(README)
    c1 = api.upload_folder(repo_id=repo_id, folder_path=folder, commit_message="v1").oid
    api.create_tag(repo_id, tag="v1", tag_message="first ticket")
    api.create_branch(repo_id, branch="stable", revision=c1)
    with pytest.raises(HfHubHTTPError) as e:
        api.create_tag(repo_id, tag="v1")
    assert e.value.response.status_code == 409
    api.create_tag(repo_id, tag="v1", exist_ok=True)

    c2 = api.upload_file(path_or_fileobj=v2, path_in_repo="ticket.safetensors", repo_id=repo_id,
                         commit_message="v2").oid
    assert c2 != c1
    refs = api.list_repo_refs(repo_id)
    assert {b.name: b.target_commit for b in refs.branches} == {"main": c2, "stable": c1}
    assert {t.name: t.target_commit for t in refs.tags} == {"v1": c1}

    for rev, expected in [(None, v2), ("main", v2), ("v1", v1), ("stable", v1), (c1, v1), (c2, v2)]:
        assert download(hub_server, tmp_path, repo_id, "ticket.safetensors", rev, cache=f"c-{rev}") == expected
    meta = hf.get_hf_file_metadata(hf.hf_hub_url(repo_id, "ticket.safetensors", revision="v1",
                                                 endpoint=hub_server.endpoint), token=False)
    assert meta.commit_hash == c1 and meta.size == len(v1)
    assert meta.etag == hashlib.sha1(b"blob %d\x00" % len(v1) + v1).hexdigest()  # git blob id

    # deletions and a commit to a non-default branch
    api.create_commit(repo_id, [CommitOperationDelete("README.md")], commit_message="rm", revision="stable")
    assert sorted(api.list_repo_files(repo_id, revision="stable")) == [".gitattributes", "ticket.safetensors"]
    assert "README.md" in api.list_repo_files(repo_id)
    api.delete_branch(repo_id, branch="stable")
    api.delete_tag(repo_id, tag="v1")
    assert not api.list_repo_refs(repo_id).tags


def test_missing_repo_is_repository_not_found(hub_server, api, tmp_path):
    missing = hub_server.new_repo_id("missing")
    with pytest.raises(RepositoryNotFoundError):
        download(hub_server, tmp_path, missing, "README.md")
    with pytest.raises(RepositoryNotFoundError):
        hf.snapshot_download(missing, endpoint=hub_server.endpoint, cache_dir=tmp_path / "s", token=False)
    with pytest.raises(RepositoryNotFoundError):
        api.model_info(missing)
    with pytest.raises(RepositoryNotFoundError):
        api.create_commit(missing, [CommitOperationAdd("README.md", README)], commit_message="x")


def test_bad_revision_and_missing_file(hub_server, api, tmp_path):
    repo_id = hub_server.new_repo_id("revs")
    hub_server.create_repo_with_files(repo_id, {"README.md": README}, tag="v1")
    for rev in ["nope", "v2", "0" * 40]:
        with pytest.raises(RevisionNotFoundError):
            download(hub_server, tmp_path, repo_id, "README.md", revision=rev)
        with pytest.raises(RevisionNotFoundError):
            api.model_info(repo_id, revision=rev)
    with pytest.raises(RevisionNotFoundError):
        hf.snapshot_download(repo_id, revision="nope", endpoint=hub_server.endpoint,
                             cache_dir=tmp_path / "s", token=False)
    with pytest.raises(RevisionNotFoundError):
        api.create_commit(repo_id, [CommitOperationAdd("a.txt", b"a")], commit_message="x", revision="nope")
    with pytest.raises(RemoteEntryNotFoundError):
        download(hub_server, tmp_path, repo_id, "ticket.safetensors", revision="v1")


def test_push_needs_a_valid_token(hub_server, tmp_path):
    repo_id = hub_server.new_repo_id("auth")
    for token in (False, "hf_not_a_valid_token"):
        api = HfApi(endpoint=hub_server.endpoint, token=token)
        with pytest.raises(HfHubHTTPError) as e:
            api.create_repo(repo_id)
        assert e.value.response.status_code == 401
        assert not isinstance(e.value, RepositoryNotFoundError)
    assert not hub_server.repo_path(repo_id).exists()

    hub_server.create_repo_with_files(repo_id, {"README.md": README})
    bad = HfApi(endpoint=hub_server.endpoint, token="hf_not_a_valid_token")
    with pytest.raises(HfHubHTTPError) as e:
        bad.create_commit(repo_id, [CommitOperationAdd("x.bin", b"\0\1")], commit_message="x")
    assert e.value.response.status_code == 401
    with pytest.raises(HfHubHTTPError) as e:
        bad.create_tag(repo_id, tag="v9")
    assert e.value.response.status_code == 401
    assert HfApi(endpoint=hub_server.endpoint).whoami(token=hub_server.token)["name"] == hub_server.user
    # reads stay anonymous
    assert download(hub_server, tmp_path, repo_id, "README.md") == README


def test_offline_mode_serves_from_cache(hub_server, tmp_path):
    repo_id = hub_server.new_repo_id("offline")
    payload = blob(50_000, seed=b"off")
    sha = hub_server.create_repo_with_files(repo_id, {"ticket.safetensors": payload, "README.md": README})
    env = {**os.environ, **hub_server.env(tmp_path / "home")}
    env.pop("PYTHONPATH", None)
    script = textwrap.dedent(
        """
        import json, sys
        from huggingface_hub import hf_hub_download, snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError
        repo, mode = sys.argv[1], sys.argv[2]
        out = {"file": hf_hub_download(repo, "ticket.safetensors"), "snap": snapshot_download(repo)}
        if mode == "offline":
            try:
                hf_hub_download(repo, "never-downloaded.txt")
            except LocalEntryNotFoundError:
                out["missing"] = "LocalEntryNotFoundError"
        print(json.dumps(out))
        """
    )

    def run(mode):
        e = dict(env, HF_HUB_OFFLINE="1" if mode == "offline" else "0")
        p = subprocess.run([sys.executable, "-c", script, repo_id, mode], env=e, capture_output=True,
                           text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout.strip().splitlines()[-1])

    online = run("online")
    seen = len(hub_server.request_log)
    offline = run("offline")
    assert len(hub_server.request_log) == seen, hub_server.request_log[seen:]  # no request at all
    assert offline["file"] == online["file"] and offline["snap"].endswith(sha)
    assert offline["missing"] == "LocalEntryNotFoundError"
    with open(offline["file"], "rb") as f:
        assert f.read() == payload


def test_tamper_and_corrupt_blob(hub_server, tmp_path):
    repo_id = hub_server.new_repo_id("tamper")
    good, evil = blob(seed=b"good"), blob(seed=b"evil")
    c1 = hub_server.create_repo_with_files(repo_id, {"ticket.safetensors": good}, tag="v1")

    c2 = hub_server.tamper(repo_id, "ticket.safetensors", evil)  # new commit on main
    assert c2 != c1
    assert download(hub_server, tmp_path, repo_id, "ticket.safetensors", cache="a") == evil
    assert download(hub_server, tmp_path, repo_id, "ticket.safetensors", "v1", cache="b") == good

    c3 = hub_server.tamper(repo_id, "ticket.safetensors", evil, revision="v1")  # re-pointed tag
    assert download(hub_server, tmp_path, repo_id, "ticket.safetensors", "v1", cache="c") == evil
    assert hf.get_hf_file_metadata(hf.hf_hub_url(repo_id, "ticket.safetensors", revision="v1",
                                                 endpoint=hub_server.endpoint), token=False).commit_hash == c3

    hub_server.corrupt_blob(repo_id, "ticket.safetensors", evil[:1000], revision=c1)  # bit rot, same sha
    assert download(hub_server, tmp_path, repo_id, "ticket.safetensors", c1, cache="d") == evil[:1000]


def test_hub_env_points_module_level_helpers_at_the_server(hub_server, hub_env):
    from huggingface_hub import constants

    repo_id = hub_server.new_repo_id("env")
    hub_server.create_repo_with_files(repo_id, {"README.md": README})
    path = hf.hf_hub_download(repo_id, "README.md")  # no endpoint / cache_dir arguments
    assert path.startswith(str(hub_env.cache_dir)) and open(path, "rb").read() == README
    assert constants.ENDPOINT == hub_server.endpoint == os.environ["HF_ENDPOINT"]
    assert hf.model_info(repo_id).id == repo_id

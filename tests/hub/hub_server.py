#!/usr/bin/env python3
"""A local stand-in for the Hugging Face Hub, for tests: serves a folder in the Hub's URL layout
with the headers huggingface_hub and @huggingface/hub rely on.

    hub_server.py --root DIR [--port 0] [--log FILE] [--cut-after BYTES]

DIR/<repo>/ (repo "name" or "org/name") holds the repository's files; an optional DIR/<repo>/.hub.json
says {"private": true, "token": "hf_x", "tags": ["v1"], "moved_to": "org/new"}. Each repository has
one commit, sha1("commit " + repo). Prints "port N" on stdout once listening.

  HEAD|GET /<repo>/resolve/<rev>/<path>
      regular files: 200, ETag "<git blob sha1>", X-Repo-Commit, the bytes
      LFS files (*.safetensors, *.bin, *.model, or over 1 MiB): 302 to /cdn/<sha256> with
      X-Linked-Etag "<sha256>", X-Linked-Size, X-Repo-Commit (as the Hub answers)
      401 RepoNotFound: private repo without its token; 404 RepoNotFound / RevisionNotFound /
      EntryNotFound (with X-Repo-Commit); 307 to a relative URL for a repo with "moved_to"
  GET /cdn/<sha256>   the bytes, with Range support; --cut-after N drops the connection after N
      bytes on the first request of each blob (an interrupted download)
  POST /api/models/<repo>/paths-info/<rev>   {"paths": [...], "expand": bool} -> path infos
Every request is appended to --log as "METHOD PATH [RANGE]" (for tests that check what was asked).
"""
import argparse
import hashlib
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

LFS_SUFFIXES = (".safetensors", ".bin", ".model", ".h5", ".msgpack", ".gz")
LFS_MIN_SIZE = 1 << 20


class Repo:
    def __init__(self, root, repo_id):
        self.id = repo_id
        self.dir = os.path.join(root, repo_id)
        meta_path = os.path.join(self.dir, ".hub.json")
        self.meta = json.load(open(meta_path)) if os.path.exists(meta_path) else {}
        self.commit = hashlib.sha1(("commit " + repo_id).encode()).hexdigest()

    def commit_of(self, rev):
        if rev in ("main", self.commit) or rev in self.meta.get("tags", []):
            return self.commit
        return None

    def file(self, path):
        full = os.path.join(self.dir, path)
        if path.startswith(".hub") or ".." in path.split("/") or not os.path.isfile(full):
            return None
        return full


class State:
    def __init__(self, root, log, cut_after):
        self.root = root
        self.log = log
        self.cut_after = cut_after
        self.cut_done = set()
        self.blobs = {}  # sha256 -> path
        self.lock = threading.Lock()
        self.info = {}  # path -> (size, git sha1, sha256)

    def describe(self, full):
        st = os.stat(full)
        key = (full, st.st_size, st.st_mtime)
        with self.lock:
            if key in self.info:
                return self.info[key]
        data = open(full, "rb").read()
        git = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        sha = hashlib.sha256(data).hexdigest()
        with self.lock:
            self.info[key] = (len(data), git, sha)
            self.blobs[sha] = full
        return self.info[key]


def is_lfs(path, size):
    return path.endswith(LFS_SUFFIXES) or size > LFS_MIN_SIZE


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state = None

    def log_message(self, fmt, *args):
        pass

    def record(self):
        if self.state.log:
            with self.state.lock, open(self.state.log, "a") as f:
                f.write(f"{self.command} {self.path} {self.headers.get('Range', '')}".rstrip() + "\n")

    def reply(self, status, headers=(), body=b""):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def error(self, status, code, message, extra=()):
        self.reply(status, [("X-Error-Code", code), ("X-Error-Message", message), *extra], message.encode())

    def find_repo(self, parts, marker):
        # /<name>/<marker>/... or /<org>/<name>/<marker>/...
        for n in (1, 2):
            if len(parts) > n and parts[n] == marker:
                return "/".join(parts[:n]), parts[n + 1:]
        return None, None

    def authorized(self, repo):
        if not repo.meta.get("private"):
            return True
        return self.headers.get("Authorization") == "Bearer " + repo.meta.get("token", "")

    def open_repo(self, repo_id):
        repo = Repo(self.state.root, repo_id)
        if not os.path.isdir(repo.dir):
            self.error(404, "RepoNotFound", f"Repository Not Found for {repo_id}.")
            return None
        if not self.authorized(repo):
            self.error(401, "RepoNotFound", "Invalid credentials in Authorization header")
            return None
        return repo

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        self.record()
        path = unquote(urlsplit(self.path).path)
        parts = path.strip("/").split("/")
        if parts[0] == "cdn" and len(parts) == 2:
            return self.serve_blob(parts[1])
        repo_id, rest = self.find_repo(parts, "resolve")
        if repo_id is None or len(rest) < 2:
            return self.error(404, "EntryNotFound", "not a /<repo>/resolve/<rev>/<file> URL")
        repo = self.open_repo(repo_id)
        if repo is None:
            return
        if repo.meta.get("moved_to"):
            return self.reply(307, [("Location", "/" + repo.meta["moved_to"] + "/resolve/" + "/".join(rest))])
        rev, file_path = rest[0], "/".join(rest[1:])
        commit = repo.commit_of(rev)
        if commit is None:
            return self.error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
        full = repo.file(file_path)
        if full is None:
            return self.error(404, "EntryNotFound", f"{file_path} does not exist on {rev}",
                              [("X-Repo-Commit", commit)])
        size, git, sha = self.state.describe(full)
        if is_lfs(file_path, size):
            return self.reply(302, [("Location", f"http://{self.headers['Host']}/cdn/{sha}"),
                                    ("X-Repo-Commit", commit), ("X-Linked-Etag", f'"{sha}"'),
                                    ("X-Linked-Size", str(size)), ("ETag", f'"{git}"')])
        self.send_bytes(open(full, "rb").read(), git, [("X-Repo-Commit", commit)])

    def serve_blob(self, sha):
        full = self.state.blobs.get(sha)
        if full is None:
            return self.error(404, "EntryNotFound", "no such blob")
        self.send_bytes(open(full, "rb").read(), sha, [], cut=True)

    def send_bytes(self, data, etag, headers, cut=False):
        """200 with the bytes, or 206 with the asked range ("bytes=a-b" or "bytes=a-")."""
        start, end = 0, len(data) - 1
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes="):
            a, _, b = rng[6:].partition("-")
            start = int(a)
            end = min(int(b), len(data) - 1) if b else len(data) - 1
            if start >= len(data):
                return self.reply(416, [("Content-Range", f"bytes */{len(data)}")])
        body = data[start:end + 1]
        self.send_response(206 if rng else 200)
        if rng:
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", f'"{etag}"')
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        if self.command == "HEAD":
            return
        limit = self.state.cut_after
        with self.state.lock:
            first = etag not in self.state.cut_done
            self.state.cut_done.add(etag)
        if cut and limit and first and limit < len(body):
            self.wfile.write(body[:limit])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self.wfile.write(body)

    def do_POST(self):
        self.record()
        parts = unquote(urlsplit(self.path).path).strip("/").split("/")
        if parts[:2] != ["api", "models"]:
            return self.error(404, "EntryNotFound", "unknown API")
        repo_id, rest = self.find_repo(parts[2:], "paths-info")
        length = int(self.headers.get("Content-Length", "0"))
        request = json.loads(self.rfile.read(length) or b"{}")
        if repo_id is None or len(rest) != 1:
            return self.error(404, "EntryNotFound", "not /api/models/<repo>/paths-info/<rev>")
        repo = self.open_repo(repo_id)
        if repo is None:
            return
        commit = repo.commit_of(rest[0])
        if commit is None:
            return self.error(404, "RevisionNotFound", f"Invalid rev id: {rest[0]}")
        out = []
        for p in request.get("paths", []):
            full = repo.file(p)
            if full is None:
                continue
            size, git, sha = self.state.describe(full)
            item = {"type": "file", "path": p, "oid": git, "size": size}
            if is_lfs(p, size):
                item["lfs"] = {"oid": sha, "size": size, "pointerSize": 134}
            if request.get("expand"):
                item["lastCommit"] = {"id": commit, "title": "test commit", "date": "2026-01-01T00:00:00.000Z"}
            out.append(item)
        self.reply(200, [("Content-Type", "application/json")], json.dumps(out).encode())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--log")
    ap.add_argument("--cut-after", type=int, default=0)
    a = ap.parse_args()
    Handler.state = State(os.path.abspath(a.root), a.log, a.cut_after)
    server = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    server.daemon_threads = True
    print(f"port {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
